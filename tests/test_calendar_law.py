"""The working calendar as law data: the shipped 2025-2027 schedule with sources, the dated transfer
cut-off, the admins' changes with an audit trail, and a change's effect on open dossiers (preview,
then apply: dates moved through the unit of work, audit and outbox events, no form 04)."""
import re
from datetime import date, time

import pytest
from conftest import open_task, pdf, receive, vn
from sqlalchemy import func, select

from engine import dossiers
from engine.catalog import calendar
from engine.dossiers.calendar_shift import apply_calendar_change
from engine.errors import InvalidInput, NotAllowed
from engine.store.models import (
    Apology,
    AuditEvent,
    CalendarChange,
    CalendarDay,
    Dossier,
    OutboxEvent,
)
from engine.workflow.workcal import WorkingCalendar


@pytest.fixture
def shipped(session):
    """The shipped data, as migration 0008 loads it (the PostgreSQL fixture empties every table)."""
    calendar.install_shipped_calendar(session.connection())
    session.commit()
    calendar.invalidate_calendar()
    return session


# --- the shipped data ------------------------------------------------------------------------------
def test_shipped_2026_days_off_and_make_up_saturdays_are_the_calendar_in_force(shipped):
    session = shipped
    cal = calendar.working_calendar(session)
    for day in (date(2026, 1, 1), date(2026, 1, 2), date(2026, 2, 17), date(2026, 4, 27), date(2026, 4, 30),
                date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2), date(2026, 11, 24)):
        assert not cal.is_working_day(day), day
    assert cal.is_working_day(date(2026, 8, 22)) and cal.is_working_day(date(2026, 1, 10))  # make-up Saturdays
    assert cal.is_working_day(date(2026, 11, 23)) and cal.is_working_day(date(2026, 11, 25))
    # The database decides, not the `holidays` package: it knows neither the 2/1 swap nor Saturday 10/1.
    library = WorkingCalendar()
    assert library.is_working_day(date(2026, 1, 2)) and not library.is_working_day(date(2026, 1, 10))
    # Each day names its source document.
    sources = {r.day: r.source for r in calendar.calendar_days(session, 2026)}
    assert "28/2026/QH16" in sources[date(2026, 11, 24)]
    assert "12729/VPCP-KGVX" in sources[date(2026, 1, 10)] and "9441/TB-BNV" in sources[date(2026, 8, 22)]
    assert "9441/TB-BNV" in sources[date(2026, 2, 17)]
    years = calendar.calendar_years(session)
    assert years[2026].official and any("9441/TB-BNV" in s for s in years[2026].sources)
    assert years[2025].official and any("6150/TB-BLĐTBXH" in s for s in years[2025].sources)
    # For a year with data, removing a row makes the day an ordinary weekday: the package is not consulted.
    calendar.set_calendar_day(session, date(2026, 11, 24), "clear")
    assert calendar.working_calendar(session).is_working_day(date(2026, 11, 24))
    assert not library.is_working_day(date(2026, 11, 24))


def test_2027_is_the_labour_code_default_marked_not_announced_and_2028_falls_back_to_the_package(shipped):
    session = shipped
    years = calendar.calendar_years(session)
    assert years[2027].status == calendar.LABOUR_CODE_DEFAULT and not years[2027].official
    assert 2028 not in years
    cal = calendar.working_calendar(session)
    for day in (date(2027, 1, 1), date(2027, 2, 8), date(2027, 4, 16), date(2027, 4, 30),
                date(2027, 5, 3),   # 1/5 falls on a Saturday: made up on Monday (BLLĐ Đ111(3))
                date(2027, 9, 2), date(2027, 11, 24)):
        assert not cal.is_working_day(day), day
    assert "chưa công bố" in {r.day: r.note for r in calendar.calendar_days(session, 2027)}[date(2027, 2, 4)]
    # The package's 1/5/2028 (a Monday) and its make-up day for 30/4 (a Sunday), Tuesday 2/5.
    assert not cal.is_working_day(date(2028, 5, 1)) and not cal.is_working_day(date(2028, 5, 2))
    assert cal.is_working_day(date(2028, 5, 3))


