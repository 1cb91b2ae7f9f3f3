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

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from .clock import VN_TZ
from .models import (
    OPEN_STATUSES,
    REFUSED,
    RESULT_READY,
    RETURNED,
    WITHDRAWN,
    Apology,
    Dossier,
    DossierFile,
    Procedure,
    ServiceRating,
    Setting,
    SupplementRequest,
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


def _filters(session, unit_code, procedure_code, field=None):
    out = []
    if unit_code:
        out.append(Dossier.unit_id.in_(units_under(session, unit_code) or [-1]))
    if procedure_code:
        out.append(Dossier.procedure_id == select(Procedure.id).where(Procedure.code == procedure_code).scalar_subquery())
    if field:
        out.append(Dossier.procedure_id.in_(select(Procedure.id).where(Procedure.field == field)))
    return out


def _count(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _conditions(start: date, end: date):
    end_at = datetime.combine(end + timedelta(days=1), time.min, tzinfo=VN_TZ)
    received = Dossier.received_on.between(start, end)
    finished = and_(Dossier.finished_on.between(start, end), Dossier.status.in_(FINISHED))
    in_progress = and_(Dossier.received_on <= end, or_(Dossier.finished_on.is_(None), Dossier.finished_on > end),
                       Dossier.status != WITHDRAWN)
    supplemented = exists().where(SupplementRequest.dossier_id == Dossier.id)
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
        "in_progress_overdue": and_(in_progress, Dossier.due_at < end_at),
        "withdrawn": and_(Dossier.finished_on.between(start, end), Dossier.status == WITHDRAWN),
        "overdue_without_apology": and_(in_progress, Dossier.due_at < end_at, Dossier.apologized.is_(False)),
        "supplemented": and_(received, supplemented),
        "digitised": and_(received, exists().where(DossierFile.dossier_id == Dossier.id)),
    }


KINDS = tuple(_conditions(date.today(), date.today()))


def _period(start: datetime | date, end: datetime | date) -> tuple[date, date]:
    """Accept local days or the API's [start, end) datetimes."""
    if isinstance(start, datetime):
        start = start.astimezone(VN_TZ).date()
    if isinstance(end, datetime):
        end = (end.astimezone(VN_TZ) - timedelta(microseconds=1)).date()
    return start, end


def _figures(session: Session, start: date, end: date, filters: list, group_by=None) -> list:
    conds = _conditions(start, end)
    columns = [_count(c).label(k) for k, c in conds.items()]
    tt01 = _tt01_columns(session, start, end)
    columns += [v.label(k) for k, v in tt01.items()]
    stmt = select(*( [group_by] if group_by is not None else []), *columns).where(*filters)
    if group_by is not None:
        stmt = stmt.group_by(group_by)
    return session.execute(stmt).all()


def _tt01_columns(session, start, end):
    """Sums of the per-dossier TT 01/2018 points over dossiers finished in the period."""
    finished = and_(Dossier.finished_on.between(start, end), Dossier.status.in_(FINISHED))
    cfg = config(session)["tt01"]
    points = {"early": 2, "on_time": 1, "late": 0}

    def pts(column):
        return case(*((column == k, v) for k, v in points.items()), else_=0)

    complaint = exists().where(ServiceRating.dossier_id == Dossier.id, ServiceRating.rating.in_(cfg["complaint_ratings"]))
    supplemented = exists().where(SupplementRequest.dossier_id == Dossier.id)
    return {
        "tt01_i1": func.coalesce(func.sum(case((finished, pts(Dossier.finish_result)), else_=0)), 0),
        "tt01_i2": func.coalesce(func.sum(case((and_(finished, Dossier.steps_result.is_not(None)),
                                                pts(Dossier.steps_result)), else_=0)), 0),
        "tt01_i2_n": _count(and_(finished, Dossier.steps_result.is_not(None))),
        "tt01_i3": func.coalesce(func.sum(case((finished, case((supplemented, 1), else_=2)), else_=0)), 0),
        "tt01_i4": func.coalesce(func.sum(case((finished, case((Dossier.channel == "online", 2), else_=1)), else_=0)), 0),
        "tt01_i7": func.coalesce(func.sum(case((finished, case((complaint, 0), else_=pts(Dossier.finish_result))),
                                               else_=0)), 0),
    }


def _derive(session: Session, row, start: date, end: date, procedure_share: float | None, filters: list) -> dict:
    m = row._mapping
    cfg = config(session)
    finished = m["finished"]
    on_time = m["finished_early"] + m["finished_on_time"]
    received = m["received"]
    online_share = m["received_online"] / received if received else None
    # TT 01/2018 Đ13-15: per-dossier indices averaged over finished dossiers; unit index 9 from shares.
    tt = {}
    if finished:
        tt["i1"] = round(m["tt01_i1"] / finished, 2)
        if m["tt01_i2_n"]:
            tt["i2"] = round(m["tt01_i2"] / m["tt01_i2_n"], 2)
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
    ratings = session.execute(select(_count(ServiceRating.rating.in_(("very_satisfied", "satisfied"))), func.count())
                              .select_from(ServiceRating).join(Dossier, Dossier.id == ServiceRating.dossier_id)
                              .where(*filters, Dossier.received_on.between(start, end))).one()
    groups = {
        "cong_khai": None,
        "tien_do": round(q["tien_do"]["weight"] * on_time / finished, 2) if finished else None,
        "so_hoa": round(q["so_hoa"]["weight"] * m["digitised"] / received, 2) if received else None,
        "truc_tuyen": round(q["truc_tuyen"]["weight"] * min(1.0, online_share / q["truc_tuyen"]["target_online_share"]), 2)
        if online_share is not None else None,
        "hai_long": round(q["hai_long"]["weight"] * ratings[0] / ratings[1], 2) if ratings[1] else None,
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


def summary(session: Session, start, end, unit_code: str | None = None, procedure_code: str | None = None) -> dict:
    """The contract's GET /api/v1/metrics: figures for one unit (and its sub-units) and/or procedure."""
    start_day, end_day = _period(start, end)
    filters = _filters(session, unit_code, procedure_code)
    row = _figures(session, start_day, end_day, filters)[0]
    out = _derive(session, row, start_day, end_day, _online_procedure_share(session), filters)
    apologies = session.execute(select(func.count(), _count(Apology.late.is_(True))).select_from(Apology)
                                .join(Dossier, Dossier.id == Apology.dossier_id)
                                .where(Apology.issued_at >= _at(start_day), Apology.issued_at < _at(end_day + timedelta(days=1)),
                                       *filters)).one()
    out["apologies"] = {"total": apologies[0], "late": apologies[1]}
    out.update({"from": _at(start_day), "to": _at(end_day + timedelta(days=1)), "unit": unit_code,
                "procedure": procedure_code})
    return out


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=VN_TZ)


def by_unit(session: Session, start: date, end: date, procedure_code: str | None = None) -> list[dict]:
    rows = _figures(session, start, end, _filters(session, None, procedure_code), group_by=Dossier.unit_id)
    names = dict(session.execute(select(Unit.id, Unit.code)).all())
    share = _online_procedure_share(session)
    out = []
    for row in rows:
        unit_id = row[0]
        figures = _derive(session, row, start, end, share, [Dossier.unit_id == unit_id])
        out.append({"key": names[unit_id], "unit_id": unit_id, **figures})
    return sorted(out, key=lambda r: r["key"])


def by_procedure(session: Session, start: date, end: date, unit_code: str | None = None) -> list[dict]:
    filters = _filters(session, unit_code, None)
    rows = _figures(session, start, end, filters, group_by=Dossier.procedure_id)
    codes = dict(session.execute(select(Procedure.id, Procedure.code)).all())
    share = _online_procedure_share(session)
    out = []
    for row in rows:
        pid = row[0]
        figures = _derive(session, row, start, end, share, [*filters, Dossier.procedure_id == pid])
        out.append({"key": codes[pid], **figures})
    return sorted(out, key=lambda r: r["key"])


def monthly(session: Session, start: date, end: date, unit_code: str | None = None,
            procedure_code: str | None = None) -> list[dict]:
    """Received and finished-on-time counts per month (trend chart)."""
    filters = _filters(session, unit_code, procedure_code)
    months = []
    cursor = start.replace(day=1)
    while cursor <= end:
        nxt = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1)
        months.append((cursor, min(end, nxt - timedelta(days=1))))
        cursor = nxt
    out = []
    for first, last in months:
        conds = _conditions(first, last)
        r = session.execute(select(_count(conds["received"]), _count(conds["finished"]),
                                   _count(or_(conds["finished_early"], conds["finished_on_time"])),
                                   _count(conds["finished_late"])).where(*filters)).one()
        out.append({"month": first.strftime("%m/%Y"), "received": r[0], "finished": r[1], "on_time": r[2], "late": r[3]})
    return out


def dossier_list(session: Session, kind: str, start: date, end: date, unit_code: str | None = None,
                 procedure_code: str | None = None, limit: int = 200, offset: int = 0) -> tuple[list[Dossier], int]:
    """The dossiers behind one figure (drill-down)."""
    conds = _conditions(start, end)
    if kind not in conds:
        raise KeyError(kind)
    stmt = select(Dossier).where(conds[kind], *_filters(session, unit_code, procedure_code))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Dossier.received_at.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def due_soon(session: Session, unit_ids: list[int], now: datetime, within: timedelta = timedelta(days=1)) -> dict:
    """Today's lists: open dossiers already overdue, and those due within `within`."""
    base = select(Dossier).where(Dossier.unit_id.in_(unit_ids), Dossier.status.in_(OPEN_STATUSES))
    return {
        "overdue": session.scalars(base.where(Dossier.due_at < now).order_by(Dossier.due_at).limit(200)).all(),
        "due_soon": session.scalars(base.where(Dossier.due_at >= now, Dossier.due_at < now + within)
                                    .order_by(Dossier.due_at).limit(200)).all(),
    }
