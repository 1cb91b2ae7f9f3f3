"""Report counters kept with the data: what a dossier contributes to `daily_counts`.

Each use case that may change a dossier's reported facts takes `facts_of(dossier)` after locking it
and calls `apply(session, before, dossier)` before committing; the difference (usually nothing) is
added with one upsert. `rebuild(session)` recomputes every counter from the dossiers table with the
same definitions, in SQL (migrations, benchmarks, and the test that the two agree).
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, func, literal, select, union_all
from sqlalchemy.orm import Session

from engine.clock import VN_TZ
from engine.store.models import REFUSED, RESULT_READY, RETURNED, WITHDRAWN, DailyCount, Dossier
from engine.store.upsert import upsert

FINISHED = (RESULT_READY, RETURNED, REFUSED)
POINTS = {"early": 2, "on_time": 1, "late": 0}
RATINGS = ("very_satisfied", "satisfied", "not_satisfied")


RANK = {"early": 0, "on_time": 1, "late": 2}


def classify(finished, due) -> str:
    """Trước hạn / đúng hạn / quá hạn: early when finished on an earlier (local) day than the due day."""
    if finished > due:
        return "late"
    return "early" if finished.astimezone(VN_TZ).date() < due.astimezone(VN_TZ).date() else "on_time"


def worst(results: list[str]) -> str | None:
    return max(results, key=RANK.__getitem__) if results else None


def facts_of(d) -> Counter:
    """{(unit, procedure, day, counter name): value} for one dossier (ORM object or Core row)."""
    out: Counter = Counter()
    if getattr(d, "received_on", None) is None:
        return out
    key = (d.unit_id, d.procedure_id)
    r = (*key, d.received_on)
    out[(*r, "received")] += 1
    out[(*r, f"received_{d.channel}")] += 1
    if d.digitised:
        out[(*r, "digitised")] += 1
    if d.supplemented:
        out[(*r, "supplemented")] += 1
    if d.rating:
        out[(*r, f"rated_{d.rating}")] += 1
    if d.finished_on is not None and d.status == WITHDRAWN:
        out[(*key, d.finished_on, "withdrawn")] += 1
    if d.finished_on is not None and d.status in FINISHED:
        f = (*key, d.finished_on)
        points = POINTS.get(d.finish_result, 0)
        out[(*f, "finished")] += 1
        if d.finish_result in POINTS:
            out[(*f, f"finished_{d.finish_result}")] += 1
        if d.finish_result == "late" and d.apologized:
            out[(*f, "finished_late_apologized")] += 1
        out[(*f, "tt01_i1")] += points
        if d.steps_result is not None:
            out[(*f, "tt01_i2")] += POINTS.get(d.steps_result, 0)
            out[(*f, "tt01_i2_n")] += 1
        # Index 3, contacts needed: none 2, one supplement request 1, a late request (the agency's delay) 0.
        out[(*f, "tt01_i3")] += 0 if d.supplement_late else 1 if d.supplemented else 2
        out[(*f, "tt01_i4")] += 2 if d.channel == "online" else 1
        # Index 7 needs the complaint ratings, which are configuration: keep points per rating.
        out[(*f, f"points_rated_{d.rating or 'none'}")] += points
    return out


def apply(session: Session, before: Counter, dossier) -> None:
    after = facts_of(dossier)
    delta = Counter(after)
    delta.subtract(before)
    rows = [{"unit_id": k[0], "procedure_id": k[1], "day": k[2], "name": k[3], "n": v} for k, v in delta.items() if v]
    if not rows:
        return
    upsert(session, DailyCount, keys=["unit_id", "procedure_id", "day", "name"],
           set_={"n": lambda excluded: DailyCount.n + excluded.n}, values=rows)


def rebuild(session: Session) -> None:
    """Recompute every counter from the dossiers (same definitions as facts_of, written in SQL)."""
    d = Dossier
    finished = d.status.in_(FINISHED)

    def points(col):
        from sqlalchemy import case
        return case(*((col == k, v) for k, v in POINTS.items()), else_=0)

    def grouped(day, name, value, *where):
        return (select(d.unit_id, d.procedure_id, day.label("day"), literal(name).label("name"),
                       func.sum(value).label("n"))
                .where(day.is_not(None), *where).group_by(d.unit_id, d.procedure_id, day))

    from sqlalchemy import case
    one = literal(1)
    parts = [
        grouped(d.received_on, "received", one),
        *[grouped(d.received_on, f"received_{c}", one, d.channel == c) for c in ("counter", "online", "post")],
        grouped(d.received_on, "digitised", one, d.digitised.is_(True)),
        grouped(d.received_on, "supplemented", one, d.supplemented.is_(True)),
        *[grouped(d.received_on, f"rated_{r}", one, d.rating == r) for r in RATINGS],
        grouped(d.finished_on, "withdrawn", one, d.status == WITHDRAWN),
        grouped(d.finished_on, "finished", one, finished),
        *[grouped(d.finished_on, f"finished_{k}", one, finished, d.finish_result == k) for k in POINTS],
        grouped(d.finished_on, "finished_late_apologized", one, finished, d.finish_result == "late",
                d.apologized.is_(True)),
        grouped(d.finished_on, "tt01_i1", points(d.finish_result), finished),
        grouped(d.finished_on, "tt01_i2", points(d.steps_result), finished, d.steps_result.is_not(None)),
        grouped(d.finished_on, "tt01_i2_n", one, finished, d.steps_result.is_not(None)),
        grouped(d.finished_on, "tt01_i3", case((d.supplement_late.is_(True), 0), (d.supplemented.is_(True), 1), else_=2),
                finished),
        grouped(d.finished_on, "tt01_i4", case((d.channel == "online", 2), else_=1), finished),
        *[grouped(d.finished_on, f"points_rated_{r}", points(d.finish_result), finished, d.rating == r) for r in RATINGS],
        grouped(d.finished_on, "points_rated_none", points(d.finish_result), finished, d.rating.is_(None)),
    ]
    session.execute(delete(DailyCount))
    everything = union_all(*parts).subquery()
    session.execute(DailyCount.__table__.insert().from_select(
        ["unit_id", "procedure_id", "day", "name", "n"],
        select(everything.c.unit_id, everything.c.procedure_id, everything.c.day, everything.c.name,
               everything.c.n).where(everything.c.n != 0)))