@pytest.mark.sqlite_only
def test_the_migration_loads_the_shipped_data_and_the_loader_never_overwrites(session, office):
    # The SQLite database comes straight from Alembic: 0008 has loaded the schedule and logged it.
    assert session.get(CalendarDay, date(2026, 11, 24)).source.startswith("Nghị quyết 28/2026/QH16")
    assert set(calendar.calendar_years(session)) == {2025, 2026, 2027}
    assert calendar.transfer_cutoff(session, date(2026, 11, 27)) == time(15, 0)
    logged = session.scalars(select(CalendarChange).where(CalendarChange.reason == calendar.SHIPPED_REASON)).all()
    assert {c.new_value["year"] for c in logged if c.subject == "year"} == {2025, 2026, 2027}
    calendar.set_calendar_day(session, date(2026, 11, 24), "workday", "Tỉnh không nghỉ (thử)",
                              actor_id=office["admin"], reason="thử ghi đè")
    added = calendar.install_shipped_calendar(session.connection())
    session.commit()
    assert added == {"days": 0, "years": 0, "parameters": 0}
    assert session.get(CalendarDay, date(2026, 11, 24)).kind == "workday"


def test_the_transfer_cutoff_is_a_dated_parameter_with_its_basis(shipped, office):
    session = shipped
    assert calendar.transfer_cutoff(session, date(2026, 11, 27)) == time(15, 0)
    assert calendar.transfer_cutoff(session, date(2018, 1, 1)) is None  # before NĐ 61/2018 took effect
    assert calendar.law_parameter(session, "transfer_cutoff", date(2026, 11, 27)).source.startswith("Nghị định 118/2025")
    assert calendar.law_parameter(session, "transfer_cutoff", date(2025, 6, 30)).source.startswith("Nghị định 61/2018")
    assert calendar.law_parameter(session, "transfer_cutoff", date(2026, 11, 27)).basis == "law"
    assert calendar.law_parameter(session, "same_day_cutoff", date(2026, 11, 27)).basis == "practice"
    calendar.set_law_parameter(session, "transfer_cutoff", date(2027, 1, 1), "16:00", source="QĐ 99/2026/QĐ-UBND",
                               basis="law", actor_id=office["admin"], reason="Quy chế mới của tỉnh")
    assert calendar.transfer_cutoff(session, date(2026, 12, 31)) == time(15, 0)
    assert calendar.transfer_cutoff(session, date(2027, 1, 4)) == time(16, 0)
    log = session.scalars(select(CalendarChange).where(CalendarChange.subject == "parameter:transfer_cutoff",
                                                       CalendarChange.changed_by_id == office["admin"])).one()
    assert log.new_value["value"] == "16:00" and log.reason == "Quy chế mới của tỉnh"


# --- admins' changes ---------------------------------------------------------------------------------
def test_an_admin_change_is_logged_with_actor_reason_and_source(shipped, office):
    session = shipped
    log = calendar.set_calendar_day(session, date(2026, 12, 31), "holiday", "Nghỉ theo quyết định của tỉnh",
                                    actor_id=office["admin"], source="QĐ 12/QĐ-UBND", reason="Tỉnh cho nghỉ cuối năm",
                                    now=vn(2026, 11, 27, 10))
    row = session.get(CalendarDay, date(2026, 12, 31))
    assert (row.kind, row.source, row.changed_by_id, row.changed_at) == ("holiday", "QĐ 12/QĐ-UBND", office["admin"],
                                                                         vn(2026, 11, 27, 10))
    assert (log.changed_by_id, log.day, log.old_value, log.reason, log.source) == \
        (office["admin"], date(2026, 12, 31), None, "Tỉnh cho nghỉ cuối năm", "QĐ 12/QĐ-UBND")
    assert log.new_value == {"kind": "holiday", "note": "Nghỉ theo quyết định của tỉnh", "source": "QĐ 12/QĐ-UBND"}
    removed = calendar.set_calendar_day(session, date(2026, 11, 24), "clear", actor_id=office["admin"],
                                        reason="Thử bỏ ngày nghỉ", now=vn(2026, 11, 27, 11))
    assert removed.old_value["kind"] == "holiday" and removed.new_value is None
    assert [c.day for c in calendar.calendar_changes(session, 2026) if c.subject == "day"] == \
        [date(2026, 11, 24), date(2026, 12, 31)]
    # Only an admin, and only with a reason; a refused change writes nothing.
    before = session.scalar(select(func.count()).select_from(CalendarChange))
    with pytest.raises(NotAllowed):
        calendar.set_calendar_day(session, date(2026, 12, 30), "holiday", actor_id=office["mot_cua"], reason="x")
    with pytest.raises(InvalidInput):
        calendar.set_calendar_day(session, date(2026, 12, 30), "holiday", actor_id=office["admin"], reason=" ")
    assert session.scalar(select(func.count()).select_from(CalendarChange)) == before
    assert session.get(CalendarDay, date(2026, 12, 30)) is None
    # The command line (no actor) is logged too, with no user.
    assert calendar.set_calendar_day(session, date(2026, 12, 30), "holiday", "CLI").changed_by_id is None


