"""BPMN validation: every problem at once, each with severity, a stable code and the element id.

Covers what the engine needs before a version can run: safe XML, the Spiff parser's verdict, the
3.2.0 gaps from SPIFF-NOTES.md that matter here, and motcua's conventions (roles, durations
within the statutory time, decisions, safe expressions).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.workflow import bpmn_xml, runtime, safe_eval
from engine.workflow.bpmn_xml import BPMN_NS, NS, local
from engine.workflow.workcal import InvalidDuration, WorkingCalendar, parse_duration

ERROR, WARNING = "error", "warning"


MESSAGES_VI = {
    "xml_doctype": "Tệp có khai báo DOCTYPE/ENTITY: không được phép (nguy cơ bom XML, đọc tệp ngoài).",
    "xml_not_well_formed": "Tệp không phải XML hợp lệ (thiếu thẻ đóng, ký tự lạ…).",
    "xml_too_deep": "Cấu trúc XML lồng quá sâu.",
    "xml_too_large": f"Tệp quá lớn (tối đa {bpmn_xml.MAX_BPMN_BYTES // (1024 * 1024)} MB).",
    "xml_too_many_elements": f"Tệp có quá nhiều phần tử (tối đa {bpmn_xml.MAX_ELEMENTS:,} thẻ XML).".replace(",", "."),
    "xml_bad_encoding": "Không đọc được tệp theo bảng mã của nó (khai báo encoding hoặc BOM); hãy lưu lại tệp "
                        "dạng UTF-8.",
    "not_bpmn": "Tệp không phải BPMN 2.0 (thiếu bpmn:definitions).",
    "no_process": "Tệp không có quy trình (bpmn:process) nào.",
    "reserved_id": "Mã phần tử trùng với tên dành riêng của hệ thống; hãy đổi mã.",
    "flow_target_missing": "Luồng trỏ tới phần tử không tồn tại.",
    "task_multiple_outgoing": "Một bước có hai luồng ra; hãy thêm cổng rẽ nhánh.",
    "disconnected_node": "Phần tử không nối với phần nào của quy trình.",
    "gateway_flow_without_condition": "Nhánh sau cổng rẽ thiếu điều kiện (và không phải nhánh mặc định).",
    "event_gateway_two_timers": "Cổng sự kiện có hai bộ hẹn giờ: SpiffWorkflow 3.2.0 tính sai; chỉ dùng một.",
    "unsafe_expression": "Biểu thức không được phép (chỉ dùng phép so sánh, phép tính đơn giản).",
    "unsafe_script": "Đoạn mã không được phép (chỉ gán biến và biểu thức đơn giản).",
    "timer_unquoted": "Biểu thức hẹn giờ phải đặt trong dấu nháy, ví dụ \"PT5M\".",
    "expression_limit": ("Biểu thức hoặc đoạn mã vượt giới hạn an toàn của hệ thống (số mũ, độ rộng hoặc số lần "
                         "lặp quá lớn; working_days nhận từ 0 đến {days} ngày làm việc, working_hours từ 0 đến {hours} "
                         "giờ làm việc).").format(
        days=f"{safe_eval.ARGUMENT_RANGES['working_days'][1]:,}".replace(",", "."),
        hours=f"{safe_eval.ARGUMENT_RANGES['working_hours'][1]:,}".replace(",", ".")),
    "task_without_role": "Bước không nằm trong làn nào ghi vai trò.",
    "unknown_role": "Làn ghi một vai trò chưa có trong hệ thống.",
    "task_without_duration": "Bước chưa có thời hạn xử lý (thuộc tính duration).",
    "bad_duration": "Thời hạn xử lý không hợp lệ: ghi số giờ làm việc hoặc số ngày làm việc (trong tệp BPMN: "
                    "thuộc tính duration theo ISO 8601).",
    "durations_exceed_statutory": "Tổng thời hạn các bước trên một đường đi vượt thời hạn giải quyết của thủ tục.",
    "not_executable": "Bộ máy quy trình không dựng được quy trình này.",
    "gateway_may_dead_end": "Cổng rẽ không có nhánh mặc định: nếu không điều kiện nào đúng, hồ sơ dừng tại đây.",
    "decision_unreadable": "Nhánh này chưa gắn với quyết định (nút bấm) nào, nên không nút nào chọn được nó: chọn "
                           "«Quyết định (nút bấm) dẫn tới nhánh này» cho nhánh.",
    "unknown_unit": "Làn ghi một đơn vị không có trong hệ thống (dùng @receiving, @parent hoặc mã đơn vị).",
    "refusal_not_signed": "Từ chối giải quyết (mẫu 03) phải do Lãnh đạo cơ quan ký: nhánh từ chối phải đi qua "
                          "một bước của Lãnh đạo cơ quan trước khi kết thúc.",
    "supplement_path_shape": "Nhánh yêu cầu bổ sung phải dẫn tới sự kiện chờ nhận hồ sơ bổ sung (supplement_received).",
    "result_without_approve": "Bước ghi nhận văn bản kết quả phải có nhánh đi tiếp với quyết định «Chuyển xử lý»: "
                              "chọn quyết định này cho nhánh đi tiếp của cổng rẽ sau bước, hoặc đặt «Kết quả của "
                              "bước» là «Không ghi kết quả».",
    "bad_result_property": "Kết quả của bước không hợp lệ: chỉ nhận đính kèm văn bản ký số (PDF), ghi số và ngày ký "
                           "văn bản, hoặc cả hai.",
}


@dataclass
class Problem:
    severity: str
    code: str
    element_id: str | None
    message: str
    # The specifics (a value, the steps of a path) in Vietnamese, appended to the code's message.
    detail_vi: str = ""

    @property
    def message_vi(self) -> str:
        base = MESSAGES_VI.get(self.code, self.message)
        return f"{base} {self.detail_vi}" if self.detail_vi else base

    def as_dict(self) -> dict:
        data = asdict(self)
        del data["detail_vi"]
        return {**data, "message_vi": self.message_vi}


@dataclass
class Result:
    problems: list[Problem]
    model: bpmn_xml.ProcessModel | None = None
    parsed: runtime.ParsedProcess | None = None
    # The document as text, decoded per its BOM or XML declaration (bpmn_xml.xml_text): what a version stores.
    text: str | None = None

    @property
    def valid(self) -> bool:
        return not any(p.severity == ERROR for p in self.problems)


def validate(xml: bytes | str, statutory_days: int | None = None, known_roles: set[str] | None = None,
             calendar: WorkingCalendar | None = None, known_units: set[str] | None = None) -> Result:
    """Every problem of the file at once. Bounded: the file's size and element count are capped
    (bpmn_xml.MAX_*), and every check below is linear in the diagram (or close to it)."""
    problems: list[Problem] = []
    try:
        text, root = bpmn_xml.read_safely(xml)
    except bpmn_xml.UnsafeXml as exc:
        return Result([Problem(ERROR, exc.code, None, str(exc))])
    if local(root.tag) != "definitions" or etree_ns(root.tag) != BPMN_NS:
        return Result([Problem(ERROR, "not_bpmn", None, "the root element is not bpmn:definitions")], text=text)
    processes = bpmn_xml.executable_processes(root)
    if not processes:
        return Result([Problem(ERROR, "no_process", None, "the file contains no BPMN process")], text=text)
    process = processes[0]
    pid = process.get("id")

    ids = {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    for el in process.iter():
        if isinstance(el.tag, str) and el.get("id") in runtime.RESERVED_IDS:
            problems.append(Problem(ERROR, "reserved_id", el.get("id"),
                                    f"id '{el.get('id')}' is reserved by the engine; rename it"))
    flows = list(process.iter(f"{{{BPMN_NS}}}sequenceFlow"))
    for flow in flows:
        for attr in ("sourceRef", "targetRef"):
            if flow.get(attr) not in ids:
                problems.append(Problem(ERROR, "flow_target_missing", flow.get("id"),
                                        f"sequence flow {flow.get('id')} points at missing element '{flow.get(attr)}'"))
    _check_structure(process, flows, problems)
    _check_expressions(process, problems)

    model = None
    try:
        model = bpmn_xml.read_model(root, pid)
    except ValueError as exc:
        problems.append(Problem(ERROR, "no_process", None, str(exc)))
    if model is not None:
        _check_conventions(model, process, flows, statutory_days, known_roles, calendar or WorkingCalendar(), problems)
        _check_units(model, known_units, problems)
        _check_decisions(process, flows, model, problems)

    parsed = None
    if not any(p.severity == ERROR for p in problems):
        try:
            parsed = runtime.parse(root, pid)
        except runtime.ParseFailed as exc:
            problems.append(Problem(ERROR, "not_executable", exc.element_id, str(exc)))
    return Result(problems, model, parsed, text)


def etree_ns(tag: str) -> str:
    return tag[1:].split("}")[0] if tag.startswith("{") else ""


_FLOW_NODES = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "userTask", "task", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "subProcess", "callActivity",
}
_ACTIVITIES = {"userTask", "task", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask", "businessRuleTask"}


def _check_structure(process, flows, problems: list[Problem]) -> None:
    out: dict[str, list] = {}
    inc: dict[str, list] = {}
    for f in flows:
        out.setdefault(f.get("sourceRef"), []).append(f)
        inc.setdefault(f.get("targetRef"), []).append(f)
    children: dict[str, object] = {}
    for el in process:
        if isinstance(el.tag, str) and el.get("id"):
            children.setdefault(el.get("id"), el)  # the first of duplicate ids, as before
    user_tasks = {el.get("id") for el in process.iter(f"{{{BPMN_NS}}}userTask")}
    for el in process:
        if not isinstance(el.tag, str):
            continue
        kind, eid = local(el.tag), el.get("id")
        if kind not in _FLOW_NODES:
            continue
        if kind in _ACTIVITIES and len(out.get(eid, [])) > 1:
            problems.append(Problem(ERROR, "task_multiple_outgoing", eid,
                                    "a task has two outgoing flows; put an explicit gateway after it"))
        if kind != "boundaryEvent" and not out.get(eid) and not inc.get(eid):
            problems.append(Problem(ERROR, "disconnected_node", eid, "this element is connected to nothing"))
        if kind == "exclusiveGateway" and len(out.get(eid, [])) > 1:
            conditioned = [f for f in out[eid] if f.find("bpmn:conditionExpression", NS) is not None]
            if not el.get("default") and len(conditioned) < len(out[eid]):
                problems.append(Problem(ERROR, "gateway_flow_without_condition", eid,
                                        "every outgoing flow of an exclusive gateway needs a condition or must be its default"))
            elif not el.get("default") and not _is_decision_gateway(eid, inc, out, user_tasks):
                # Decision gateways are safe: the UI offers exactly the values their branches test.
                problems.append(Problem(WARNING, "gateway_may_dead_end", eid,
                                        "no default flow: if no condition matches, the dossier stops here"))
        if kind == "eventBasedGateway":
            timers = 0
            for f in out.get(eid, []):
                target = children.get(f.get("targetRef"))
                if target is not None and target.find("bpmn:timerEventDefinition", NS) is not None:
                    timers += 1
            if timers > 1:
                problems.append(Problem(ERROR, "event_gateway_two_timers", eid,
                                        "SpiffWorkflow 3.2.0 uses the first timer's due time for both; use one timer"))


def _is_decision_gateway(gateway_id: str, incoming: dict, outgoing: dict, user_tasks: set[str]) -> bool:
    """Right after a user task, with every branch testing `decision`."""
    sources = {f.get("sourceRef") for f in incoming.get(gateway_id, [])}
    if not sources or not sources <= user_tasks:
        return False
    return all(bpmn_xml.decision_values((f.findtext("bpmn:conditionExpression", "", NS) or ""))
               for f in outgoing.get(gateway_id, []))


def _refusal(check, text: str, code: str) -> tuple[str, str] | None:
    """Why `check` (safe_eval.check_expression or check_script) refuses `text`: (problem code, reason), or
    None. `code` unless a constant is already beyond the evaluator's bounds (`expression_limit`: a huge
    exponent, width or repetition, a working-day count out of range). An expression nested too deeply for
    Python's parser is refused too, instead of failing the whole validation."""
    try:
        check(text)
    except safe_eval.LimitExceeded as exc:
        return "expression_limit", str(exc)
    except safe_eval.UnsafeExpression as exc:
        return code, str(exc)
    except (RecursionError, MemoryError, ValueError):
        return code, "the expression is nested too deeply or cannot be read"
    return None


