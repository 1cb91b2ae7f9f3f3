"""Service-quality figures: QĐ 766/QĐ-TTg groups and the TT 01/2018 Đ13-15 indices, computed by SQL
aggregation over indexed reporting columns (never by loading dossiers into Python).

Definitions (docs/metrics.md explains each with its legal source):
- received in a period: `received_on` (local day) in [start, end];
- finished: result issued (`result_ready`, `returned`, `refused`) with `finished_on` in the period,
  judged early / on time / late by `finish_result` (against the due date before any apology);
- in progress at the end of the period: received by then and not finished by then.
Weights, targets and rating bands are data (setting `metrics_config`), since parts of QĐ 766 are
unverified (LEGAL.md).
"""
from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine import clock
from engine.access import directory
from engine.clock import VN_TZ
from engine.reporting import deadlines
from engine.store.models import (
    REFUSED,
    RESULT_READY,
    RETURNED,
    WITHDRAWN,
    Apology,
    DailyCount,
    Dossier,
    Procedure,
    Setting,
    Unit,
)

FINISHED = (RESULT_READY, RETURNED, REFUSED)
DEFAULT_CONFIG = {
    "qd766": {
        "cong_khai": {"weight": 18, "label": "Công khai, minh bạch"},
        "tien_do": {"weight": 20, "label": "Tiến độ, kết quả giải quyết"},
        "so_hoa": {"weight": 22, "label": "Số hóa hồ sơ"},
        "truc_tuyen": {"weight": 22, "label": "Cung cấp dịch vụ trực tuyến", "target_online_share": 0.5},
        "hai_long": {"weight": 18, "label": "Mức độ hài lòng"},
    },
    "tt01": {
        "bands": [[15, "Xuất sắc"], [12, "Tốt"], [9, "Khá"], [6, "Trung bình"], [0, "Yếu"]],
        "online_share_high": 0.30, "online_share_low": 0.15, "online_procedures_share": 0.20,
        "complaint_ratings": ["not_satisfied"],
    },
}


def config(session: Session) -> dict:
    stored = session.get(Setting, "metrics_config")
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if stored is not None:
        for key in ("qd766", "tt01"):
            cfg[key].update(stored.value.get(key, {}))
    return cfg


def units_under(session: Session, unit_code: str) -> list[int]:
    """The unit named by its code and every unit below it."""
    root = session.scalar(select(Unit.id).where(Unit.code == unit_code))
    return directory.units_under(session, root) if root is not None else []


def _scope(session, unit_code, procedure_code, field=None) -> tuple[list[int] | None, list[int] | None]:
    """(unit ids, procedure ids) a report covers — a unit with everything below it, a procedure or a
    field of procedures; None means all."""
    unit_ids = (units_under(session, unit_code) or [-1]) if unit_code else None
    procedure_ids = None
    if procedure_code or field:
        stmt = select(Procedure.id)
        stmt = stmt.where(Procedure.code == procedure_code) if procedure_code else stmt
        stmt = stmt.where(Procedure.field == field) if field else stmt
        procedure_ids = list(session.scalars(stmt)) or [-1]
    return unit_ids, procedure_ids


def _filters(session, unit_code, procedure_code, field=None) -> list:
    """The same scope as row conditions on dossiers."""
    unit_ids, procedure_ids = _scope(session, unit_code, procedure_code, field)
    return [*_in(Dossier.unit_id, unit_ids), *_in(Dossier.procedure_id, procedure_ids)]


