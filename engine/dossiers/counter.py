"""At the counter, a dossier that is incomplete or cannot be accepted is not received (L3): the applicant
gets guidance to complete it — once, completely (form 02, L2) — or a refusal with its reasons (form 03).
Either is recorded and numbered per unit, year and kind, and can be printed again; no dossier is created,
so nothing enters the process, the register or the reports' received counts."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import Actor, load_actor
from engine.catalog import procedures as catalog
from engine.dossiers import applicant as applicant_rules
from engine.dossiers.aggregate import Record
from engine.dossiers.processing import supplement_items
from engine.errors import Conflict, InvalidInput, NotFound, ProcedureNotAccepting
from engine.store.db import write_transaction
from engine.store.models import CounterNotice, CounterNoticeSequence, Dossier, Procedure, Unit, User
from engine.store.upsert import upsert

GUIDANCE, REFUSAL = "guidance", "refusal"
KINDS = (GUIDANCE, REFUSAL)
SUFFIX = {GUIDANCE: "PBS", REFUSAL: "PTC"}  # số …/PBS (form 02), số …/PTC (form 03)
REASON_MAX = 4000
NOTICES = CounterNotice.__table__


class GuidanceAlreadyGiven(Conflict):
    """This applicant was already guided at this desk for this procedure: the desk guides once, completely
    (L2). The officer sees the earlier notice; a second one is issued only when they confirm."""

    code = "counter_guidance_repeated"

    def __init__(self, message: str, previous: Record):
        super().__init__(message, previous_id=previous.id, previous_number=number_of(previous),
                         previous_issued_at=previous.issued_at.isoformat())
        self.previous = previous


def number_of(notice) -> str:
    """The notice's number as printed: 7/PBS, 3/PTC (the year is on the notice's date)."""
    return f"{notice.number}/{SUFFIX[notice.kind]}"


def issue_counter_notice(session: Session, *, actor_id: int, kind: str, procedure_code: str, applicant: dict,
                         items: list[dict] | None = None, reason: str = "", unit_code: str | None = None,
                         acknowledge_repeat: bool = False, now: datetime | None = None) -> Record:
    """Record guidance (form 02) or a refusal (form 03) given at the actor's desk to an applicant whose
    dossier is not received. Guidance lists every document to complete (components of the procedure,
    or a document it does not list with the reason it is needed, L1); a refusal states its reasons.
    A second guidance for the same applicant and procedure at this unit raises GuidanceAlreadyGiven
    unless `acknowledge_repeat`. Returns the notice as written."""
    now = now or clock.now()
    with write_transaction(session):
        actor = load_actor(session, actor_id)
        unit_id = _desk(session, actor, unit_code)
        if kind not in KINDS:
            raise InvalidInput("unknown kind of notice", errors={"kind": f"one of {', '.join(KINDS)}"})
        person = applicant_rules.clean(applicant)
        proc = catalog.get_procedure(session, procedure_code)
        reason = str(reason or "").strip()
        if len(reason) > REASON_MAX:
            raise InvalidInput("the reason is too long", errors={"reason": f"at most {REASON_MAX} characters"})
        if kind == GUIDANCE:   # guidance invites the applicant back: only for a procedure accepting dossiers today
            catalog.version_in_force(session, proc, clock.local(now).date())
        components = _components(session, proc, clock.local(now).date())
        if kind == GUIDANCE:
            listed = supplement_items(components, items)
        else:
            if not reason:
                raise InvalidInput("a refusal states its reasons (form 03)", errors={"reason": "required"})
            listed = supplement_items(components, items) if items else []
        local = clock.local(now)
        # The notice's number first: its row lock (held to the commit) serialises the desks of the unit, so
        # two guidances to the same applicant at once cannot both be the first (refused, the number is unused).
        number = upsert(session, CounterNoticeSequence,
                        keys=[CounterNoticeSequence.unit_id, CounterNoticeSequence.year, CounterNoticeSequence.kind],
                        values={"unit_id": unit_id, "year": local.year, "kind": kind, "value": 1},
                        set_={"value": CounterNoticeSequence.value + 1}, returning=CounterNoticeSequence.value)
        repeated = False
        if kind == GUIDANCE:
            previous = previous_guidance(session, unit_id, proc.id, person["id_number"])
            if previous is not None:
                if not acknowledge_repeat:
                    raise GuidanceAlreadyGiven(
                        f"this applicant was already guided for procedure {proc.code} at this desk (notice "
                        f"{number_of(previous)} of {clock.local(previous.issued_at):%d/%m/%Y}); the law allows one "
                        "complete guidance (NĐ 118/2025 Đ11(2)). Receive or refuse the dossier, or confirm with "
                        "acknowledge_repeat to issue a second notice.", previous)
                repeated = True
        row = session.connection().execute(insert(NOTICES).values(
            unit_id=unit_id, procedure_id=proc.id, kind=kind, year=local.year, number=number, applicant=person,
            applicant_id_number=id_key(person["id_number"]), items=listed, reason=reason, repeated=repeated,
            issued_by_id=actor.id, issued_at=now, issued_on=local.date()).returning(*NOTICES.c)).one()
    return Record(row._mapping)


def _desk(session: Session, actor: Actor, unit_code: str | None) -> int:
    """The unit whose desk issues the notice: the one named, or the actor's only desk."""
    if unit_code is not None:
        unit_id = session.scalar(select(Unit.id).where(Unit.code == unit_code))
    else:
        desks = policy.units_for(session, actor, "counter_notice.issue")
        if len(desks) > 1:
            raise InvalidInput("you work at several desks: name the unit", errors={"unit_code": "required"})
        unit_id = desks[0] if desks else None
    policy.require(actor, "counter_notice.issue", unit_id, session=session)
    return unit_id