def _check_expressions(process, problems: list[Problem]) -> None:
    for cond in process.iter(f"{{{BPMN_NS}}}conditionExpression"):
        owner = cond.getparent().get("id")
        refused = _refusal(safe_eval.check_expression, cond.text or "", "unsafe_expression")
        if refused:
            problems.append(Problem(ERROR, refused[0], owner, f"condition refused: {refused[1]}"))
    for script in process.iter(f"{{{BPMN_NS}}}script"):
        owner = script.getparent().get("id")
        refused = _refusal(safe_eval.check_script, script.text or "", "unsafe_script")
        if refused:
            problems.append(Problem(ERROR, refused[0], owner, f"script refused: {refused[1]}"))
    for ted in process.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
        owner = ted.getparent().get("id")
        for expr in ted:
            if not isinstance(expr.tag, str):
                continue
            text = (expr.text or "").strip()
            if text[:1] in ("P", "R") or (text[:1].isdigit() and "-" in text):
                problems.append(Problem(ERROR, "timer_unquoted", owner,
                                        f"timer expression {text} must be quoted (\"{text}\"): it is evaluated as an expression"))
                continue
            refused = _refusal(safe_eval.check_expression, text, "unsafe_expression")
            if refused:
                problems.append(Problem(ERROR, refused[0], owner, f"timer expression refused: {refused[1]}"))