def _count(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


GOOD_RATINGS = ("very_satisfied", "satisfied")


def _as_of(end: date) -> datetime:
    """The moment "still open" and "overdue" are judged at: the end of the period, or now while it runs."""
    return min(clock.now(), datetime.combine(end + timedelta(days=1), time.min, tzinfo=VN_TZ))


def _overdue_at_end(end: date):
    """Among the dossiers open at the end of the period: overdue then (deadlines.overdue for those still
    open; those finished since, by the legal date they had)."""
    at = _as_of(end)
    # A dossier finished since was overdue at the end only if its clock ran past the legal date then: it
    # finished late (one the citizen held then was judged at the request and is not late).
    return or_(deadlines.overdue(at), and_(Dossier.finished_on.is_not(None), Dossier.legal_due_at < at,
                                           Dossier.finish_result == "late"))


def _conditions(start: date, end: date):
    received = Dossier.received_on.between(start, end)
    finished = and_(Dossier.finished_on.between(start, end), Dossier.status.in_(FINISHED))
    in_progress = and_(Dossier.received_on <= end, or_(Dossier.finished_on.is_(None), Dossier.finished_on > end),
                       Dossier.status != WITHDRAWN)
    return {
        "received": received,
        "received_online": and_(received, Dossier.channel == "online"),
        "received_counter": and_(received, Dossier.channel == "counter"),
        "received_post": and_(received, Dossier.channel == "post"),
        "finished": finished,
        "finished_early": and_(finished, Dossier.finish_result == "early"),
        "finished_on_time": and_(finished, Dossier.finish_result == "on_time"),
        "finished_late": and_(finished, Dossier.finish_result == "late"),
        "finished_late_apologized": and_(finished, Dossier.finish_result == "late", Dossier.apologized.is_(True)),
        "in_progress": in_progress,
        "in_progress_overdue": and_(in_progress, _overdue_at_end(end)),
        "withdrawn": and_(Dossier.finished_on.between(start, end), Dossier.status == WITHDRAWN),
        "overdue_without_apology": and_(in_progress, _overdue_at_end(end), Dossier.apologized.is_(False)),
        "supplemented": and_(received, Dossier.supplemented.is_(True)),
        "digitised": and_(received, Dossier.digitised.is_(True)),
    }


# The row-level condition behind each figure: the drill-down lists use them, and a test checks every
# figure computed from the daily counters against its list.
KINDS = tuple(_conditions(date.today(), date.today()))


def _relevant(start: date, end: date):
    """Rows that can count in the period at all, so the planner can use the day indexes."""
    return and_(Dossier.received_on <= end, or_(Dossier.finished_on.is_(None), Dossier.finished_on >= start,
                                                Dossier.received_on >= start))


def _period(start: datetime | date, end: datetime | date) -> tuple[date, date]:
    """Accept local days or the API's [start, end) datetimes."""
    if isinstance(start, datetime):
        start = start.astimezone(VN_TZ).date()
    if isinstance(end, datetime):
        end = (end.astimezone(VN_TZ) - timedelta(microseconds=1)).date()
    return start, end


def _figures(session: Session, start: date, end: date, filters: tuple, cfg: dict, group_by: str | None = None) -> dict:
    """{group key (or None): {figure: count}}.

    Flows (received, finished, their verdicts and TT 01 points) are sums of the daily counters kept
    with each change (engine.reportfacts); the work in progress at the end of the period is counted
    live from the dossiers that were open then, which the day indexes find directly."""
    unit_ids, procedure_ids = filters
    out: dict = {}
    grp = {"unit": DailyCount.unit_id, "procedure": DailyCount.procedure_id}.get(group_by)
    flows = select(*([grp] if grp is not None else []), DailyCount.name, func.sum(DailyCount.n)).where(
        DailyCount.day.between(start, end), *_in(DailyCount.unit_id, unit_ids), *_in(DailyCount.procedure_id, procedure_ids))
    flows = flows.group_by(*([grp] if grp is not None else []), DailyCount.name)
    complaints = set(cfg["tt01"]["complaint_ratings"])
    for row in session.execute(flows):
        key, name, n = (row[0], row[1], row[2]) if grp is not None else (None, row[0], row[1])
        m = out.setdefault(key, _zero_counts())
        if name.startswith("rated_"):
            m["ratings"] += n
            m["ratings_good"] += n if name[6:] in GOOD_RATINGS else 0
        elif name.startswith("points_rated_"):
            m["tt01_i7"] += 0 if name[13:] in complaints else n
        elif name in m:
            m[name] += n
    dgrp = {"unit": Dossier.unit_id, "procedure": Dossier.procedure_id}.get(group_by)
    overdue = _overdue_at_end(end)
    # Open at the end of the period: not finished at all (the partial index ix_dossiers_open), or
    # finished only after it (a range on ix_dossiers_finished_on) — two index-driven queries.
    for unfinished in (Dossier.finished_on.is_(None), Dossier.finished_on > end):
        live = select(*([dgrp] if dgrp is not None else []), func.count(), _count(overdue),
                      _count(and_(overdue, Dossier.apologized.is_(False)))).where(
            unfinished, Dossier.received_on <= end, Dossier.status != WITHDRAWN,
            *_in(Dossier.unit_id, unit_ids), *_in(Dossier.procedure_id, procedure_ids))
        if dgrp is not None:
            live = live.group_by(dgrp)
        for row in session.execute(live):
            key, total, late, late_no_apology = (row[0], *row[1:]) if dgrp is not None else (None, *row)
            m = out.setdefault(key, _zero_counts())
            m["in_progress"] += total
            m["in_progress_overdue"] += late
            m["overdue_without_apology"] += late_no_apology
    _index2_by_unit(session, start, end, filters, group_by, out)
    return out


def _index2_by_unit(session: Session, start: date, end: date, filters: tuple, group_by: str | None, out: dict) -> None:
    """TT 01/2018 index 2 ("each unit's time against its own allotment") attributed to the unit that
    did the steps (liên thông: a department's late step scores against the department, not against the
    commune that received the dossier): for each dossier finished in the period and each unit that
    worked on it, the worst of that unit's steps (2 early, 1 on time, 0 late)."""
    from engine.reporting.counters import FINISHED, POINTS, worst
    from engine.store.models import HumanTask

    unit_ids, procedure_ids = filters
    rows = session.execute(
        select(HumanTask.unit_id, HumanTask.dossier_id, Dossier.procedure_id, HumanTask.completed_at, HumanTask.due_at)
        .join(Dossier, Dossier.id == HumanTask.dossier_id)
        .where(Dossier.finished_on.between(start, end), Dossier.status.in_(FINISHED),
               HumanTask.completed_at.is_not(None), HumanTask.cancelled.is_(False),
               *_in(HumanTask.unit_id, unit_ids), *_in(Dossier.procedure_id, procedure_ids))).all()
    results = _step_results(({"unit": unit_id, "procedure": procedure_id}.get(group_by), dossier_id, unit_id, done, due)
                            for unit_id, dossier_id, procedure_id, done, due in rows)
    for m in out.values():
        m["tt01_i2"] = m["tt01_i2_n"] = 0
    for (key, _, _), steps in results.items():
        m = out.setdefault(key, _zero_counts())
        m["tt01_i2"] += POINTS[worst(steps)]
        m["tt01_i2_n"] += 1


def _step_results(rows) -> dict[tuple, list[str]]:
    """{(group, dossier, unit): early / on_time / late of each of that unit's steps on that dossier}, from
    (group, dossier id, unit id, completed at, due at) rows: what index 2 takes the worst of."""
    from engine.reporting.counters import classify

    out: dict[tuple, list[str]] = {}
    for group, dossier_id, unit_id, done, due in rows:
        out.setdefault((group, dossier_id, unit_id), []).append(classify(done, due))
    return out


def _in(column, ids):
    return [column.in_(ids)] if ids is not None else []


FIGURES = ("received", "received_online", "received_counter", "received_post", "finished", "finished_early",
           "finished_on_time", "finished_late", "finished_late_apologized", "in_progress", "in_progress_overdue",
           "withdrawn", "overdue_without_apology", "supplemented", "ratings", "ratings_good", "digitised",
           "tt01_i1", "tt01_i2", "tt01_i2_n", "tt01_i3", "tt01_i4", "tt01_i7")


def _zero_counts() -> dict:
    return dict.fromkeys(FIGURES, 0)


def _derive(m: dict, cfg: dict, procedure_share: float | None) -> dict:
    finished = m["finished"]
    on_time = m["finished_early"] + m["finished_on_time"]
    received = m["received"]
    online_share = m["received_online"] / received if received else None
    # TT 01/2018 Đ13-15: per-dossier indices averaged over finished dossiers; unit index 9 from shares.
    tt = {}
    if m["tt01_i2_n"]:  # a unit that only did steps (a department deciding communes' dossiers) has index 2 alone
        tt["i2"] = round(m["tt01_i2"] / m["tt01_i2_n"], 2)
    if finished:
        tt["i1"] = round(m["tt01_i1"] / finished, 2)
        tt["i3"] = round(m["tt01_i3"] / finished, 2)
        tt["i4"] = round(m["tt01_i4"] / finished, 2)
        tt["i7"] = round(m["tt01_i7"] / finished, 2)
    if online_share is not None and procedure_share is not None:
        t = cfg["tt01"]
        if online_share >= t["online_share_high"] and procedure_share >= t["online_procedures_share"] \
                and m["finished_late"] == 0:
            tt["i9"] = 2
        elif online_share >= t["online_share_low"]:
            tt["i9"] = 1
        else:
            tt["i9"] = 0
    total = round(sum(tt.values()), 1)
    available = 2 * len(tt)
    scaled = round(total / available * 18, 1) if available else None
    band = next((label for floor, label in cfg["tt01"]["bands"] if scaled is not None and scaled >= floor), None)
    # QĐ 766 groups with data in this system; groups without data are reported as None.
    q = cfg["qd766"]
    groups = {
        "cong_khai": None,
        "tien_do": round(q["tien_do"]["weight"] * on_time / finished, 2) if finished else None,
        "so_hoa": round(q["so_hoa"]["weight"] * m["digitised"] / received, 2) if received else None,
        "truc_tuyen": round(q["truc_tuyen"]["weight"] * min(1.0, online_share / q["truc_tuyen"]["target_online_share"]), 2)
        if online_share is not None else None,
        "hai_long": round(q["hai_long"]["weight"] * m["ratings_good"] / m["ratings"], 2) if m["ratings"] else None,
    }
    scored = {k: v for k, v in groups.items() if v is not None}
    return {
        "received": {"total": received, "online": m["received_online"], "counter": m["received_counter"],
                     "post": m["received_post"]},
        "finished": {"total": finished, "early": m["finished_early"], "on_time": m["finished_on_time"],
                     "late": m["finished_late"], "late_with_apology": m["finished_late_apologized"]},
        "in_progress": {"total": m["in_progress"], "in_time": m["in_progress"] - m["in_progress_overdue"],
                        "overdue": m["in_progress_overdue"]},
        "withdrawn": m["withdrawn"],
        "overdue_without_apology": m["overdue_without_apology"],
        "supplement_requests": m["supplemented"],
        "on_time_rate": round(on_time / finished, 4) if finished else None,
        "tt01": {"indices": tt, "total": total, "max_available": available, "scaled_to_18": scaled, "rating": band},
        "qd766": {"groups": groups, "score": round(sum(scored.values()), 2),
                  "max_available": sum(q[k]["weight"] for k in scored)},
    }



def _online_procedure_share(session: Session) -> float | None:
    total, online = session.execute(select(func.count(), _count(Procedure.online_level == "toan_trinh"))
                                    .select_from(Procedure)).one()
    return online / total if total else None


def summary(session: Session, start, end, unit_code: str | None = None, procedure_code: str | None = None,
            field: str | None = None) -> dict:
    """The contract's GET /api/v1/metrics: figures for one unit (and its sub-units), procedure or field."""
    start_day, end_day = _period(start, end)
    cfg = config(session)
    filters = _filters(session, unit_code, procedure_code, field)
    figures = _figures(session, start_day, end_day, _scope(session, unit_code, procedure_code, field), cfg).get(None)
    out = _derive(figures or _zero_counts(), cfg, _online_procedure_share(session))
    apologies = session.execute(select(func.count(), _count(Apology.late.is_(True))).select_from(Apology)
                                .join(Dossier, Dossier.id == Apology.dossier_id)
                                .where(Apology.issued_at >= _at(start_day), Apology.issued_at < _at(end_day + timedelta(days=1)),
                                       *filters)).one()
    out["apologies"] = {"total": apologies[0], "late": apologies[1]}
    out.update({"from": _at(start_day), "to": _at(end_day + timedelta(days=1)), "unit": unit_code,
                "procedure": procedure_code, "field": field})
    return out


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=VN_TZ)


