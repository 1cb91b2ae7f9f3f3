"""One set of figures everywhere: a generated year of dossiers — every path of the deadline table
(tests/test_deadlines.py), shifted week by week through 2026 — then the dashboard's figures, their
drill-downs, the API's /metrics, the dashboard page, its CSV export, the header counters, today's
overdue list, the dossier API and a recount in Python from the rows must all agree."""
from __future__ import annotations

import csv
import io
import random
import re
from datetime import date, timedelta

import pytest
from conftest import bearer, figures_of, receive, vn
from sqlalchemy import select
from test_deadlines import TABLE, do

from engine import clock
from engine.access.actors import load_actor
from engine.errors import DomainError
from engine.reporting import counters, deadlines, lists, metrics, views
from engine.store.models import OPEN_STATUSES, DailyCount, Dossier

NOW = vn(2026, 12, 16, 10)
YEAR = (date(2026, 1, 1), date(2026, 12, 31))


def _play(session, office, row, shift: timedelta, cut: int) -> None:
    """Run one path of the table moved by `shift`, its first `cut` steps; a step the calendar of that
    week refuses (an appointment on a holiday) or one after NOW ends the path there."""
    d = receive(session, office, at=vn(2026, 11, 2, 9) + shift)
    for step in row.steps[:cut]:
        if step[1] + shift > NOW:
            return
        try:
            do(session, office, d, step, shift)
        except DomainError:
            session.rollback()
            return


@pytest.fixture
def year(session, office):
    rng = random.Random(2026)
    played = 0
    for week in range(-43, 6, 2):  # from early January to mid-December 2026
        for row in rng.sample(TABLE, 3):
            # Some paths stop part-way: dossiers left open at every stage (paused, overdue, apologized…).
            cut = len(row.steps) if rng.random() < 0.6 else rng.randint(1, len(row.steps))
            _play(session, office, row, timedelta(weeks=week), cut)
            played += 1
    # and a few received these last days, still open: due soon, due today, overdue
    for at in (vn(2026, 12, 10, 9), vn(2026, 12, 14, 9), vn(2026, 12, 15, 16)):
        receive(session, office, at=at)
    session.commit()
    return played


def test_every_surface_shows_the_same_figures_for_a_generated_year(session, office, app, year):
    session.expire_all()
    rows = session.scalars(select(Dossier)).all()
    assert len(rows) == year + 3
    # The table's variety is there: paused, overdue, apologized, refused late, withdrawn, returned.
    assert {d.status for d in rows} >= {"received", "processing", "awaiting_supplement", "result_ready", "returned",
                                        "refused", "withdrawn"}
    assert {d.finish_result for d in rows} >= {"early", "on_time", "late"}
    with clock.frozen(NOW):
        head = metrics.summary(session, *YEAR, unit_code="H40.1")
        figures = figures_of(head)
        for kind, count in figures.items():                                   # drill-downs
            assert metrics.dossier_list(session, kind, *YEAR, unit_code="H40.1")[1] == count, kind
        june = metrics.summary(session, date(2026, 6, 1), date(2026, 6, 30), unit_code="H40.1")
        for kind, count in figures_of(june).items():
            assert metrics.dossier_list(session, kind, date(2026, 6, 1), date(2026, 6, 30), unit_code="H40.1")[1] == count

    # A recount in Python, from the rows and the one definition of overdue.
    open_rows = [d for d in rows if d.status in OPEN_STATUSES]
    overdue = sorted(d.code for d in open_rows if deadlines.is_overdue(d, NOW))
    finished = [d for d in rows if d.status in counters.FINISHED]
    assert figures["in_progress"] == len(open_rows) and figures["in_progress_overdue"] == len(overdue) > 0
    assert figures["overdue_without_apology"] == sum(1 for d in open_rows if d.code in overdue and not d.apologized)
    assert figures["finished"] == len(finished)
    for result in ("early", "on_time", "late"):
        assert figures[f"finished_{result}"] == sum(1 for d in finished if d.finish_result == result), result
    assert any(d.clock_paused for d in open_rows) and not any(d.code in overdue for d in open_rows if d.clock_paused)

    # The header counters, today's list, the dossier API.
    actor = load_actor(session, office["mot_cua"])
    assert lists.counts(session, actor, NOW)["qua-han"] == len(overdue)
    assert sorted(d.code for d in metrics.due_soon(session, [rows[0].unit_id], NOW)["overdue"]) == overdue
    with clock.frozen(NOW):
        assert sorted(d.code for d in open_rows if views.dossier_view(session, d.code)["overdue"]) == overdue

    # The API and the dashboard page and its export, on a web app whose clock reads NOW.
    app.config["MOTCUA_NOW"] = NOW.isoformat()
    app.config["SESSION_COOKIE_SECURE"] = False
    client = app.test_client()
    api = client.get("/api/v1/metrics?from=2026-01-01&to=2026-12-31&unit=H40.1", headers=bearer(client, "manager1"))
    assert api.status_code == 200 and figures_of(api.get_json()) == figures
    page = client.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/dang-nhap", data={"username": "manager1", "password": "matkhau-123",
                                           "csrf_token": token}).status_code == 302
    dash = client.get("/bang-dieu-khien?don-vi=H40.1&tu=2026-01-01&den=2026-12-31").get_data(as_text=True)
    shown = re.search(r'id="h-overdue"><a [^>]*>(\d+)</a>', dash)
    assert shown is not None and int(shown.group(1)) == len(overdue)
    export = client.get("/bang-dieu-khien/danh-sach?loai=in_progress_overdue&don-vi=H40.1&tu=2026-01-01"
                        "&den=2026-12-31&xuat=csv").get_data(as_text=True)
    exported = [r for r in csv.reader(io.StringIO(export.lstrip("\ufeff"))) if r and re.match(r"H40\.1-\d{6}-\d{4}", r[0])]
    assert sorted(r[0] for r in exported) == overdue

    # The counters kept with each change equal a rebuild from the rows.
    def kept():
        session.rollback()
        return sorted(session.execute(select(DailyCount.unit_id, DailyCount.procedure_id, DailyCount.day,
                                             DailyCount.name, DailyCount.n).where(DailyCount.n != 0)).all())
    incremental = kept()
    counters.rebuild(session)
    session.commit()
    assert kept() == incremental
