"""Benchmark: how long BPMN validation takes on hostile-but-accepted diagrams, as a ratio against
parsing the same file with lxml (the floor: every validation reads the whole document once).

    .venv/bin/python bench/validation.py [--rounds 3]

Diagrams (generated, motcua conventions):
- `diamonds(n)`: n parallel split/join diamonds in a row, one step in each branch, with the layout a
  modeler writes. 2**n paths from the start to the end: a path-enumerating statutory-duration check
  takes exponential time (21 diamonds: 22 s before issue #11).
- `chain(n)`: n steps in a row (a recursive path walk exhausts the stack).
- `bare(elements)`: the worst shape we know for SpiffWorkflow's parser, at the element cap.
- `gateways(n, pad_to)`: n exclusive data-based gateways without a layout, padded towards the size cap
  (issue #11: 2.6 MB, 6,000 gateways, 19 s before the caps and the linear checks).
The tests (tests/test_validation_bounds.py) import these generators and assert correctness only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bpmn_builder import Flow, Node, Process, render  # noqa: E402

LANES = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]
ROLES = {"mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"}


def diamonds(n: int, short: str = "PT1H", long: str = "PT2H") -> str:
    """start → (split → A_i [short] ‖ B_i [long] → join) × n → end. Longest path: n × long."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0)]
    flows: list[Flow] = []
    prev, col = "S", 1
    for i in range(n):
        split, a, b, join = f"Split_{i}", f"A_{i}", f"B_{i}", f"Join_{i}"
        nodes += [Node(split, "parallelGateway", "", "Lane_mc", col),
                  Node(a, "userTask", f"A {i}", "Lane_mc", col + 1, {"duration": short}),
                  Node(b, "userTask", f"B {i}", "Lane_cv", col + 1, {"duration": long}),
                  Node(join, "parallelGateway", "", "Lane_mc", col + 2)]
        flows += [Flow(f"F_{i}_in", prev, split), Flow(f"F_{i}_a", split, a), Flow(f"F_{i}_b", split, b),
                  Flow(f"F_{i}_a2", a, join), Flow(f"F_{i}_b2", b, join)]
        prev, col = join, col + 3
    nodes.append(Node("E", "endEvent", "end", "Lane_mc", col))
    flows.append(Flow("F_end", prev, "E"))
    return render(Process("Process_diamonds", "diamonds", LANES, nodes, flows))


HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">\n'
        '<bpmn:process id="Process_1" isExecutable="true">\n')
TAIL = "</bpmn:process>\n</bpmn:definitions>\n"


def _flow(fid: str, source: str, target: str, condition: str | None = None) -> str:
    cond = (f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>'
            if condition else "")
    return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">{cond}</bpmn:sequenceFlow>'


def _lane(lane_id: str, role: str, refs: list[str]) -> str:
    return (f'<bpmn:lane id="{lane_id}" name="{role}">'
            + "".join(f"<bpmn:flowNodeRef>{r}</bpmn:flowNodeRef>" for r in refs) + "</bpmn:lane>")