def by_unit(session: Session, start: date, end: date, procedure_code: str | None = None,
            field: str | None = None) -> list[dict]:
    cfg = config(session)
    rows = _figures(session, start, end, _scope(session, None, procedure_code, field), cfg, group_by="unit")
    codes = dict(session.execute(select(Unit.id, Unit.code)).all())
    share = _online_procedure_share(session)
    out = [{"key": codes[unit_id], "unit_id": unit_id, **_derive(m, cfg, share)} for unit_id, m in rows.items()]
    return sorted(out, key=lambda r: r["key"])


def by_procedure(session: Session, start: date, end: date, unit_code: str | None = None,
                 field: str | None = None) -> list[dict]:
    cfg = config(session)
    rows = _figures(session, start, end, _scope(session, unit_code, None, field), cfg, group_by="procedure")
    codes = dict(session.execute(select(Procedure.id, Procedure.code)).all())
    share = _online_procedure_share(session)
    return sorted(({"key": codes[pid], **_derive(m, cfg, share)} for pid, m in rows.items()), key=lambda r: r["key"])


def monthly(session: Session, start: date, end: date, unit_code: str | None = None,
            procedure_code: str | None = None, field: str | None = None) -> list[dict]:
    """Received and finished counts per month (trend chart), from the daily counters."""
    unit_ids, procedure_ids = _scope(session, unit_code, procedure_code, field)
    months: dict[str, dict] = {}
    cursor = start.replace(day=1)
    while cursor <= end:
        months[cursor.strftime("%m/%Y")] = {"month": cursor.strftime("%m/%Y"), "received": 0, "finished": 0,
                                             "on_time": 0, "late": 0}
        cursor = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1)
    names = {"received": "received", "finished": "finished", "finished_early": "on_time",
             "finished_on_time": "on_time", "finished_late": "late"}
    rows = session.execute(select(DailyCount.day, DailyCount.name, func.sum(DailyCount.n)).where(
        DailyCount.day.between(start, end), DailyCount.name.in_(names), *_in(DailyCount.unit_id, unit_ids),
        *_in(DailyCount.procedure_id, procedure_ids)).group_by(DailyCount.day, DailyCount.name))
    for day, name, n in rows:
        months[day.strftime("%m/%Y")][names[name]] += n
    return list(months.values())


