"""The runtime wrapper: the only module that touches SpiffWorkflow (pinned to 3.2.0).

It parses BPMN with the Spiff parser, stores each spec once (referenced by hash from every
instance), runs every expression through `safe_eval`, routes Spiff's timer clock through
`engine.clock`, and works around the 3.2.0 pitfalls listed in SPIFF-NOTES.md. Nothing here
commits or touches the database: callers pass state in and take state out.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from uuid import UUID

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _spiff_timer
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.diff import SpecDiff, diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine import clock
from engine.errors import StepLimitExceeded
from engine.workflow import safe_eval
from engine.workflow.workcal import WorkingCalendar

SUPPORTED_SPIFF_VERSION = "3.2.0"
# The workarounds below are measured against this exact release (tests/test_runtime.py checks it).

RESERVED_IDS = frozenset({"Start", "End"})

# The largest serialized state of one dossier's instance (checked by `Instance.dump`, which every write of
# a dossier goes through). A 10-step procedure mid-run is ≈ 30 KB; 1 MB is ≈ 400 loop-backs.
MAX_STATE_BYTES = safe_eval.MAX_VALUE_BYTES
# Automatic steps (scripts, gateways, events) one action may run, and its wall-clock backstop: a loop of
# script tasks (`i += 1` until a gateway lets it out) would otherwise run until SpiffWorkflow loses sight of
# the task tree (≈ 500 rounds, 4 s; SPIFF-NOTES: get_tasks stops at depth 1000) and call it completed.
MAX_AUTOMATIC_STEPS = 200
MAX_ACTION_SECONDS = 5.0


class RuntimeFailure(Exception):
    """A process could not be parsed or run; `problems` lists what went wrong."""


class ParseFailed(RuntimeFailure):
    def __init__(self, message: str, element_id: str | None = None, line: int | None = None):
        super().__init__(message)
        self.element_id = element_id
        self.line = line


class ProcessFailed(RuntimeFailure):
    def __init__(self, message: str, element_id: str | None = None):
        super().__init__(message)
        self.element_id = element_id


class NotWaiting(RuntimeFailure):
    """A message was delivered to an instance not waiting for it."""


# --- clock seam ------------------------------------------------------------------------
class _ClockedDatetime(datetime):
    """Spiff's timer module calls `datetime.now(timezone.utc)`; answer from `engine.clock`."""

    @classmethod
    def now(cls, tz=None):
        current = clock.now()
        value = current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)
        return cls.fromisoformat(value.isoformat())


_spiff_timer.datetime = _ClockedDatetime


# --- safe script environment ------------------------------------------------------------
class SafeEnvironment(BasePythonScriptEngineEnvironment):
    """Every gateway condition, script, timer and payload expression goes through safe_eval."""

    def __init__(self, calendar: WorkingCalendar):
        super().__init__({})
        self.calendar = calendar
        self.functions: dict[str, Callable] = {
            "working_days": self._working_days,
            "working_hours": self._working_hours,
        }

    def _working_days(self, n) -> str:
        return self._add(safe_eval.argument_in_range("working_days", n) * self.calendar.day_seconds)

    def _working_hours(self, n) -> str:
        return self._add(safe_eval.argument_in_range("working_hours", n) * 3600)

    def _add(self, seconds: float) -> str:
        try:
            return self.calendar.add_working_time(clock.now(), seconds).isoformat()
        except ValueError as exc:  # beyond workcal.MAX_WORKING_DAYS on a calendar with short days
            raise safe_eval.LimitExceeded(str(exc)) from None

    def evaluate(self, expression, context, external_context=None):
        names = {**(external_context or {}), **context}
        return safe_eval.evaluate(expression, names, self.functions)

    def execute(self, script, context, external_context=None):
        safe_eval.execute(script, context, self.functions)
        return True

    def call_service(self, context, **kwargs):
        raise safe_eval.UnsafeExpression("service tasks are not supported")


# --- specs stored by reference ------------------------------------------------------------
_SPECS: OrderedDict[str, tuple[Any, dict]] = OrderedDict()
_SPEC_CACHE_SIZE = 256


def _remember_spec(spec_hash: str, spec, subprocess_specs) -> None:
    _SPECS[spec_hash] = (spec, subprocess_specs)
    _SPECS.move_to_end(spec_hash)
    while len(_SPECS) > _SPEC_CACHE_SIZE:
        _SPECS.popitem(last=False)