# --- preview and apply -----------------------------------------------------------------------------
def _world(session, office):
    """Dossiers around Tuesday 10/11/2026 (1.001612: 3 working days; 1.001193: the same day)."""
    w = {
        "before": receive(session, office, at=vn(2026, 11, 2, 9)),            # due Thu 5/11
        "due_on_day": receive(session, office, at=vn(2026, 11, 5, 9)),        # due Tue 10/11
        "in_period": receive(session, office, at=vn(2026, 11, 6, 9)),         # due Wed 11/11
        "withdrawn": receive(session, office, at=vn(2026, 11, 6, 9, 10)),     # due Wed 11/11, then closed
        "paused": receive(session, office, at=vn(2026, 11, 9, 9)),            # due Thu 12/11, waits for the citizen
        "on_receipt_day": receive(session, office, at=vn(2026, 11, 10, 9)),   # due Fri 13/11
        "same_day": receive(session, office, code="1.001193", at=vn(2026, 11, 10, 9, 5)),  # due Tue 10/11
        "restarted": receive(session, office, at=vn(2026, 11, 3, 9)),         # restarts on Wed 11/11
        "after": receive(session, office, at=vn(2026, 11, 11, 9)),            # due Mon 16/11
        "late13": receive(session, office, at=vn(2026, 11, 13, 9)),           # due Wed 18/11
    }
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=w["withdrawn"].code,
                              reason="Người nộp rút", now=vn(2026, 11, 6, 10))
    for key, asked in (("paused", vn(2026, 11, 9, 10)), ("restarted", vn(2026, 11, 4, 10))):
        d = w[key]
        task = open_task(session, d, "mot_cua")
        dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=task.id, data={"decision": "approve"},
                               now=asked.replace(minute=0, hour=9, second=30))
        task = open_task(session, d, "chuyen_vien")
        dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=task.id, now=asked, note="Thiếu chữ ký",
                               data={"decision": "request_supplement",
                                     "items": [{"component": "GIAYDENGHI", "problem": "Thiếu chữ ký chủ hộ"}]})
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=w["restarted"].code,
                                components=[{"code": "GIAYDENGHI", "filename": "gdn-2.pdf", "content": pdf("2")}],
                                now=vn(2026, 11, 11, 10))
    session.expire_all()
    w = {k: session.get(Dossier, d.id) for k, d in w.items()}
    assert w["paused"].clock_paused and w["restarted"].due_at == vn(2026, 11, 16, 17)
    assert w["same_day"].due_at == vn(2026, 11, 10, 17) and w["in_period"].due_at == vn(2026, 11, 11, 17)
    return w


def _moves(shifts):
    return {s.code: (s.due_at, s.new_due_at, s.legal_due_at, s.new_legal_due_at) for s in shifts}


