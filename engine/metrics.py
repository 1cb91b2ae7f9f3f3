"""Service-quality figures (QĐ 766 progress group) computed by SQL aggregation, never in Python."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from .models import (
    OPEN_STATUSES,
    REFUSED,
    RESULT_READY,
    RETURNED,
    WITHDRAWN,
    Apology,
    Dossier,
    Procedure,
    SupplementRequest,
    Unit,
)


def _units_under(session: Session, unit_code: str) -> list[int]:
    """The unit and every unit below it (one query for the whole tree)."""
    root = session.scalar(select(Unit.id).where(Unit.code == unit_code))
    if root is None:
        return []
    children: dict[int | None, list[int]] = {}
    for unit_id, parent_id in session.execute(select(Unit.id, Unit.parent_id)):
        children.setdefault(parent_id, []).append(unit_id)
    found, stack = [], [root]
    while stack:
        unit = stack.pop()
        found.append(unit)
        stack.extend(children.get(unit, []))
    return found


def summary(session: Session, start: datetime, end: datetime, unit_code: str | None = None,
            procedure_code: str | None = None) -> dict:
    """Figures for dossiers received in [start, end) and, for work in progress, their state at `end`."""
    filters = []
    if unit_code:
        filters.append(Dossier.unit_id.in_(_units_under(session, unit_code) or [-1]))
    if procedure_code:
        filters.append(Dossier.procedure_id == select(Procedure.id).where(Procedure.code == procedure_code)
                       .scalar_subquery())
    received = and_(Dossier.received_at >= start, Dossier.received_at < end)
    finished = and_(Dossier.finished_at.is_not(None), Dossier.finished_at >= start, Dossier.finished_at < end,
                    Dossier.status.in_((RESULT_READY, RETURNED, REFUSED)))
    in_progress = and_(Dossier.received_at < end, Dossier.status.in_(OPEN_STATUSES))

    def count(cond):
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    row = session.execute(select(
        count(received),
        count(and_(received, Dossier.channel == "online")),
        count(and_(received, Dossier.channel == "counter")),
        count(and_(received, Dossier.channel == "post")),
        count(finished),
        count(and_(finished, Dossier.finished_at <= Dossier.due_at)),
        count(and_(finished, Dossier.finished_at > Dossier.due_at)),
        count(in_progress),
        count(and_(in_progress, Dossier.due_at < end)),
        count(and_(received, Dossier.status == WITHDRAWN)),
        count(and_(Dossier.overdue.is_(True), Dossier.late_without_apology.is_(True), Dossier.received_at < end)),
    ).where(*filters)).one()
    supplements = session.scalar(select(func.count()).select_from(SupplementRequest).join(Dossier)
                                 .where(SupplementRequest.requested_at >= start, SupplementRequest.requested_at < end,
                                        *filters))
    apologies = session.execute(select(func.count(), count(Apology.late.is_(True))).select_from(Apology).join(Dossier)
                                .where(Apology.issued_at >= start, Apology.issued_at < end, *filters)).one()
    finished_total, on_time = row[4], row[5]
    return {
        "from": start, "to": end, "unit": unit_code, "procedure": procedure_code,
        "received": {"total": row[0], "online": row[1], "counter": row[2], "post": row[3]},
        "finished": {"total": finished_total, "on_time": on_time, "late": row[6]},
        "in_progress": {"total": row[7], "in_time": row[7] - row[8], "overdue": row[8]},
        "withdrawn": row[9],
        "overdue_without_apology": row[10],
        "supplement_requests": supplements,
        "apologies": {"total": apologies[0], "late": apologies[1]},
        "on_time_rate": round(on_time / finished_total, 4) if finished_total else None,
    }