def _check_decisions(process, flows, model, problems) -> None:
    """Branches after a step are chosen by its `decision`: each conditioned branch must test a decision
    value the UI can offer as a button, and a request_supplement branch must wait for the citizen's
    supplement (an intermediate message catch event for `supplement_received`)."""
    by_id = {el.get("id"): el for el in process.iter() if isinstance(el.tag, str) and el.get("id")}
    out: dict[str, list] = {}
    for f in flows:
        out.setdefault(f.get("sourceRef"), []).append(f)
    unsigned_end = None  # computed once, when a refuse branch needs it
    for step_id in model.steps:
        for f in out.get(step_id, []):
            gateway = by_id.get(f.get("targetRef"))
            if gateway is None or local(gateway.tag) != "exclusiveGateway":
                continue
            for branch in out.get(gateway.get("id"), []):
                cond = branch.find("bpmn:conditionExpression", NS)
                if cond is None or not (cond.text or "").strip():
                    continue
                values = bpmn_xml.decision_values(cond.text)
                if not values:
                    problems.append(Problem(ERROR, "decision_unreadable", branch.get("id"),
                                            "this branch's condition does not test decision == \"…\": no button "
                                            "can choose it"))
                if "refuse" in values and model.steps[step_id].role not in REFUSAL_SIGNERS:
                    if unsigned_end is None:
                        unsigned_end = _unsigned_ends(flows, model, by_id)
                    unsigned = unsigned_end.get(branch.get("targetRef"))
                    if unsigned is not None:
                        problems.append(Problem(ERROR, "refusal_not_signed", branch.get("id"),
                                                f"the refuse branch reaches end event '{unsigned}' without a step of "
                                                f"the agency's leader ({', '.join(sorted(REFUSAL_SIGNERS))}): form 03 "
                                                "is signed by the leader (L11)"))
                if "request_supplement" in values:  # (the second request is refused at run time, from history)
                    target = by_id.get(branch.get("targetRef"))
                    if target is None or target.get("id") not in model.supplement_events:
                        problems.append(Problem(ERROR, "supplement_path_shape", branch.get("id"),
                                                "the request_supplement branch must lead to an intermediate message "
                                                "catch event for 'supplement_received'"))