class _SpecRefWorkflowConverter(BpmnWorkflowConverter):
    """Writes `spec_ref` (the spec hash) instead of embedding the spec in every instance."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["spec_ref"] = workflow.motcua_spec_hash
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        ref = dct.pop("spec_ref")
        spec, subprocess_specs = _SPECS[ref]
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        workflow.motcua_spec_hash = ref
        return workflow


_CONFIG = dict(SPIFF_CONFIG)
_CONFIG[BpmnWorkflow] = _SpecRefWorkflowConverter
_REGISTRY = BpmnWorkflowSerializer.configure(_CONFIG)
_SERIALIZER = BpmnWorkflowSerializer(_REGISTRY)
SERIALIZER_VERSION = f"{_SERIALIZER.VERSION}+specref.1"


# --- parsing -------------------------------------------------------------------------------
@dataclass
class ParsedProcess:
    process_id: str
    spec_json: str
    spec_hash: str


def parse(root, process_id: str) -> ParsedProcess:
    """Parse an already safely-parsed lxml root with the Spiff parser; raise ParseFailed."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_xml(root.getroottree(), filename="process.bpmn")
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        raise ParseFailed(_first_line(exc), getattr(exc, "id", None), getattr(exc, "line_number", None)) from None
    except SpiffWorkflowException as exc:
        raise ParseFailed(_first_line(exc), getattr(exc, "id", None)) from None
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as exc:
        raise ParseFailed(f"the process cannot be built: {type(exc).__name__}: {exc}") from None
    spec_dict = {
        "spec": _REGISTRY.convert(spec),
        "subprocess_specs": {name: _REGISTRY.convert(s) for name, s in subprocess_specs.items()},
    }
    spec_json = json.dumps(spec_dict, sort_keys=True, separators=(",", ":"))
    spec_hash = hashlib.sha256(spec_json.encode()).hexdigest()
    _remember_spec(spec_hash, spec, subprocess_specs)
    return ParsedProcess(process_id=process_id, spec_json=spec_json, spec_hash=spec_hash)


class _StepBudget:
    """Called by Spiff before each automatic step of one action: refuses past the action's budget."""

    def __init__(self):
        self.steps = 0
        self.deadline = time.monotonic() + MAX_ACTION_SECONDS

    def __call__(self, task) -> None:
        self.steps += 1
        if self.steps > MAX_AUTOMATIC_STEPS:
            reason = f"one action ran more than {MAX_AUTOMATIC_STEPS:,} automatic steps (a loop without a way out?)"
        elif time.monotonic() > self.deadline:
            reason = f"one action ran for more than {MAX_ACTION_SECONDS:g} s"
        else:
            return
        exc = safe_eval.LimitExceeded(reason)
        exc.task_spec = task.task_spec
        raise exc


def _limit_in(exc: BaseException | None) -> safe_eval.LimitExceeded | None:
    """The LimitExceeded behind `exc` (Spiff wraps what an expression raises in WorkflowTaskException)."""
    for _ in range(8):
        if exc is None or isinstance(exc, safe_eval.LimitExceeded):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _failure(exc: Exception, task_spec=None) -> Exception:
    """What a failed action raises: StepLimitExceeded (a clean 4xx, naming the step) when a bound of the
    evaluator was reached, else ProcessFailed. The step is the one whose expression failed, if Spiff says."""
    spec = getattr(exc, "task_spec", None) or task_spec
    element = getattr(spec, "name", None) or getattr(exc, "id", None)
    limit = _limit_in(exc)
    if limit is None:
        return ProcessFailed(_first_line(exc), element)
    return _limit_failure(spec, element, str(limit))


def _limit_failure(spec, element: str | None, reason: str) -> StepLimitExceeded:
    name = getattr(spec, "bpmn_name", None) or element
    where = f"step '{name}' ({element})" if name and name != element else f"step '{element}'"
    return StepLimitExceeded(f"{where} went past a limit of the process engine: {reason}; nothing was changed",
                             step=element)


def _check_input(data, what: str, task_spec) -> None:
    """Data put into the instance from outside (a form, a message, the initial data) fits in a state."""
    try:
        safe_eval.measure(data, MAX_STATE_BYTES)
    except safe_eval.LimitExceeded as exc:
        name = getattr(task_spec, "name", None)
        raise _limit_failure(task_spec, name, f"{what} is too large: {exc}") if name else \
            StepLimitExceeded(f"{what} is too large for the process: {exc}; nothing was changed") from None


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_spec(spec_hash: str, load_json: Callable[[str], str]) -> None:
    """Make a stored spec available (deserialized once per process, then cached)."""
    if spec_hash in _SPECS:
        _SPECS.move_to_end(spec_hash)
        return
    dct = json.loads(load_json(spec_hash))
    spec = _REGISTRY.restore(dct["spec"])
    subprocess_specs = {name: _REGISTRY.restore(s) for name, s in dct["subprocess_specs"].items()}
    _remember_spec(spec_hash, spec, subprocess_specs)


