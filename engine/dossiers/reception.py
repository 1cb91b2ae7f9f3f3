"""Reception (form 01): a dossier is received at the one-stop desk, its components stored, its
process started and its appointment set — at most once per Idempotency-Key."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.directory import unit_chain
from engine.catalog import calendar as calendar_mod
from engine.catalog import procedures as catalog
from engine.dossiers import aggregate, results
from engine.dossiers import applicant as applicant_rules
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange, new_dossier
from engine.errors import Conflict, InvalidInput, MissingComponents, NotFound, ProcedureNotAccepting, WorkflowError
from engine.store import files
from engine.store.models import CHANNELS, RECEIVED, DossierFile, IdempotencyKey, Unit
from engine.text import fold
from engine.workflow import runtime


def handed_on(session: Session, cal, channel: str, now: datetime) -> datetime:
    """When the dossier reaches the processing unit (L7): online at once (within office hours), paper
    the same working day or, after the transfer cut-off in force, at the start of the next one."""
    if channel == "online":
        return cal.align_forward(now)
    return cal.handover_time(now, calendar_mod.transfer_cutoff(session, clock.local(now).date()))


class IdempotencyMismatch(Conflict):
    code = "idempotency_key_reused"


class IntakeNotForwardable(Conflict):
    """Receive-and-forward needs the process to open exactly one step, one the receiving officer may take
    (the desk's intake); otherwise the dossier is received on its own, or not at all."""

    code = "intake_not_forwardable"


def validate_components(meta_components: list[dict], given: list[dict], *, require_all: bool) -> list[dict]:
    known = {c["code"]: c for c in meta_components}
    errors: dict[str, str] = {}
    clean: list[dict] = []
    for i, comp in enumerate(given or []):
        code = str(comp.get("code", "")).strip()
        content = comp.get("content")
        filename = str(comp.get("filename", "")).strip()
        if code not in known:
            # The law forbids asking for documents the procedure does not list (NĐ 61 Đ5(1)(đ)).
            errors[f"components.{i}.code"] = f"'{code}' is not a component of this procedure"
        elif not isinstance(content, (bytes, bytearray)) or not content:
            errors[f"components.{i}.content"] = f"file for {code} is empty"
        elif len(content) > files.MAX_FILE_BYTES:
            errors[f"components.{i}.content"] = f"file for {code} is larger than {files.MAX_FILE_BYTES // 1048576} MB"
        elif not filename or "/" in filename or "\\" in filename or len(filename) > 255:
            errors[f"components.{i}.filename"] = "a plain file name is required"
        else:
            clean.append({"code": code, "filename": filename, "content": bytes(content),
                          "content_type": str(comp.get("content_type") or "application/octet-stream")})
    if errors:
        raise InvalidInput("some components are not valid", errors=errors)
    if require_all:
        present = {c["code"] for c in clean}
        missing = [c for c in meta_components if c["required"] and c["code"] not in present]
        if missing:
            raise MissingComponents(
                "required components are missing: " + "; ".join(f"{c['code']} ({c['name']})" for c in missing),
                errors={f"components.{c['code']}": f"missing required component: {c['name']}" for c in missing},
            )
    return clean


def store_files(change: DossierChange, comps: list[dict], purpose: str) -> list[dict]:
    """Store the files (content-addressed, outside the database) and add their rows to the dossier;
    returns what the audit event records of each."""
    rows = []
    for comp in comps:
        stored = files.store(comp["content"])
        rows.append({"component_code": comp["code"], "filename": comp["filename"], "content_type": comp["content_type"],
                     "size": stored.size, "sha256": stored.sha256, "storage_key": stored.storage_key,
                     "purpose": purpose, "uploaded_at": change.now})
    change.add_many(DossierFile, rows)
    return [{"code": r["component_code"], "sha256": r["sha256"]} for r in rows]


def receive_dossier(session: Session, *, actor_id: int, procedure_code: str, channel: str, applicant: dict,
                    components: list[dict], unit_code: str | None = None, now: datetime | None = None,
                    idempotency: tuple[str, str] | None = None, forward: bool = False) -> Record:
    """Receive a dossier (form 01) at the actor's desk. `idempotency`: (key, request digest) recorded
    in the same transaction, see `receive_dossier_once`. `forward`: the receiving officer also completes
    the desk's own first step (tiếp nhận → chuyển xử lý) in the same transaction — if that step cannot be
    completed, nothing is received. Returns the dossier as written."""
    with new_dossier(session, actor_id=actor_id, unit_code=unit_code, now=now) as change:
        now = change.now
        if channel not in CHANNELS:
            raise InvalidInput("unknown channel", errors={"channel": f"one of {', '.join(CHANNELS)}"})
        applicant = applicant_rules.clean(applicant)
        proc = catalog.get_procedure(session, procedure_code)
        local_now = clock.local(now)
        version = catalog.version_in_force(session, proc, local_now.date())
        meta, spec_hash = aggregate.version_meta(session, version.id)
        _require_step_units(session, meta, change.unit_id, proc.code)
        comps = validate_components(meta["components"], components, require_all=True)

        cal = change.calendar
        unit_code = session.execute(select(Unit.code).where(Unit.id == change.unit_id)).scalar_one()
        code = f"{unit_code}-{local_now:%y%m%d}-{aggregate.next_sequence(session, unit_code, local_now.date()):04d}"
        due = cal.appointment(now, meta["statutory_days"], calendar_mod.same_day_cutoff(session, local_now.date()))
        try:
            with clock.frozen(now):
                instance = runtime.Instance.start(spec_hash, aggregate.spec_loader(session), cal,
                                                  {"procedure_code": proc.code, "channel": channel})
        except runtime.ProcessFailed as exc:
            raise WorkflowError(f"the process of {proc.code} failed to start: {exc}") from None
        change.create({
            "code": code, "procedure_id": proc.id, "version_id": version.id, "unit_id": change.unit_id,
            "channel": channel, "applicant": applicant, "applicant_id_number": applicant["id_number"],
            "status": RECEIVED, "received_at": now, "received_by_id": change.actor.id,
            "handed_on_at": handed_on(session, cal, channel, now),
            "due_at": due, "legal_due_at": due, "original_due_at": due, "clock_paused": False,
            "register_year": local_now.year,
            "register_no": aggregate.next_register_number(session, change.unit_id, local_now.year),
            "received_on": local_now.date(), "digitised": bool(comps),
            "serializer_version": runtime.SERIALIZER_VERSION, "workflow_state": "",
            "search_text": fold(" ".join([code, applicant["name"], applicant["phone"], applicant["id_number"]])),
        }, instance)
        stored = store_files(change, comps, "reception")
        change.audit("received", procedure=proc.code, version=version.number, channel=channel, due_at=due.isoformat(),
                     files=stored)
        change.sync()
        change.emit("received")
        if forward:
            _forward_intake(change)
        change.remember_request("receive_dossier", idempotency)
    return change.dossier


def _forward_intake(change: DossierChange) -> None:
    """The officer who received the dossier takes its first step (the desk's intake) and completes it
    with `approve` (`DossierChange.record_decision`, as `processing.complete_task` does), inside the
    reception's own change."""
    d, actor = change.dossier, change.actor
    # Read back as stored: the rows `sync` just inserted carry only the columns it set.
    opened = list(aggregate.open_tasks(change.session, d.id).values())
    if len(opened) != 1 or not policy.can(actor, "task.claim", task=opened[0]):
        raise IntakeNotForwardable("this procedure's process does not open a single intake step at the receiving "
                                   "desk that you can pass on: receive the dossier without forwarding it")
    task = opened[0]
    if results.required(change.meta, task.spec_name):
        raise IntakeNotForwardable("the intake step records a result document, which forwarding cannot give: "
                                   "receive the dossier, then complete the step with its result")
    change.task = task
    change.audit("task_assigned", step=task.spec_name, task_id=task.id, name=task.name, how="claim",
                 **{"from": None, "to": actor.id, "to_name": actor.display_name})
    task.assignee_id = actor.id
    change.record_decision(task, "approve", "", late=False, on_time=True)  # done the moment it opens
    change.sync()
    change.emit("status_changed")


def _require_step_units(session: Session, meta: dict, unit_id: int, procedure_code: str) -> None:
    """Every lane of the process must name a unit that exists for a dossier received here (liên thông):
    refused at reception rather than stuck half-way."""
    for step in meta["steps"].values():
        where = step.get("unit") or "@receiving"
        if where == "@parent" and len(unit_chain(session, unit_id)) < 2:
            raise ProcedureNotAccepting(f"procedure {procedure_code} is decided by the parent of the receiving unit, "
                                        "which has none: receive it at a unit below another")
        if not where.startswith("@") and aggregate.unit_id(session, where) is None:
            raise ProcedureNotAccepting(f"procedure {procedure_code} hands step '{step.get('name')}' to unit {where}, "
                                        "which no longer exists")


# --- at most once per key ------------------------------------------------------------------------
def get_dossier(session: Session, code: str) -> Record:
    row = session.connection().execute(select(aggregate.DOSSIERS).where(aggregate.DOSSIERS.c.code == code)).one_or_none()
    if row is None:
        raise NotFound(f"no dossier {code}")
    return Record(row._mapping)


def _prior(session: Session, actor_id: int, key: str, operation: str, digest: str) -> Record | None:
    prior = session.execute(select(IdempotencyKey.operation, IdempotencyKey.request_sha256, IdempotencyKey.dossier_code)
                            .where(IdempotencyKey.user_id == actor_id, IdempotencyKey.key == key)).one_or_none()
    if prior is None:
        return None
    if prior.operation != operation or prior.request_sha256 != digest:
        raise IdempotencyMismatch("this Idempotency-Key was already used for a different request")
    return get_dossier(session, prior.dossier_code)


def run_once(session: Session, actor_id: int, key: str, digest: str, operation: str, run) -> tuple[Record, bool]:
    """Run a use case at most once per (user, key): a retry returns the first result, replayed=True."""
    prior = _prior(session, actor_id, key, operation, digest)
    session.rollback()
    if prior is not None:
        return prior, True
    try:
        return run((key, digest)), False
    except IntegrityError:
        # A concurrent request with the same key won the race; answer with its result.
        prior = _prior(session, actor_id, key, operation, digest)
        session.rollback()
        if prior is None:
            raise
        return prior, True


def receive_dossier_once(session: Session, *, key: str, digest: str, **kwargs) -> tuple[Record, bool]:
    return run_once(session, kwargs["actor_id"], key, digest, "receive_dossier",
                    lambda idem: receive_dossier(session, idempotency=idem, **kwargs))