def _check_units(model, known_units: set[str] | None, problems) -> None:
    """A lane's `unit` is @receiving, @parent or the code of an existing unit (liên thông)."""
    for step in model.steps.values():
        unit = step.unit
        if unit in (bpmn_xml.RECEIVING, bpmn_xml.PARENT):
            continue
        if unit.startswith("@") or (known_units is not None and unit not in known_units):
            problems.append(Problem(ERROR, "unknown_unit", step.id,
                                    f"step '{step.name}' is in a lane held at unit '{unit}', which does not exist "
                                    "(use @receiving, @parent or a unit code)", f"Đơn vị: «{unit}»."))


# Roles whose step signs a refusal (form 03, L11): the agency's leader.
REFUSAL_SIGNERS = frozenset({"lanh_dao"})


def _unsigned_ends(flows, model, by_id: dict) -> dict[str, str]:
    """For every node from which an end event is reachable without passing a step of a refusal signer:
    one such end event. One backward sweep from the end events (linear in the diagram), instead of a
    search from every refuse branch."""
    back: dict[str, list[str]] = {}
    for f in flows:
        back.setdefault(f.get("targetRef"), []).append(f.get("sourceRef"))

    def signer(node: str) -> bool:
        step = model.steps.get(node)
        return step is not None and step.role in REFUSAL_SIGNERS

    reached: dict[str, str] = {}
    queue = [eid for eid, el in by_id.items() if local(el.tag) == "endEvent" and not signer(eid)]
    for end in queue:
        reached[end] = end
    while queue:
        node = queue.pop()
        for before in back.get(node, []):
            if before not in reached and not signer(before):
                reached[before] = reached[node]
                queue.append(before)
    return reached


