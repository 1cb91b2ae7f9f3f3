"""Small scenario BPMNs built with tools/bpmn_builder (the same builder as the shipped processes)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from bpmn_builder import Flow, Node, Process, render  # noqa: E402

LANES = [("Lane_mc", "Một cửa", "mot_cua"), ("Lane_cv", "Chuyên viên", "chuyen_vien")]


def linear_with(middle: list[Node], flows_between: list[Flow] | None = None, pid="Process_test") -> str:
    """start → Task_A (mot_cua) → middle… → Task_B (chuyen_vien) → end."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"})]
    nodes += middle
    nodes += [Node("Task_B", "userTask", "B", "Lane_cv", len(middle) + 2, {"duration": "PT1H"}),
              Node("E", "endEvent", "end", "Lane_cv", len(middle) + 3)]
    chain = ["S", "Task_A"] + [n.id for n in middle] + ["Task_B", "E"]
    flows = flows_between or [Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))]
    return render(Process(pid, "test", LANES, nodes, flows))


def gateway_process(condition: str) -> str:
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("G", "exclusiveGateway", "?", "Lane_mc", 2),
             Node("Task_B", "userTask", "B", "Lane_cv", 3, {"duration": "PT1H"}),
             Node("E", "endEvent", "end", "Lane_cv", 4),
             Node("E2", "endEvent", "end2", "Lane_mc", 4)]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "G"),
             Flow("F3", "G", "Task_B", condition=condition), Flow("F4", "G", "E2", condition='decision == "refuse"'),
             Flow("F5", "Task_B", "E")]
    return render(Process("Process_gw", "gw", LANES, nodes, flows))


def loop_process() -> str:
    """Task_A loops back to itself through a gateway while decision == 'return'."""
    nodes = [Node("S", "startEvent", "start", "Lane_mc", 0),
             Node("Task_A", "userTask", "A", "Lane_mc", 1, {"duration": "PT1H"}),
             Node("G", "exclusiveGateway", "?", "Lane_mc", 2),
             Node("E", "endEvent", "end", "Lane_mc", 3)]
    flows = [Flow("F1", "S", "Task_A"), Flow("F2", "Task_A", "G"),
             Flow("F3", "G", "Task_A", condition='decision == "return"'),
             Flow("F4", "G", "E", condition='decision == "approve"')]
    return render(Process("Process_loop", "loop", LANES, nodes, flows))