def test_the_preview_lists_exactly_the_dossiers_whose_due_date_moves(shipped, office):
    session = shipped
    w = _world(session, office)
    # A new day off on Tuesday 10/11 pushes the due day of a dossier whose clock period holds it by one
    # working day: not the receipt day itself, not after the due day, not a closed or paused dossier,
    # not before a restart.
    assert _moves(calendar.calendar_change_preview(session, date(2026, 11, 10), "holiday")) == {
        w["due_on_day"].code: (vn(2026, 11, 10, 17), vn(2026, 11, 11, 17), vn(2026, 11, 10, 17), vn(2026, 11, 11, 17)),
        w["in_period"].code: (vn(2026, 11, 11, 17), vn(2026, 11, 12, 17), vn(2026, 11, 11, 17), vn(2026, 11, 12, 17)),
        w["same_day"].code: (vn(2026, 11, 10, 17), vn(2026, 11, 11, 17), vn(2026, 11, 10, 17), vn(2026, 11, 11, 17)),
    }
    # A new working Saturday 14/11 pulls the due day one working day earlier (onto the Saturday itself).
    assert _moves(calendar.calendar_change_preview(session, date(2026, 11, 14), "workday")) == {
        w["after"].code: (vn(2026, 11, 16, 17), vn(2026, 11, 14, 17), vn(2026, 11, 16, 17), vn(2026, 11, 14, 17)),
        w["restarted"].code: (vn(2026, 11, 16, 17), vn(2026, 11, 14, 17), vn(2026, 11, 16, 17), vn(2026, 11, 14, 17)),
        w["late13"].code: (vn(2026, 11, 18, 17), vn(2026, 11, 17, 17), vn(2026, 11, 18, 17), vn(2026, 11, 17, 17)),
    }
    # A change that leaves the day as it is (a Sunday made a day off) moves nothing; the preview writes nothing.
    assert calendar.calendar_change_preview(session, date(2026, 11, 15), "holiday") == []
    assert session.get(CalendarDay, date(2026, 11, 10)) is None


def test_apply_moves_the_previewed_dossiers_through_the_unit_of_work_and_leaves_the_others(shipped, office):
    session = shipped
    w = _world(session, office)
    expected = _moves(calendar.calendar_change_preview(session, date(2026, 11, 10), "holiday"))
    before = {k: (d.due_at, d.legal_due_at) for k, d in w.items()}
    outbox_before = dict(session.execute(select(OutboxEvent.dossier_id, func.count()).group_by(OutboxEvent.dossier_id)).all())

    with pytest.raises(NotAllowed):
        apply_calendar_change(session, actor_id=office["mot_cua"], day=date(2026, 11, 10), kind="holiday",
                              reason="x", source="y", now=vn(2026, 11, 9, 16))
    session.rollback()
    assert session.get(CalendarDay, date(2026, 11, 10)) is None

    done = apply_calendar_change(session, actor_id=office["admin"], day=date(2026, 11, 10), kind="holiday",
                                 reason="Tỉnh cho nghỉ", source="QĐ 45/QĐ-UBND", note="Nghỉ đột xuất",
                                 now=vn(2026, 11, 9, 16))
    assert (done.moved, done.appointments_moved, set(done.codes)) == (3, 3, set(expected))
    session.expire_all()
    assert not calendar.working_calendar(session).is_working_day(date(2026, 11, 10))
    for key, d in w.items():
        d = session.get(Dossier, d.id)
        events = session.scalars(select(AuditEvent).where(AuditEvent.dossier_id == d.id,
                                                          AuditEvent.kind == "calendar_shift")).all()
        outbox = session.scalars(select(OutboxEvent.kind).where(OutboxEvent.dossier_id == d.id)).all()
        if d.code in expected:
            _, new_due, _, new_legal = expected[d.code]
            assert (d.due_at, d.legal_due_at) == (new_due, new_legal), key
            assert len(events) == 1 and events[0].actor_id == office["admin"]
            assert events[0].data["reason"] == "Tỉnh cho nghỉ" and events[0].data["source"] == "QĐ 45/QĐ-UBND"
            assert events[0].data["previous_due_at"] == before[key][0].isoformat()
            assert len(outbox) == outbox_before.get(d.id, 0) + 1 and outbox[-1] == "appointment_changed"
        else:
            assert (d.due_at, d.legal_due_at) == before[key], key
            assert events == [] and len(outbox) == outbox_before.get(d.id, 0), key
    assert session.scalar(select(func.count()).select_from(Apology)) == 0  # no form 04 for a declared day off
    log = session.scalars(select(CalendarChange).where(CalendarChange.day == date(2026, 11, 10))).one()
    assert (log.changed_by_id, log.reason, log.source, log.dossiers_moved) == \
        (office["admin"], "Tỉnh cho nghỉ", "QĐ 45/QĐ-UBND", 3)
    # Applying it again moves nothing more.
    again = apply_calendar_change(session, actor_id=office["admin"], day=date(2026, 11, 10), kind="holiday",
                                  reason="Tỉnh cho nghỉ", source="QĐ 45/QĐ-UBND", note="Nghỉ đột xuất")
    assert (again.change_id, again.moved) == (None, 0)


