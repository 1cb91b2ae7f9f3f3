"""The baseline every benchmark here divides by: one raw SpiffWorkflow cycle of a 10-step process,
in memory, with Spiff's stock serializer. Imports no engine code, so a benchmark comparing two trees
of motcua times the very same raw cycle on both sides."""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 10


def ten_step_process() -> str:
    """A one-lane process of STEPS user tasks in a row, built with tools/bpmn_builder.py (loaded by path)."""
    spec = importlib.util.spec_from_file_location("bpmn_builder", ROOT / "tools" / "bpmn_builder.py")
    builder = importlib.util.module_from_spec(spec)
    sys.modules["bpmn_builder"] = builder
    spec.loader.exec_module(builder)
    lanes = [("Lane_mc", "Một cửa", "mot_cua")]
    nodes = [builder.Node("S", "startEvent", "start", "Lane_mc", 0)]
    nodes += [builder.Node(f"Task_{i}", "userTask", f"Bước {i}", "Lane_mc", i + 1, {"duration": "PT30M"})
              for i in range(STEPS)]
    nodes.append(builder.Node("E", "endEvent", "end", "Lane_mc", STEPS + 1))
    chain = ["S"] + [f"Task_{i}" for i in range(STEPS)] + ["E"]
    flows = [builder.Flow(f"F{i}", a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))]
    return builder.render(builder.Process("Process_bench", "bench", lanes, nodes, flows))


class RawCycler:
    """One raw stock-serializer cycle per call (seconds), on an in-memory instance that restarts when
    done; called right before each persisted call so both see the same moment of the machine."""

    def __init__(self, xml: str):
        from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
        from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
        from SpiffWorkflow.util.task import TaskState

        parser = SpiffBpmnParser(validator=VALIDATOR)
        parser.add_bpmn_str(xml.encode())
        self.spec = parser.get_spec("Process_bench")
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
        self.workflow_cls, self.ready = BpmnWorkflow, TaskState.READY
        self.state = None
        self.last_cpu = 0.0

    def __call__(self) -> float:
        """Seconds of one cycle; the CPU seconds of this process it took are left in `last_cpu`."""
        if self.state is None:
            wf = self.workflow_cls(self.spec)
            wf.do_engine_steps()
            self.state = self.serializer.serialize_json(wf)
        t0, c0 = time.perf_counter(), time.process_time()
        wf = self.serializer.deserialize_json(self.state)
        task = next(t for t in wf.tasks.values() if t.state == self.ready and t.task_spec.manual)
        task.data.update({"decision": "approve"})
        task.run()
        wf.do_engine_steps()
        state = self.serializer.serialize_json(wf)
        elapsed, self.last_cpu = time.perf_counter() - t0, time.process_time() - c0
        self.state = None if wf.is_completed() else state
        return elapsed