# --- running -------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserTaskInfo:
    id: str
    spec_name: str
    name: str
    lane: str | None


class Instance:
    """A live workflow instance. Construct with `start` or `load`; persist with `dump`."""

    def __init__(self, workflow: BpmnWorkflow, calendar: WorkingCalendar):
        self.workflow = workflow
        self.workflow.script_engine = PythonScriptEngine(environment=SafeEnvironment(calendar))
        self._acted = None  # the spec of the step the action completed or delivered to (for errors)

    # lifecycle
    @classmethod
    def start(cls, spec_hash: str, load_json: Callable[[str], str], calendar: WorkingCalendar, data: dict) -> Instance:
        _check_input(data, "the initial data", None)
        ensure_spec(spec_hash, load_json)
        spec, subprocess_specs = _SPECS[spec_hash]
        workflow = BpmnWorkflow(spec, subprocess_specs)
        workflow.motcua_spec_hash = spec_hash
        inst = cls(workflow, calendar)
        # SPIFF-NOTES: initial data must sit on the start task, or expressions don't see it.
        for task in inst._tasks(TaskState.READY):
            task.data.update(data)
        inst._engine_steps()
        return inst

    @classmethod
    def load(cls, state: str, spec_hash: str, load_json: Callable[[str], str], calendar: WorkingCalendar) -> Instance:
        ensure_spec(spec_hash, load_json)
        workflow = _SERIALIZER.deserialize_json(state)
        return cls(workflow, calendar)

    def dump(self) -> str:
        """The state to store; StepLimitExceeded when it is larger than MAX_STATE_BYTES. (Values cannot
        explode on the way here: evaluations and the data put in are measured, safe_eval.Meter.)"""
        state = _SERIALIZER.serialize_json(self.workflow)
        size = len(state) if state.isascii() else len(state.encode())
        if size > MAX_STATE_BYTES:
            spec = self._acted
            after = f"after step '{spec.bpmn_name or spec.name}' ({spec.name})" if spec else "after a timer fired"
            raise StepLimitExceeded(
                f"the dossier's process state would grow to {size:,} bytes {after}, more than the limit of "
                f"{MAX_STATE_BYTES:,} bytes; nothing was changed", step=spec.name if spec else None)
        return state

    # questions
    def _all_tasks(self):
        # SPIFF-NOTES: get_tasks() walks the tree with max_depth 1000 and loses READY tasks after
        # ~166 loop-backs; scanning the task dictionaries directly sees every task.
        yield from self.workflow.tasks.values()
        for sub in self.workflow.subprocesses.values():
            yield from sub.tasks.values()

    def _tasks(self, state):
        return [t for t in self._all_tasks() if t.state & state]

    def ready_user_tasks(self) -> list[UserTaskInfo]:
        return [
            UserTaskInfo(str(t.id), t.task_spec.name, t.task_spec.bpmn_name or t.task_spec.name, t.task_spec.lane)
            for t in self._tasks(TaskState.READY)
            if t.task_spec.manual
        ]

    def reached_count(self, spec_names) -> int:
        """How often the instance reached these elements, counted from the task history (never
        from task data, which a form can overwrite)."""
        reached = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.COMPLETED
        return sum(1 for t in self._all_tasks() if t.task_spec.name in spec_names and t.state & reached)

    @property
    def completed(self) -> bool:
        return self.workflow.is_completed()

    def next_timer_due(self) -> datetime | None:
        """The earliest due time of a waiting timer (SPIFF-NOTES: `internal_data['event_value']`, an
        ISO time, or a dict with `next` for cycles), for the indexed `timer_due_at` column."""
        dues = []
        for task in self._tasks(TaskState.WAITING):
            if not isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
                continue
            value = task.internal_data.get("event_value")
            if isinstance(value, dict):
                value = value.get("next")
            try:
                due = TimerEventDefinition.get_datetime(value)
            except (TypeError, ValueError):
                continue  # not computed yet; refresh_timers sets it on the next engine step
            dues.append(datetime.fromtimestamp(due.timestamp(), tz=timezone.utc))
        return min(dues, default=None)

    def waiting_for_message(self, name: str) -> bool:
        return any(self._message_waiters(name))

    def _message_waiters(self, name: str):
        for task in self._tasks(TaskState.WAITING):
            event = getattr(task.task_spec, "event_definition", None)
            if isinstance(event, MessageEventDefinition) and event.name == name:
                yield task

    # migration to another version of the process
    # Attributes that describe motcua's own metadata (durations, roles as lane names) or layout may
    # differ without changing what a finished or running step did.
    _IGNORED_CHANGES = frozenset({"extensions", "lane", "documentation", "bpmn_name", "description"})
    _LIVE = TaskState.COMPLETED | TaskState.STARTED | TaskState.READY | TaskState.WAITING

    def migration_blockers(self, spec_hash: str, load_json: Callable[[str], str]) -> list[str]:
        """Why this instance cannot move to the spec `spec_hash` (empty: it can). SPIFF-NOTES: refuse
        when a completed or running step's spec changed or disappeared."""
        ensure_spec(spec_hash, load_json)
        new_spec, new_deps = _SPECS[spec_hash]
        spec_diff = SpecDiff(_REGISTRY, self.workflow.spec, new_spec)
        removed = set(spec_diff.removed)
        reasons = set()
        for task in self.workflow.tasks.values():
            if not task.state & self._LIVE:
                continue
            name = task.task_spec.bpmn_name or task.task_spec.name
            if task.task_spec in removed:
                reasons.add(f"step '{name}' no longer exists")
                continue
            changes = set(spec_diff.comparisons.get(task.task_spec) or []) - self._IGNORED_CHANGES
            if changes:
                reasons.add(f"step '{name}' changed ({', '.join(sorted(changes))})")
        for sub in self.workflow.subprocesses.values():
            if sub.spec.name not in new_deps:
                reasons.add("a sub-process of the running instance is missing from the new version")
        return sorted(reasons)

    def migrate(self, spec_hash: str, load_json: Callable[[str], str]) -> None:
        """Move to the spec `spec_hash`, keeping the due times of waiting timers (Spiff would restart them)."""
        blockers = self.migration_blockers(spec_hash, load_json)
        if blockers:
            raise ProcessFailed("; ".join(blockers))
        new_spec, new_deps = _SPECS[spec_hash]
        saved = {t.task_spec.name: t.internal_data.get("event_value") for t in self._tasks(TaskState.WAITING)
                 if isinstance(getattr(t.task_spec, "event_definition", None), TimerEventDefinition)}
        top, _ = diff_workflow(_REGISTRY, self.workflow, new_spec, new_deps)
        migrate_workflow(top, self.workflow, new_spec)
        self.workflow.subprocess_specs = new_deps
        self.workflow.motcua_spec_hash = spec_hash
        for task in self._all_tasks():
            if task.task_spec.name in saved and saved[task.task_spec.name] is not None \
                    and not task.state & TaskState.COMPLETED:
                task.internal_data["event_value"] = saved[task.task_spec.name]
        self._engine_steps()

    # actions
    def complete(self, task_id: str, data: dict) -> None:
        task = next((t for t in self._all_tasks() if str(t.id) == task_id), None)
        if task is None or task.state != TaskState.READY or not task.task_spec.manual:
            raise NotWaiting(f"task {task_id} is not ready")
        self._acted = task.task_spec
        _check_input(data, "the data sent", task.task_spec)
        task.data.update(data)
        try:
            task.run()
        except (SpiffWorkflowException, safe_eval.UnsafeExpression) as exc:
            raise _failure(exc, task.task_spec) from None
        self._engine_steps()

    def deliver_message(self, name: str, payload: dict) -> None:
        waiter = next(self._message_waiters(name), None)
        if waiter is None:
            raise NotWaiting(f"the process is not waiting for message '{name}'")
        event = waiter.task_spec.event_definition
        self._acted = waiter.task_spec
        _check_input(payload, "the message", waiter.task_spec)
        try:
            self.workflow.send_event(BpmnEvent(event, payload))
        except WorkflowException as exc:
            if _limit_in(exc) is not None:
                raise _failure(exc, waiter.task_spec) from None
            raise NotWaiting(_first_line(exc)) from None
        self._engine_steps()

    def fire_timers(self) -> None:
        """Fire every timer due at `clock.now()` and run what follows."""
        self._acted = None
        try:
            self.workflow.refresh_timers()
        except (SpiffWorkflowException, safe_eval.UnsafeExpression) as exc:
            raise _failure(exc) from None
        self._engine_steps()

    def _engine_steps(self) -> None:
        try:
            self.workflow.do_engine_steps(will_complete_task=_StepBudget())
            self._check_stuck()
        except (SpiffWorkflowException, safe_eval.UnsafeExpression) as exc:
            raise _failure(exc) from None

    def _check_stuck(self) -> None:
        # SPIFF-NOTES: a gateway whose conditions all fail (or name a missing variable) is left in
        # ERROR with nothing READY; surface it instead of persisting a dead instance.
        errored = self._tasks(TaskState.ERROR)
        if errored:
            raise ProcessFailed(
                f"step '{errored[0].task_spec.bpmn_name or errored[0].task_spec.name}' failed: no outgoing path matched",
                errored[0].task_spec.name,
            )