def dossier_list(session: Session, kind: str, start: date, end: date, unit_code: str | None = None,
                 procedure_code: str | None = None, limit: int = 200, offset: int = 0,
                 field: str | None = None) -> tuple[list[Dossier], int]:
    """The dossiers behind one figure (drill-down)."""
    if kind not in KINDS:
        raise KeyError(kind)
    filters = _filters(session, unit_code, procedure_code, field)
    stmt = select(Dossier).where(_conditions(start, end)[kind], *filters, _relevant(start, end))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Dossier.received_at.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def due_soon(session: Session, unit_ids: list[int], now: datetime, within: timedelta = timedelta(days=1)) -> dict:
    """Today's lists: open dossiers already overdue, and those due within `within` (never both)."""
    base = select(Dossier).where(Dossier.unit_id.in_(unit_ids))
    return {
        "overdue": session.scalars(base.where(deadlines.overdue(now)).order_by(Dossier.legal_due_at).limit(200)).all(),
        "due_soon": session.scalars(base.where(deadlines.due_between(now, now + within))
                                    .order_by(Dossier.legal_due_at).limit(200)).all(),
    }


def steps_by_unit(session: Session, start: date, end: date, unit_ids: list[int]) -> list[dict]:
    """Each step done in the period, attributed to the unit that did it (liên thông: a department's late
    step is the department's, not the commune's that received the dossier): steps, late steps and TT
    01/2018 index 2 — per dossier and unit, the worst of that unit's steps (2 early, 1 on time, 0 late),
    averaged. Scope: steps done by `unit_ids`, or on dossiers received at `unit_ids`."""
    from engine.reporting.counters import POINTS, worst
    from engine.store.models import HumanTask

    lo = datetime.combine(start, time.min, tzinfo=VN_TZ)
    hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=VN_TZ)
    rows = session.execute(
        select(HumanTask.unit_id, HumanTask.dossier_id, HumanTask.completed_at, HumanTask.due_at)
        .join(Dossier, Dossier.id == HumanTask.dossier_id)
        .where(HumanTask.completed_at >= lo, HumanTask.completed_at < hi, HumanTask.cancelled.is_(False),
               or_(HumanTask.unit_id.in_(unit_ids), Dossier.unit_id.in_(unit_ids)))).all()
    out: dict[int, dict] = {}
    for (unit_id, _, _), steps in _step_results((u, d, u, done, due) for u, d, done, due in rows).items():
        figures = out.setdefault(unit_id, {"unit_id": unit_id, "steps": 0, "late": 0, "points": []})
        figures["steps"] += len(steps)
        figures["late"] += steps.count("late")
        figures["points"].append(POINTS[worst(steps)])
    names = dict(session.execute(select(Unit.id, Unit.code).where(Unit.id.in_(list(out)))).all()) if out else {}
    return [{**{k: v for k, v in figures.items() if k != "points"}, "unit_code": names.get(unit_id),
             "tt01_i2": round(sum(figures["points"]) / len(figures["points"]), 2)}
            for unit_id, figures in sorted(out.items(), key=lambda kv: names.get(kv[0], ""))]