def _check_conventions(model, process, flows, statutory_days, known_roles, calendar, problems) -> None:
    day = calendar.day_seconds
    seconds: dict[str, float] = {}
    for step in model.steps.values():
        if not step.role:
            problems.append(Problem(ERROR, "task_without_role", step.id, "user task is not in a lane naming a role"))
        elif known_roles is not None and step.role not in known_roles:
            problems.append(Problem(ERROR, "unknown_role", step.id, f"lane role '{step.role}' is not a known role",
                                    f"Vai trò: «{step.role}»."))
        unknown = [v for v in step.result if v not in bpmn_xml.RESULT_VALUES]
        if unknown:
            problems.append(Problem(ERROR, "bad_result_property", step.id,
                                    f"property result: unknown value(s) {', '.join(unknown)}; use "
                                    f"{' and/or '.join(bpmn_xml.RESULT_VALUES)}", f"Giá trị hiện có: «{', '.join(unknown)}»."))
        if step.result and step.decisions and "approve" not in step.decisions:
            # the result is asked when the step approves: a step whose forward decision has another name
            # would move on without it
            problems.append(Problem(ERROR, "result_without_approve", step.id,
                                    "a step that records the result document must move forward with the "
                                    f"decision 'approve' (its decisions: {', '.join(step.decisions)})"))
        if not step.duration:
            problems.append(Problem(ERROR, "task_without_duration", step.id, "user task has no 'duration' property"))
            continue
        try:
            seconds[step.id] = parse_duration(step.duration, day)
        except InvalidDuration as exc:
            problems.append(Problem(ERROR, "bad_duration", step.id, str(exc), f"Giá trị hiện có: «{step.duration}»."))
    if statutory_days is None:
        return
    budget = max(statutory_days, 1) * day
    worst, worst_path = _longest_path(flows, seconds, _starts(process, model), set(model.supplement_events))
    if worst > budget + 1e-6:
        last_task = next((n for n in reversed(worst_path) if n in seconds), None)
        problems.append(Problem(
            ERROR, "durations_exceed_statutory", last_task,
            f"step durations along {' → '.join(n for n in worst_path if n in seconds)} add up to "
            f"{worst / 3600:g} working hours, more than the statutory {statutory_days} working day(s)",
            f"Đường đi {' → '.join(f'«{model.steps[n].name or n}»' for n in worst_path if n in seconds)}: tổng "
            f"{_vi_number(worst / 3600)} giờ làm việc, thời hạn giải quyết {statutory_days} ngày làm việc "
            f"({_vi_number(budget / 3600)} giờ).",
        ))


