"""Safe BPMN XML reading and the motcua conventions read off a diagram (lanes → roles, step
durations, decisions). No SpiffWorkflow here: this is what validation and the catalog share."""
from __future__ import annotations

import ast
import codecs
import re
from dataclasses import dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS}
# Bounds on what validation accepts, so that validating any accepted file takes well under 2 s on a
# 2-core machine (bench/validation.py). Our own checks are linear in the diagram, but SpiffWorkflow's
# parser is not (one XPath it runs over the process grows faster than linearly with the elements in
# lanes): the worst shape we found, 10,000 elements of bare gateways all in one lane, parses in about
# 0.6 s, 12,000 in 0.85 s, 18,000 in 2.1 s. A real procedure has tens of nodes (the shipped ones ~16,
# ~260 elements with their layout); with a modeler's layout a diagram has ~15 elements a node, so the
# cap still allows ~600 nodes.
MAX_BPMN_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_ELEMENTS = 10_000
# An expression longer than this is refused by safe_eval anyway; parsing it to find decision values
# would only spend time (and a deeply nested one exhausts the parser's stack).
MAX_CONDITION_CHARS = 10_000
SUPPLEMENT_MESSAGE = "supplement_received"
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_DECLARED = re.compile(r"""^(\ufeff?<\?xml[^>]*?\sencoding\s*=\s*)(["'])([^"']*)\2""")
_DECLARED_BYTES = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._:-]{0,39})["']""")
# Byte patterns of "<?" (XML 1.0 appendix F) in the encodings that are not ASCII-compatible.
_UNMARKED = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
             (b"\x00<\x00?", "utf-16-be"), (b"<\x00?\x00", "utf-16-le"))