def gateways(n: int, pad_to: int = 0, branches: int = 100) -> str:
    """n exclusive gateways without a layout (the shape of issue #11's 2.6 MB file): n/2 data-based
    diamonds (`channel == "online"` / `"post"`, no default), in `branches` parallel chains between a split
    and a join, in one lane; names padded so the file is about `pad_to` bytes."""
    per_branch = max(1, n // 2 // branches)
    nodes = ['<bpmn:startEvent id="S"/>', '<bpmn:parallelGateway id="PS"/>', '<bpmn:parallelGateway id="PJ"/>',
             '<bpmn:endEvent id="E"/>']
    refs, flows = ["S", "PS", "PJ", "E"], [_flow("FS", "S", "PS"), _flow("FE", "PJ", "E")]
    for b in range(branches):
        prev = "PS"
        for i in range(per_branch):
            g, j = f"G{b}_{i}", f"J{b}_{i}"
            nodes += [f'<bpmn:exclusiveGateway id="{g}" name="?"/>', f'<bpmn:exclusiveGateway id="{j}" name=""/>']
            refs += [g, j]
            flows += [_flow(f"Fi{b}_{i}", prev, g), _flow(f"Fo{b}_{i}", g, j, "channel == &quot;online&quot;"),
                      _flow(f"Fp{b}_{i}", g, j, "channel == &quot;post&quot;")]
            prev = j
        flows.append(_flow(f"Fz{b}", prev, "PJ"))
    body = "\n".join([_lane_set([("Lane_1", "mot_cua", refs)]), *nodes, *flows])
    xml = HEAD + body + "\n" + TAIL
    if pad_to > len(xml.encode()):
        per_node = (pad_to - len(xml.encode())) // (2 * per_branch * branches)
        xml = xml.replace(' name="?"/>', f' name="?{"x" * per_node}"/>').replace(' name=""/>', f' name="{"y" * per_node}"/>')
    return xml


def _lane_set(lanes: list[tuple[str, str, list[str]]]) -> str:
    return '<bpmn:laneSet id="LaneSet_1">' + "".join(_lane(*lane) for lane in lanes) + "</bpmn:laneSet>"


def bare(elements: int, branches: int = 100) -> str:
    """The worst shape we know for SpiffWorkflow's parser at a given element count: pass-through parallel
    gateways in `branches` parallel chains, all in one lane (3 elements each: gateway, lane reference,
    flow). Valid; `elements` is the total element count, roughly."""
    per_branch = max(1, (elements - 20 - branches) // 3 // branches)
    nodes = ['<bpmn:startEvent id="S"/>', '<bpmn:parallelGateway id="PS"/>', '<bpmn:parallelGateway id="PJ"/>',
             '<bpmn:endEvent id="E"/>']
    refs, flows = ["S", "PS", "PJ", "E"], [_flow("FS", "S", "PS"), _flow("FE", "PJ", "E")]
    for b in range(branches):
        prev = "PS"
        for i in range(per_branch):
            g = f"G{b}_{i}"
            nodes.append(f'<bpmn:parallelGateway id="{g}"/>')
            refs.append(g)
            flows.append(_flow(f"F{b}_{i}", prev, g))
            prev = g
        flows.append(_flow(f"Fz{b}", prev, "PJ"))
    return HEAD + "\n".join([_lane_set([("Lane_1", "mot_cua", refs)]), *nodes, *flows]) + "\n" + TAIL


def chain(n: int, duration: str = "PT1M") -> str:
    """start → n user tasks in a row → end, one lane, no layout. Longest path: n × duration."""
    tasks = [f"T{i}" for i in range(n)]
    ids = ["S", *tasks, "E"]
    nodes = ['<bpmn:startEvent id="S"/>', '<bpmn:endEvent id="E"/>']
    nodes += [f'<bpmn:userTask id="{t}" name="{t}"><bpmn:extensionElements><spiffworkflow:properties>'
              f'<spiffworkflow:property name="duration" value="{duration}"/></spiffworkflow:properties>'
              "</bpmn:extensionElements></bpmn:userTask>" for t in tasks]
    flows = [_flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(ids, ids[1:]))]
    return HEAD + "\n".join([_lane_set([("Lane_1", "chuyen_vien", ids)]), *nodes, *flows]) + "\n" + TAIL


def _time(fn, rounds: int) -> float:
    runs = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    from lxml import etree

    from engine.workflow import validation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from engine.workflow.bpmn_xml import MAX_BPMN_BYTES, MAX_ELEMENTS

    cases = [("21 parallel diamonds", diamonds(21), 6), ("25 parallel diamonds", diamonds(25), 7),
             ("chain of 1,200 steps", chain(1200), 3),
             (f"bare gateways, {MAX_ELEMENTS:,} elements", bare(MAX_ELEMENTS - 100), 30),
             ("6,000 gateways near the size cap", gateways(6000, pad_to=MAX_BPMN_BYTES - 50_000), 30),
             ("a file over the size cap", gateways(60, pad_to=MAX_BPMN_BYTES + 1000), 30)]
    print(f"limits: {MAX_BPMN_BYTES:,} bytes, {MAX_ELEMENTS:,} elements")
    print(f"{'diagram':38} {'bytes':>10} {'lxml parse':>11} {'validate':>9} {'ratio':>7}  verdict")
    for name, xml, days in cases:
        data = xml.encode()
        parse = _time(lambda data=data: etree.fromstring(data), args.rounds)
        result = None

        def run(xml=xml, days=days):
            nonlocal result
            result = validation.validate(xml, days, ROLES)

        took = _time(run, args.rounds)
        verdict = "valid" if result.valid else ", ".join(sorted({p.code for p in result.problems}))
        print(f"{name:38} {len(data):>10,} {parse * 1000:>9.1f}ms {took:>8.3f}s {took / parse:>6.0f}x  {verdict}")


if __name__ == "__main__":
    main()