def _vi_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


def _starts(process, model) -> list[str]:
    return [el.get("id") for el in process.iter(f"{{{BPMN_NS}}}startEvent")] + list(model.supplement_events)


def _longest_path(flows, seconds: dict[str, float], starts: list[str], restarts: set[str]) -> tuple[float, list[str]]:
    """The largest sum of step durations along a path from a start, and that path. Linear in the diagram.

    The clock restarts when a supplement arrives, so a path ends before a supplement catch event (which
    is itself a start). A path never takes a node twice: loops (sending a dossier back to appraisal) are
    cut where a depth-first search from the starts (in order, following flows in document order) first
    closes them: the back edges of that search are dropped, and what remains is acyclic. The answer is
    the longest path of that acyclic graph, found in one pass in topological order.

    This is the choice made for linear time: the longest *simple* path of a graph with cycles is
    NP-hard in general (the previous check enumerated every path: 2**21 of them for 21 parallel
    diamonds). On a loop back to an earlier step, as the conventions draw them (entered at its head,
    e.g. "return" to appraisal), the two agree. A path that enters a loop from the side and then runs
    through the loop's back flow is not counted (tests/test_validation_bounds.py shows one).
    """
    out: dict[str, list[str]] = {}
    for f in flows:
        source, target = f.get("sourceRef"), f.get("targetRef")
        if target not in restarts:
            out.setdefault(source, []).append(target)
    # Iterative depth-first search: colour 1 = on the stack, 2 = finished; `order` is the post-order.
    colour: dict[str, int] = {}
    order: list[str] = []
    kept: dict[str, list[str]] = {}  # tree, forward and cross edges (back edges dropped)
    for start in dict.fromkeys(starts):
        if start in colour:
            continue
        colour[start] = 1
        stack = [(start, iter(out.get(start, ())))]
        while stack:
            node, successors = stack[-1]
            for nxt in successors:
                state = colour.get(nxt)
                if state == 1:
                    continue  # a back edge: it closes a loop
                kept.setdefault(node, []).append(nxt)
                if state is None:
                    colour[nxt] = 1
                    stack.append((nxt, iter(out.get(nxt, ()))))
                    break
            else:
                stack.pop()
                colour[node] = 2
                order.append(node)
    best: dict[str, float] = {}
    came_from: dict[str, str | None] = {}
    for start in starts:
        best[start] = max(best.get(start, 0.0), seconds.get(start, 0.0))
        came_from.setdefault(start, None)
    worst, worst_end = 0.0, None
    for node in reversed(order):  # topological order of the kept edges
        if node not in best:
            continue
        total = best[node]
        if total > worst:
            worst, worst_end = total, node
        for nxt in kept.get(node, ()):
            candidate = total + seconds.get(nxt, 0.0)
            if candidate > best.get(nxt, -1.0):
                best[nxt], came_from[nxt] = candidate, node
    path: list[str] = []
    node = worst_end
    while node is not None:
        path.append(node)
        node = came_from[node]
    return worst, path[::-1]
