"""Consultations (xin ý kiến, L8): a step asks one or more other units for their opinion, with the
content and a deadline in working days; the consulted units answer in their inbox; the asking step
continues only when every unit answered or the deadline passed; late answers are kept and reported
(NĐ 61 Đ19(5): a late consulted unit is reported to the head of the one-stop desk)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.dossiers import aggregate
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange, dossier_change
from engine.dossiers.reception import store_files, validate_components
from engine.errors import Conflict, ConsultationPending, DossierClosed, InvalidInput, NotFound, TaskNotReady
from engine.store.models import OPEN_STATUSES, PROCESSING, RECEIVED, Consultation

MAX_DAYS = 30


class AlreadyAnswered(Conflict):
    code = "consultation_answered"


def ask_opinions(session: Session, *, actor_id: int, task_id: str, unit_codes: list[str], content: str, days: int,
                 now: datetime | None = None) -> list[Record]:
    """From an open step, ask each unit in `unit_codes` for its opinion within `days` working days."""
    with dossier_change(session, actor_id=actor_id, permission="task.complete", task_id=task_id, now=now) as change:
        dossier, task = change.dossier, change.task
        if dossier.status not in (RECEIVED, PROCESSING):
            raise TaskNotReady(f"dossier {dossier.code} is {dossier.status}; no opinion can be asked now")
        content = str(content or "").strip()
        errors = {}
        if not content:
            errors["content"] = "say what the opinion is about"
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            errors["days"] = f"a whole number of working days between 1 and {MAX_DAYS}"
        codes = list(dict.fromkeys(str(c).strip() for c in (unit_codes or []) if str(c).strip()))
        if not codes:
            errors["units"] = "choose at least one unit"
        units = {code: aggregate.unit_id(session, code) for code in codes}
        for code, uid in units.items():
            if uid is None:
                errors["units"] = f"no unit {code}"
            elif uid == task.unit_id:
                errors["units"] = f"{code} is the step's own unit"
        # A unit still within its deadline is not asked twice; one that let it pass may be asked again.
        asked = {c.unit_id for c in _of_task(change, task.id) if c.answered_at is None and change.now <= c.due_at}
        if any(uid in asked for uid in units.values()):
            errors["units"] = "that unit has not answered the previous request yet"
        if errors:
            raise InvalidInput("the request for opinions is not complete", errors=errors)
        cal = change.calendar
        due = cal.end_of_working_day(cal.add_working_days(clock.local(change.now).date(), days))
        rows = []
        for code, uid in units.items():
            row = change.add(Consultation, task_id=task.id, step=task.spec_name, unit_id=uid, content=content,
                             asked_at=change.now, asked_by_id=change.actor.id, due_at=due, answer="", late=False)
            change.audit("consultation_requested", step=task.spec_name, consultation_id=row.id, unit=code,
                         content=content, due_at=due.isoformat())
            rows.append(row)
    return rows


def answer_opinion(session: Session, *, actor_id: int, consultation_id: int, answer: str,
                   files: list[dict] | None = None, now: datetime | None = None) -> Record:
    """The consulted unit answers (a specialist or leader of that unit), with text and, if it wants,
    files ({filename, content, content_type}) kept with the dossier as `YKIEN-<consultation id>`."""
    dossier_id = aggregate.part_dossier(session, Consultation, consultation_id)
    if dossier_id is None:
        raise NotFound(f"no consultation #{consultation_id}")
    with dossier_change(session, actor_id=actor_id, permission=None, dossier_id=dossier_id, now=now) as change:
        row = next((c for c in aggregate.parts(session, Consultation, dossier_id) if c.id == consultation_id), None)
        if row is None:
            raise NotFound(f"no consultation #{consultation_id}")
        if not policy.can(change.actor, "consultation.answer", row.unit_id, session=session):
            raise NotFound(f"no consultation #{consultation_id}")  # another unit's request is not revealed
        if row.answered_at is not None:
            raise AlreadyAnswered("this request for an opinion was already answered")
        if change.dossier.status not in OPEN_STATUSES:
            raise DossierClosed(f"dossier {change.dossier.code} is {change.dossier.status}: no opinion is needed any more")
        answer = str(answer or "").strip()
        if not answer:
            raise InvalidInput("write the unit's opinion", errors={"answer": "required"})
        code = file_code(row.id)
        attached = validate_components([{"code": code, "name": "Văn bản ý kiến", "required": False}],
                                       [{**f, "code": code} for f in (files or [])], require_all=False)
        row.answered_at, row.answered_by_id, row.answer = change.now, change.actor.id, answer
        row.late = change.now > row.due_at
        change.save_part(Consultation, row)
        stored = store_files(change, attached, "consultation") if attached else []
        change.audit("consultation_answered", step=row.step, consultation_id=row.id,
                     unit=aggregate.unit_code(session, row.unit_id), late=row.late, files=stored)
    return row


FILE_PREFIX = "YKIEN-"


def file_code(consultation_id: int) -> str:
    """The component code a consultation's answer files are kept under."""
    return f"{FILE_PREFIX}{consultation_id}"


def _of_task(change: DossierChange, task_id: str) -> list[Record]:
    if change.consulted is False:  # the lock's read says the dossier has none
        return []
    return [c for c in aggregate.parts(change.session, Consultation, change.dossier.id) if c.task_id == task_id]


def require_answers(change: DossierChange, task) -> None:
    """The asking step continues only when every consulted unit answered or the deadline passed; a unit
    that let its deadline pass without answering is recorded late (it is reported, L8)."""
    asked = _of_task(change, task.id)
    waiting = [c for c in asked if c.answered_at is None and change.now <= c.due_at]
    if waiting:
        names = ", ".join(sorted(aggregate.unit_code(change.session, c.unit_id) for c in waiting))
        last = max(c.due_at for c in waiting)
        raise ConsultationPending(f"waiting for the opinion of {names} (until {clock.local(last):%H:%M %d/%m/%Y})")
    for c in asked:
        if c.answered_at is None and not c.late:
            c.late = True
            change.save_part(Consultation, c)
            change.audit("consultation_expired", step=c.step, consultation_id=c.id,
                         unit=aggregate.unit_code(change.session, c.unit_id))
