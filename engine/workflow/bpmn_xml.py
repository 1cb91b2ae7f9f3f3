"""Safe BPMN XML reading and the motcua conventions read off a diagram (lanes → roles, step
durations, decisions). No SpiffWorkflow here: this is what validation and the catalog share."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS}
MAX_BPMN_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64
MAX_ELEMENTS = 50_000
SUPPLEMENT_MESSAGE = "supplement_received"
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class UnsafeXml(ValueError):
    """The document is not well-formed, too large or deep, or carries a DTD / entities."""

    def __init__(self, code: str, message: str, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.line = line


def parse_safely(data: bytes | str) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size and depth."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BPMN_BYTES:
        raise UnsafeXml("xml_too_large", f"file is larger than {MAX_BPMN_BYTES // (1024 * 1024)} MB")
    if _DOCTYPE.search(data):
        # Refuse before parsing: nothing is expanded, nothing fetched (XML bombs, XXE).
        raise UnsafeXml("xml_doctype", "DOCTYPE and ENTITY declarations are not allowed in BPMN files")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_blank_text=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if hasattr(exc, "lineno") else None
        raise UnsafeXml("xml_not_well_formed", f"XML is not well-formed: {exc.msg}", line) from None
    count = 0
    for _ in root.iter():
        count += 1
        if count > MAX_ELEMENTS:
            raise UnsafeXml("xml_too_many_elements", f"more than {MAX_ELEMENTS} elements")
    _check_depth(root)
    return root


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
    try:
        tree = ast.parse(condition.strip(), mode="eval")
    except SyntaxError:
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
        for flow in outgoing.get(tid, []):
            target = by_id.get(flow.get("targetRef"))
            if target is not None and local(target.tag) == "exclusiveGateway":
                for gflow in outgoing.get(target.get("id"), []):
                    cond = gflow.find("bpmn:conditionExpression", NS)
                    if cond is not None and cond.text:
                        for value in decision_values(cond.text):
                            if value not in decisions:
                                decisions.append(value)
        steps[tid] = Step(
            id=tid,
            name=(task.get("name") or tid).strip(),
            role=role or None,
            lane=lane_id,
            duration=props.get("duration") or None,
            decisions=decisions or ["approve"],
            unit=unit,
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