# --- the admin page ----------------------------------------------------------------------------------
def _token(client, url):
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(app, username):
    app.config["SESSION_COOKIE_SECURE"] = False
    client = app.test_client()
    r = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123",
                                        "csrf_token": _token(client, "/dang-nhap")})
    assert r.status_code == 302
    return client


def test_the_admin_page_shows_sources_marks_unannounced_years_and_previews_then_applies(app, shipped, office):
    session = shipped
    d = receive(session, office, at=vn(2026, 11, 2, 9))  # due Thu 5/11
    admin = _login(app, "admin1")
    page = admin.get("/quan-tri/lich?nam=2026").get_data(as_text=True)
    assert "24/11/2026" in page and "Nghị quyết 28/2026/QH16" in page and "Thông báo 9441/TB-BNV" in page
    assert "Đã công bố chính thức" in page and 'id="chua-cong-bo"' not in page
    page = admin.get("/quan-tri/lich?nam=2027").get_data(as_text=True)
    assert 'id="chua-cong-bo"' in page and "chưa công bố chính thức — áp dụng mặc định Bộ luật Lao động" in page
    assert "Nghị định 118/2025/NĐ-CP" in page and "Thực tiễn địa phương" in page  # the cut-offs and their basis

    form = {"day": "2026-11-04", "kind": "holiday", "note": "Nghỉ đột xuất", "source": "QĐ 7/QĐ-UBND",
            "reason": "Bão"}
    # Without the CSRF token neither step is accepted, and nothing changes.
    assert admin.post("/quan-tri/lich/xem-truoc", data=form).status_code == 400
    assert admin.post("/quan-tri/lich/ap-dung", data=form).status_code == 400
    session.rollback()  # a new read: the web app wrote in its own session
    assert session.get(CalendarDay, date(2026, 11, 4)) is None
    token = _token(admin, "/quan-tri/lich?nam=2026")
    r = admin.post("/quan-tri/lich/xem-truoc", data={**form, "csrf_token": token})
    preview = r.get_data(as_text=True)
    assert r.status_code == 200 and d.code in preview
    assert "17:00 05/11/2026" in preview and "17:00 06/11/2026" in preview
    session.rollback()  # a new read: the web app wrote in its own session
    assert session.get(CalendarDay, date(2026, 11, 4)) is None  # the preview saved nothing
    missing = admin.post("/quan-tri/lich/xem-truoc", data={**form, "reason": "", "csrf_token": token})
    assert missing.status_code == 400 and "Nêu lý do thay đổi" in missing.get_data(as_text=True)
    r = admin.post("/quan-tri/lich/ap-dung", data={**form, "csrf_token": token}, follow_redirects=True)
    assert r.status_code == 200 and "Đã dời ngày hẹn của 1 hồ sơ" in r.get_data(as_text=True)
    session.rollback()  # a new read: the web app wrote in its own session
    assert session.get(Dossier, d.id).due_at == vn(2026, 11, 6, 17)
    assert session.get(CalendarDay, date(2026, 11, 4)).source == "QĐ 7/QĐ-UBND"
    # Not an admin: refused.
    desk = _login(app, "mot_cua1")
    assert desk.get("/quan-tri/lich").status_code == 403