_BOMS = ((codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"))
# Python codecs that are not character encodings a document can be written in.
_NOT_DOCUMENT_ENCODINGS = {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "utf_7", "undefined"}


class UnsafeXml(ValueError):
    """The document is not well-formed, too large or deep, or carries a DTD / entities."""

    def __init__(self, code: str, message: str, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.line = line


def _codec(name: str) -> str:
    try:
        codec = codecs.lookup(name).name.replace("-", "_")
    except LookupError:
        raise UnsafeXml("xml_bad_encoding", f"unknown character encoding '{name}'") from None
    if codec in _NOT_DOCUMENT_ENCODINGS:
        raise UnsafeXml("xml_bad_encoding", f"'{name}' is not a character encoding for an XML document")
    return codec


def xml_text(data: bytes | str) -> str:
    """The document as text, decoded per its byte-order mark or XML declaration (UTF-8 without either),
    with the declaration saying UTF-8 when it named another encoding, so that the text parses the same
    when it is stored and read again. A text (already decoded, e.g. a JSON string) is returned unchanged
    unless its declaration names another encoding than UTF-8."""
    if isinstance(data, str):
        return _declare_utf8(data)
    if len(data) > MAX_BPMN_BYTES:
        raise UnsafeXml("xml_too_large", f"file is larger than {MAX_BPMN_BYTES // (1024 * 1024)} MB")
    head = data[:4]
    encoding, skip = None, 0
    for bom, name in _BOMS:
        if head.startswith(bom):
            encoding, skip = name, len(bom)
            break
    else:
        for pattern, name in _UNMARKED:
            if head == pattern:
                encoding = name
                break
        else:  # "<" then a zero byte (or the other way round): UTF-16 without a mark or a declaration
            encoding = {b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}.get(head[:2])
    if encoding is None:
        declared = _DECLARED_BYTES.match(data[:256])
        encoding = _codec(declared.group(1).decode("ascii")) if declared else "utf-8"
        if encoding.startswith(("utf_16", "utf_32")):
            raise UnsafeXml("xml_bad_encoding", f"the file declares {declared.group(1).decode()} but is not written in it")
    try:
        text = data[skip:].decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise UnsafeXml("xml_bad_encoding", f"the file is not valid {encoding}: {exc}") from None
    return _declare_utf8(text)


def _declare_utf8(text: str) -> str:
    declared = _DECLARED.match(text)
    if declared is None:
        return text
    try:
        if _codec(declared.group(3)) == "utf_8":
            return text
    except UnsafeXml:
        pass  # an unknown name in a text that is already decoded: the text is what counts
    return text[:declared.start(3)] + "UTF-8" + text[declared.end(3):]


def parse_safely(data: bytes | str) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size, depth and element count."""
    return read_safely(data)[1]


def read_safely(data: bytes | str) -> tuple[str, etree._Element]:
    """`parse_safely`, also answering the document's text (see `xml_text`): what a version stores."""
    text = xml_text(data)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeXml("xml_bad_encoding", "the text contains characters that are not valid Unicode "
                                            "(lone surrogates)") from None
    if len(encoded) > MAX_BPMN_BYTES:
        raise UnsafeXml("xml_too_large", f"file is larger than {MAX_BPMN_BYTES // (1024 * 1024)} MB")
    if _DOCTYPE.search(encoded):
        # Refuse before parsing: nothing is expanded, nothing fetched (XML bombs, XXE).
        raise UnsafeXml("xml_doctype", "DOCTYPE and ENTITY declarations are not allowed in BPMN files")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_blank_text=False,
    )
    try:
        root = etree.fromstring(encoded, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if hasattr(exc, "lineno") else None
        raise UnsafeXml("xml_not_well_formed", f"XML is not well-formed: {exc.msg}", line) from None
    count = 0
    for _ in root.iter():
        count += 1
        if count > MAX_ELEMENTS:
            raise UnsafeXml("xml_too_many_elements", f"more than {MAX_ELEMENTS:,} elements")
    _check_depth(root)
    return text, root


def _check_depth(root) -> None:
    stack = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeXml("xml_too_deep", f"elements nested deeper than {MAX_DEPTH}", el.sourceline)
        stack.extend((child, depth + 1) for child in el)


def local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def properties(el) -> dict[str, str]:
    """`spiffworkflow:properties` and `camunda:properties` (any namespace) as one flat dict."""
    out: dict[str, str] = {}
    ext = el.find("bpmn:extensionElements", NS)
    if ext is None:
        return out
    for prop in ext.iter():
        if local(prop.tag) == "property" and prop.get("name"):
            out[prop.get("name")] = prop.get("value", "")
    return out


RECEIVING, PARENT = "@receiving", "@parent"


@dataclass
class Step:
    id: str
    name: str
    role: str | None
    lane: str | None
    duration: str | None
    decisions: list[str] = field(default_factory=list)
    # Where the lane's role is held: "@receiving" (the unit that received the dossier), "@parent" (its
    # parent unit) or a unit code (DESIGN.md, "BPMN conventions").
    unit: str = RECEIVING
    # The button text of each decision: the name of the flow that decision takes out of the step (the
    # branch of the decision gateway, or the step's one outgoing flow); decisions without one are absent.
    labels: dict[str, str] = field(default_factory=dict)
    # What the step records about the result document when it approves (property `result`, see
    # docs/bpmn-conventions.md): "file" (the signed PDF) and/or "number" (its number and signing date).
    result: list[str] = field(default_factory=list)


@dataclass
class ProcessModel:
    process_id: str
    steps: dict[str, Step]
    lanes: dict[str, str]  # lane id -> role
    supplement_events: list[str]


def executable_processes(root) -> list:
    procs = root.findall("bpmn:process", NS)
    executable = [p for p in procs if p.get("isExecutable", "false").lower() == "true"]
    return executable or procs


def _lane_roles(process) -> tuple[dict[str, str], dict[str, tuple[str, str, str]]]:
    lanes: dict[str, str] = {}
    node_lane: dict[str, tuple[str, str, str]] = {}

    def walk(lane_set):
        for lane in lane_set.findall("bpmn:lane", NS):
            props = properties(lane)
            role = props.get("role") or (lane.get("name") or "").strip()
            unit = (props.get("unit") or "").strip() or RECEIVING
            lanes[lane.get("id")] = role
            for ref in lane.findall("bpmn:flowNodeRef", NS):
                if ref.text:
                    node_lane[ref.text.strip()] = (lane.get("id"), role, unit)
            child = lane.find("bpmn:childLaneSet", NS)
            if child is not None:
                walk(child)  # inner lanes overwrite the outer lane's claim

    for lane_set in process.findall("bpmn:laneSet", NS):
        walk(lane_set)
    return lanes, node_lane


def decision_values(condition: str) -> list[str]:
    """String values a condition compares `decision` with (== or in)."""
    if len(condition) > MAX_CONDITION_CHARS:
        return []
    try:
        tree = ast.parse(condition.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a NUL byte
        return []
    values: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1:
            continue
        left, right, op = node.left, node.comparators[0], node.ops[0]
        if isinstance(op, ast.Eq):
            for a, b in ((left, right), (right, left)):
                if isinstance(a, ast.Name) and a.id == "decision" and isinstance(b, ast.Constant) and isinstance(b.value, str):
                    values.append(b.value)
        elif isinstance(op, ast.In) and isinstance(left, ast.Name) and left.id == "decision":
            if isinstance(right, (ast.Tuple, ast.List, ast.Set)):
                values += [e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return values


MAX_LABEL_CHARS = 80
RESULT_FILE, RESULT_NUMBER = "file", "number"
RESULT_VALUES = (RESULT_FILE, RESULT_NUMBER)


def flow_label(flow) -> str:
    """A sequence flow's name as a button text: whitespace (a modeler's line breaks) collapsed, bounded."""
    return " ".join((flow.get("name") or "").split())[:MAX_LABEL_CHARS]


def result_values(text: str | None) -> list[str]:
    """The `result` property's values (separated by commas or spaces), lower-cased, each once, in order.
    Unknown values are kept, for validation to name them."""
    return list(dict.fromkeys(v.lower() for v in re.split(r"[\s,;]+", text or "") if v))


def read_model(root, process_id: str | None = None) -> ProcessModel:
    procs = executable_processes(root)
    if process_id:
        procs = [p for p in root.findall("bpmn:process", NS) if p.get("id") == process_id]
    if not procs:
        raise ValueError("the file contains no BPMN process")
    process = procs[0]
    lanes, node_lane = _lane_roles(process)
    by_id = {el.get("id"): el for el in process.iter() if el.get("id")}
    outgoing: dict[str, list] = {}
    for flow in process.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        outgoing.setdefault(flow.get("sourceRef"), []).append(flow)

    steps: dict[str, Step] = {}
    for task in process.iter(f"{{{BPMN_NS}}}userTask"):
        tid = task.get("id")
        props = properties(task)
        lane_id, role, unit = node_lane.get(tid, (None, None, RECEIVING))
        role = props.get("role") or role
        decisions: list[str] = []
        labels: dict[str, str] = {}
        for flow in outgoing.get(tid, []):
            target = by_id.get(flow.get("targetRef"))
            if target is not None and local(target.tag) == "exclusiveGateway":
                for gflow in outgoing.get(target.get("id"), []):
                    cond = gflow.find("bpmn:conditionExpression", NS)
                    if cond is not None and cond.text:
                        for value in decision_values(cond.text):
                            if value not in decisions:
                                decisions.append(value)
                            if flow_label(gflow) and value not in labels:
                                labels[value] = flow_label(gflow)
        if not decisions and len(outgoing.get(tid, [])) == 1 and flow_label(outgoing[tid][0]):
            labels["approve"] = flow_label(outgoing[tid][0])  # the step's one way on: its name says what "done" does
        steps[tid] = Step(
            id=tid,
            name=(task.get("name") or tid).strip(),
            role=role or None,
            lane=lane_id,
            duration=props.get("duration") or None,
            decisions=decisions or ["approve"],
            unit=unit,
            labels=labels,
            result=result_values(props.get("result")),
        )

    message_names = {m.get("id"): (m.get("name") or m.get("id")) for m in root.findall("bpmn:message", NS)}
    supplement_events = []
    for event in process.iter(f"{{{BPMN_NS}}}intermediateCatchEvent", f"{{{BPMN_NS}}}receiveTask"):
        for med in event.iter(f"{{{BPMN_NS}}}messageEventDefinition"):
            if message_names.get(med.get("messageRef")) == SUPPLEMENT_MESSAGE:
                supplement_events.append(event.get("id"))
        if local(event.tag) == "receiveTask" and message_names.get(event.get("messageRef")) == SUPPLEMENT_MESSAGE:
            supplement_events.append(event.get("id"))
    return ProcessModel(process_id=process.get("id"), steps=steps, lanes=lanes, supplement_events=supplement_events)