def _components(session: Session, proc: Procedure, day: date) -> list[dict]:
    """The components the desk checks against: those of the version a dossier received today would run
    on, or the catalog's when the procedure accepts none today (a refusal may say exactly that)."""
    try:
        return catalog.version_in_force(session, proc, day).meta.get("components") or []
    except ProcedureNotAccepting:
        return proc.components or []


def id_key(id_number: str) -> str:
    """An ID number as the once rule compares it: letters and digits only, upper case — the same document
    typed with spaces, dots or under "Giấy tờ khác" is the same applicant."""
    return re.sub(r"[^0-9A-Z]", "", str(id_number).upper())


def previous_guidance(session: Session, unit_id: int, procedure_id: int, id_number: str) -> Record | None:
    """The first guidance notice this unit gave the applicant (by ID number) for the procedure since it last
    received a dossier of theirs for it — guidance is once per application: a received dossier closes it."""
    key = id_key(id_number)
    last_received = session.scalar(select(func.max(Dossier.received_at)).where(
        Dossier.unit_id == unit_id, Dossier.procedure_id == procedure_id,
        func.upper(Dossier.applicant_id_number) == key))
    conditions = [NOTICES.c.unit_id == unit_id, NOTICES.c.procedure_id == procedure_id,
                  NOTICES.c.applicant_id_number == key, NOTICES.c.kind == GUIDANCE]
    if last_received is not None:
        conditions.append(NOTICES.c.issued_at > last_received)
    row = session.connection().execute(select(NOTICES).where(*conditions).order_by(NOTICES.c.id).limit(1)).one_or_none()
    return Record(row._mapping) if row is not None else None


# --- reading -------------------------------------------------------------------------------------
@dataclass
class NoticeView:
    """A notice with what its form prints: the unit, the procedure and the officer who issued it."""

    notice: CounterNotice
    unit: Unit
    procedure: Procedure
    officer: str

    @property
    def number(self) -> str:
        return number_of(self.notice)


def visible_notice(session: Session, actor: Actor | None, notice_id: int) -> NoticeView:
    """The notice if the actor may see its unit's register; otherwise NotFound, as if it did not exist."""
    notice = session.get(CounterNotice, notice_id)
    if notice is None or not policy.can(actor, "register.view", notice.unit_id, session=session):
        raise NotFound(f"no counter notice {notice_id}")
    return _view(session, notice)


def _view(session: Session, notice: CounterNotice) -> NoticeView:
    officer = session.get(User, notice.issued_by_id)
    return NoticeView(notice, session.get(Unit, notice.unit_id), session.get(Procedure, notice.procedure_id),
                      officer.full_name or officer.username)


def notices_of_day(session: Session, unit_ids: list[int], day: date) -> list[NoticeView]:
    """The notices the units' desks issued on `day` (local), latest first."""
    if not unit_ids:
        return []
    rows = session.scalars(select(CounterNotice).where(CounterNotice.unit_id.in_(unit_ids),
                                                       CounterNotice.issued_on == day)
                           .order_by(CounterNotice.id.desc())).all()
    return [_view(session, n) for n in rows]
