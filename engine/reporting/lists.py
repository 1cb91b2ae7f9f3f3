"""The desk's lists (đến hạn / quá hạn / chờ bổ sung / chờ trả / đã trả hôm nay): the dossiers of the
caller's units a one-stop officer acts on, with their counts for the header, and the search that finds
any dossier of those units in any state. Overdue and due are engine/reporting/deadlines.py's."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import Actor
from engine.reporting import deadlines
from engine.store.models import AWAITING_SUPPLEMENT, RESULT_READY, RETURNED, Dossier, HumanTask, Procedure
from engine.text import fold


@dataclass(frozen=True)
class DeskList:
    slug: str        # in the URL
    title: str       # Vietnamese, as the header shows it
    order: str       # default sort


LISTS = {
    "qua-han": DeskList("qua-han", "Hồ sơ quá hạn", "due"),
    "den-han": DeskList("den-han", "Hồ sơ đến hạn hôm nay và ngày mai", "due"),
    "cho-bo-sung": DeskList("cho-bo-sung", "Hồ sơ chờ công dân bổ sung", "requested"),
    "cho-tra": DeskList("cho-tra", "Hồ sơ chờ trả kết quả", "finished"),
    "da-tra-hom-nay": DeskList("da-tra-hom-nay", "Hồ sơ đã trả kết quả hôm nay", "returned"),
}
SORTS = {
    "due": (Dossier.legal_due_at, Dossier.id),
    "received": (Dossier.received_at, Dossier.id),
    "code": (Dossier.code,),
    "requested": (Dossier.received_at, Dossier.id),
    "finished": (Dossier.finished_at, Dossier.id),
    "returned": (Dossier.returned_at.desc(), Dossier.id),
}
CHANNELS = ("counter", "online", "post")


def desk_units(session: Session, actor: Actor) -> list[int]:
    """The units whose dossiers the actor's desk lists show: where the actor holds any role."""
    return policy.units_for(session, actor, "register.view")


def _day_bounds(at: datetime) -> tuple[datetime, datetime]:
    day = clock.local(at).date()
    return (datetime.combine(day, time.min, tzinfo=clock.VN_TZ),
            datetime.combine(day + timedelta(days=1), time.min, tzinfo=clock.VN_TZ))


def condition(slug: str, at: datetime):
    """The row condition of list `slug` at `at`."""
    today, tomorrow = _day_bounds(at)
    if slug == "qua-han":
        return deadlines.overdue(at)
    if slug == "den-han":  # not yet overdue, due by the end of tomorrow
        return deadlines.due_between(at, tomorrow + timedelta(days=1))
    if slug == "cho-bo-sung":
        return Dossier.status == AWAITING_SUPPLEMENT
    if slug == "cho-tra":
        return Dossier.status == RESULT_READY
    if slug == "da-tra-hom-nay":
        return (Dossier.status == RETURNED) & (Dossier.returned_at >= today) & (Dossier.returned_at < tomorrow)
    raise KeyError(slug)


def counts(session: Session, actor: Actor, at: datetime) -> dict:
    """The header's counters: the actor's open steps, their late steps, and every desk list."""
    pairs = sorted(actor.grants)
    units = desk_units(session, actor)
    out = {"mine": 0, "overdue_steps": 0, **dict.fromkeys(LISTS, 0)}
    if pairs:
        # "Việc của tôi": open steps of my roles assigned to me or to nobody (as the inbox lists them).
        mine = select(func.count()).select_from(HumanTask).where(
            HumanTask.completed_at.is_(None), tuple_(HumanTask.unit_id, HumanTask.role).in_(pairs),
            or_(HumanTask.assignee_id.is_(None), HumanTask.assignee_id == actor.id))
        out["mine"] = session.scalar(mine)
        out["overdue_steps"] = session.scalar(mine.where(HumanTask.due_at < at))
    if units:
        for slug in LISTS:
            out[slug] = session.scalar(select(func.count()).select_from(Dossier).where(
                Dossier.unit_id.in_(units), condition(slug, at)))
    return out


def desk_list(session: Session, actor: Actor, slug: str, at: datetime, *, procedure_code: str = "", channel: str = "",
              sort: str = "", page: int = 1, per_page: int = 50) -> tuple[list[tuple[Dossier, str, str]], int]:
    """(dossier, procedure code, procedure name) rows of list `slug`, filtered, sorted, one page; total."""
    units = desk_units(session, actor)
    if not units:
        return [], 0
    stmt = (select(Dossier, Procedure.code, Procedure.name).join(Procedure, Procedure.id == Dossier.procedure_id)
            .where(Dossier.unit_id.in_(units), condition(slug, at)))
    if procedure_code:
        stmt = stmt.where(Procedure.code == procedure_code)
    if channel in CHANNELS:
        stmt = stmt.where(Dossier.channel == channel)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    order = SORTS.get(sort) or SORTS[LISTS[slug].order]
    rows = session.execute(stmt.order_by(*order).limit(per_page).offset((max(page, 1) - 1) * per_page)).all()
    return [(d, code, name) for d, code, name in rows], total


def search(session: Session, actor: Actor, q: str, limit: int = 50) -> list[tuple[Dossier, str]]:
    """Any dossier of the caller's units, in any state, by code, applicant name (with or without
    diacritics), phone or ID number; newest first."""
    units = desk_units(session, actor)
    needle = fold(q or "").strip()
    if not units or len(needle) < 2:
        return []
    stmt = (select(Dossier, Procedure.name).join(Procedure, Procedure.id == Dossier.procedure_id)
            .where(Dossier.unit_id.in_(units), Dossier.search_text.contains(needle, autoescape=True))
            .order_by(Dossier.received_at.desc()).limit(limit))
    return [(d, name) for d, name in session.execute(stmt).all()]
