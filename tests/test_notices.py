"""Notices to the applicant (issue #13 item 4; L4, L12, L13): queued by the unit of work in the change's
transaction, delivered to a real SMTP server (aiosmtpd) and an HTTP SMS gateway on 127.0.0.1, retried
with back-off, never sent twice, shown on the dossier page. On SQLite and PostgreSQL.

Every dossier is received Mon 2/11/2026 09:00 for 1.001612 (3 working days): appointment Thu 5/11 17:00.
"""
from __future__ import annotations

import re
import threading
from datetime import date, timedelta

import pytest
from conftest import APPLICANT, FROM, PUBLIC, _free_port, components_for, open_task, pdf, receive, result_for, vn
from sqlalchemy import event, func, select

from engine import clock, dossiers, notify
from engine.dossiers import aggregate, notices
from engine.dossiers.aggregate import Record
from engine.errors import DueDateAlreadyReset, LateSupplementRequest
from engine.notify import messages, sender
from engine.store.models import Dossier, HumanTask, Notice

ITEMS = [{"component": "GIAYDENGHI", "problem": "Thiếu chữ ký của chủ hộ"}]


# The SMTP server, the SMS gateway and `send` are fixtures of conftest.py (shared with test_lien_thong).


def _notices(session, dossier_id=None) -> list[Notice]:
    session.rollback()  # a fresh snapshot: the senders wrote in their own transactions
    stmt = select(Notice).order_by(Notice.id)
    if dossier_id is not None:
        stmt = stmt.where(Notice.dossier_id == dossier_id)
    return list(session.scalars(stmt))


def _forward(session, office, d, at):
    dossiers.complete_task(session, actor_id=office["mot_cua"], task_id=open_task(session, d).id, now=at)


def _finish(session, office, d, at):
    session.expire_all()
    while (task := session.scalars(select(HumanTask).where(HumanTask.dossier_id == d.id,
                                                           HumanTask.completed_at.is_(None))).first()) is not None:
        dossiers.complete_task(session, actor_id=office[task.role], task_id=task.id, data={"decision": "approve"},
                               result=result_for(session, task, at), now=at)
        session.expire_all()


def _check_sms(sms: dict, code: str) -> str:
    text = sms["text"]
    assert len(text) <= 160, text
    assert code in text and f"{PUBLIC}/tra-cuu?ma={code}" in text
    assert text.isascii(), text  # folded: one GSM-7 message, not 70-character UCS-2
    assert sms["phone"] == APPLICANT["phone"]
    return text


# --- the notices of a dossier's life ---------------------------------------------------------------
def test_each_change_sends_its_notice_by_email_and_sms(session, office, send, smtp, gateway):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    code = d.code
    assert send(vn(2026, 11, 2, 9, 1)).sent == 2
    (mail,) = smtp.messages
    assert mail["Subject"] == f"Hồ sơ {code} đã được tiếp nhận — hẹn trả kết quả 17:00 05/11/2026"
    assert mail["To"] == APPLICANT["email"] and "motcua@tanlac.phutho.gov.vn" in mail["From"]
    body = mail.get_content()
    assert body.startswith("Kính gửi Ông/Bà Nguyễn Văn An,")
    for line in (f"Mã hồ sơ: {code}", "Thủ tục: Đăng ký thành lập hộ kinh doanh", "Ngày tiếp nhận: 09:00 02/11/2026",
                 "Ngày hẹn trả kết quả: 17:00 05/11/2026", f"Tra cứu tình trạng hồ sơ: {PUBLIC}/tra-cuu?ma={code}",
                 "UBND xã Tân Lạc"):
        assert line in body
    (sms,) = gateway.received
    assert _check_sms(sms, code).startswith(f"UBND xa Tan Lac: Da tiep nhan ho so {code}, hen tra ket qua 17:00 05/11/2026.")

    # The desk forwards: no notice.
    _forward(session, office, d, vn(2026, 11, 2, 10))
    assert send(vn(2026, 11, 2, 10, 1)).sent == 0

    # Supplement request (form 02) with the list and the answer-by date.
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="Hồ sơ chưa hợp lệ", items=ITEMS, now=vn(2026, 11, 3, 9))
    assert send(vn(2026, 11, 3, 9, 1)).sent == 2
    mail = smtp.messages[-1]
    assert mail["Subject"] == f"Hồ sơ {code}: yêu cầu bổ sung, hoàn thiện hồ sơ"
    body = mail.get_content()
    assert "Lý do: Hồ sơ chưa hợp lệ" in body
    assert "  1. Giấy đề nghị đăng ký hộ kinh doanh: Thiếu chữ ký của chủ hộ" in body
    assert "Hạn bổ sung: 03/12/2026." in body
    assert _check_sms(gateway.received[-1], code).startswith(
        f"UBND xa Tan Lac: Ho so {code} can bo sung 1 giay to, han 03/12/2026.")

    # The supplement arrives: the processing time restarts, the applicant is told the new appointment.
    dossiers.deliver_supplement(session, actor_id=office["mot_cua"], dossier_code=code, now=vn(2026, 11, 9, 10),
                                components=[{"code": "GIAYDENGHI", "filename": "bs.pdf", "content": pdf("bs")}])
    assert send(vn(2026, 11, 9, 10, 1)).sent == 2
    assert "thời hạn giải quyết được tính lại" in smtp.messages[-1].get_content()
    assert "12/11/2026" in smtp.messages[-1].get_content()
    assert f"Ho so {code} da nhan du ho so bo sung, hen tra ket qua 17:00 12/11/2026." in _check_sms(gateway.received[-1], code)

    # Apology (form 04) signed by the leader, with the new date.
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=code, reason="Cần xác minh với cơ quan thuế",
                           new_due_at=vn(2026, 11, 16, 17), now=vn(2026, 11, 10, 10))
    assert send(vn(2026, 11, 10, 10, 1)).sent == 2
    mail = smtp.messages[-1]
    assert mail["Subject"] == f"Hồ sơ {code}: thư xin lỗi và hẹn lại ngày trả kết quả 17:00 16/11/2026"
    body = mail.get_content()
    assert "Lý do: Cần xác minh với cơ quan thuế" in body
    assert "Ngày hẹn trả kết quả trước đây: 17:00 12/11/2026" in body
    assert "Ngày hẹn trả kết quả mới: 17:00 16/11/2026" in body
    text = _check_sms(gateway.received[-1], code)
    assert f"Ho so {code} cham hen, xin loi ong/ba. Hen tra moi 17:00 16/11/2026." in text

    # Result ready: come and collect it; handing it over sends nothing more.
    _finish(session, office, d, vn(2026, 11, 13, 10))
    dossiers.return_result(session, actor_id=office["mot_cua"], dossier_code=code, now=vn(2026, 11, 16, 9))
    assert send(vn(2026, 11, 16, 9, 1)).sent == 2
    mail = smtp.messages[-1]
    assert mail["Subject"] == f"Hồ sơ {code} đã xử lý xong — mời Ông/Bà nhận kết quả"
    assert "mang theo Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in mail.get_content()
    assert "da xu ly xong" in _check_sms(gateway.received[-1], code)

    # Exactly these, once each, and nothing more on later runs.
    assert send(vn(2026, 11, 20, 9)).sent == 0
    assert len(smtp.messages) == len(gateway.received) == 5
    rows = _notices(session, d.id)
    assert [(n.kind, n.channel) for n in rows] == [
        (k, c) for k in ("receipt", "supplement_request", "new_appointment", "apology", "result_ready")
        for c in ("email", "sms")]
    assert {n.state for n in rows} == {"sent"} and {n.attempts for n in rows} == {1}
    # Each carries its stable id: the e-mail's Message-ID, the gateway's idempotency key.
    assert [m["Message-ID"] for m in smtp.messages] == [f"<{n.uid}@tanlac.phutho.gov.vn>" for n in rows if n.channel == "email"]
    assert [(s["id"], s["idempotency_key"]) for s in gateway.received] == [(n.uid, n.uid) for n in rows if n.channel == "sms"]


def test_refusal_and_withdrawal_are_told_with_the_reason(session, office, send, smtp, gateway):
    leader = receive(session, office, at=vn(2026, 11, 2, 9))
    _forward(session, office, leader, vn(2026, 11, 2, 10))
    dossiers.refuse_dossier(session, actor_id=office["lanh_dao"], dossier_code=leader.code,
                            reason="Ngành nghề không được kinh doanh", now=vn(2026, 11, 3, 9))
    # A refusal carried through the process (specialist proposes, leader signs) too.
    path = receive(session, office, at=vn(2026, 11, 2, 9))
    _forward(session, office, path, vn(2026, 11, 2, 10))
    dossiers.complete_task(session, actor_id=office["chuyen_vien"], task_id=open_task(session, path).id,
                           data={"decision": "refuse"}, note="Tên hộ kinh doanh trùng", now=vn(2026, 11, 3, 10))
    dossiers.complete_task(session, actor_id=office["lanh_dao"], task_id=open_task(session, path).id,
                           data={"decision": "approve"}, now=vn(2026, 11, 3, 11))
    withdrawn = receive(session, office, at=vn(2026, 11, 2, 9))
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=withdrawn.code, reason="Rút",
                              now=vn(2026, 11, 3, 9))
    smtp.messages.clear()
    gateway.received.clear()
    send(vn(2026, 11, 2, 9))          # the receipts only: the rest is not due yet at 9:00 on 2/11
    assert len(smtp.messages) == 3 and all("đã được tiếp nhận" in s for s in smtp.subjects())
    assert send(vn(2026, 11, 3, 12)).sent == 6

    by_code = {m["Subject"].split()[2].rstrip(":"): m for m in smtp.messages[3:]}
    assert by_code[leader.code]["Subject"] == f"Hồ sơ {leader.code}: thông báo từ chối giải quyết hồ sơ"
    assert "Lý do: Ngành nghề không được kinh doanh" in by_code[leader.code].get_content()
    assert "Lý do: Tên hộ kinh doanh trùng" in by_code[path.code].get_content()
    assert by_code[withdrawn.code]["Subject"] == f"Hồ sơ {withdrawn.code}: thông báo dừng giải quyết hồ sơ"
    texts = {code: _check_sms([s for s in gateway.received[3:] if code in s["text"]][0], code)
             for code in (leader.code, path.code, withdrawn.code)}
    assert texts[leader.code].startswith(f"Ho so {leader.code} bi tu choi giai quyet. "
                                         "Ly do: Nganh nghe khong duoc kinh doanh. Tra cuu: ")
    assert f"Ho so {withdrawn.code} da dung giai quyet" in texts[withdrawn.code]
    kinds = [(n.dossier_id, n.kind) for n in _notices(session) if n.channel == "email"]
    assert kinds == [(leader.id, "receipt"), (leader.id, "refusal"), (path.id, "receipt"), (path.id, "refusal"),
                     (withdrawn.id, "receipt"), (withdrawn.id, "withdrawal")]


def test_a_calendar_change_that_moves_the_appointment_is_told(session, office, send, smtp, gateway):
    from engine.dossiers.calendar_shift import apply_calendar_change

    d = receive(session, office, at=vn(2026, 11, 2, 9))
    send(vn(2026, 11, 2, 9, 1))
    apply_calendar_change(session, actor_id=office["admin"], day=date(2026, 11, 4), kind="holiday",
                          reason="Tỉnh cho nghỉ", source="QĐ 45/QĐ-UBND", now=vn(2026, 11, 2, 16))
    assert send(vn(2026, 11, 2, 16, 1)).sent == 2
    mail = smtp.messages[-1]
    assert mail["Subject"] == f"Hồ sơ {d.code}: thay đổi ngày hẹn trả kết quả — 17:00 06/11/2026"
    assert "Ngày hẹn trả kết quả trước đây: 17:00 05/11/2026" in mail.get_content()
    assert "sang 17:00 06/11/2026" in _check_sms(gateway.received[-1], d.code)


def test_an_applicant_without_email_gets_sms_only_and_other_changes_send_nothing(session, office, send, smtp, gateway):
    record = dossiers.receive_dossier(session, actor_id=office["mot_cua"], procedure_code="1.001612", channel="counter",
                                      applicant={**APPLICANT, "email": ""}, components=components_for("1.001612"),
                                      now=vn(2026, 11, 2, 9))
    assert [(n.kind, n.channel) for n in _notices(session)] == [("receipt", "sms")]
    d = session.get(Dossier, record.id)
    _forward(session, office, d, vn(2026, 11, 2, 10))
    assert len(_notices(session)) == 1
    send(vn(2026, 11, 2, 11))
    assert (len(smtp.messages), len(gateway.received)) == (0, 1)


def test_queueing_reads_nothing_when_no_notice_is_due_and_one_row_when_one_is(session, office, engine_):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    _forward(session, office, d, vn(2026, 11, 2, 10))
    dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                reason="Hồ sơ chưa hợp lệ", items=ITEMS, now=vn(2026, 11, 3, 9))
    session.rollback()
    row = session.connection().execute(select(Dossier.__table__).where(Dossier.id == d.id)).one()
    record = Record(row._mapping)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    at = vn(2026, 11, 3, 9)
    event.listen(engine_, "before_cursor_execute", count)
    try:
        record.status = "processing"
        notices.queue(session, record, ["status_changed"], "received", at)        # forwarded: no notice
        notices.queue(session, record, ["supplement_received"], "awaiting_supplement", at)
        record.status = "awaiting_supplement"
        notices.queue(session, record, ["overdue"], "awaiting_supplement", at)
        notices.queue(session, record, ["supplement_expired"], "awaiting_supplement", at)
        notices.queue(session, record, [], "awaiting_supplement", at)
        assert statements == []
        notices.queue(session, record, ["status_changed"], "processing", at)      # the request: one read, one write
        assert statements == ["SELECT", "INSERT"]
    finally:
        event.remove(engine_, "before_cursor_execute", count)
    session.rollback()


# --- retries: a gateway that is down loses nothing, nothing is sent twice ----------------------------
def test_a_gateway_that_is_down_loses_nothing_and_nothing_is_sent_twice(session, office, send, smtp, gateway):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    t0 = vn(2026, 11, 2, 9, 1)
    dead = f"http://127.0.0.1:{_free_port()}/sms/send"        # nobody listens: connection refused
    report = send(t0, sms_url=dead)
    assert (report.sent, report.retrying, report.failed) == (1, 1, 0)
    sms = [n for n in _notices(session) if n.channel == "sms"][0]
    assert (sms.state, sms.attempts, sms.next_attempt_at) == ("pending", 1, t0 + timedelta(minutes=1))
    assert sms.last_error and "unreachable" in sms.last_error

    assert send(t0 + timedelta(seconds=30)).sent == 0            # backing off: not due yet
    assert gateway.received == []
    gateway.script = [503]
    report = send(t0 + timedelta(minutes=1))                     # the gateway is up but failing
    assert (report.sent, report.retrying) == (0, 1)
    session.rollback()
    sms = session.get(Notice, sms.id)
    assert (sms.attempts, sms.next_attempt_at) == (2, t0 + timedelta(minutes=3))  # back-off doubled
    assert "503" in sms.last_error
    assert send(t0 + timedelta(minutes=2)).sent == 0
    assert send(t0 + timedelta(minutes=3)).sent == 1              # recovered
    assert send(t0 + timedelta(hours=1)).sent == 0                # and twice more: nothing sent again
    assert send(t0 + timedelta(days=1)).sent == 0
    assert gateway.answers == [503, 200]
    assert [s["id"] for s in gateway.received] == [sms.uid, sms.uid]   # the same id each time
    assert len(smtp.messages) == 1
    session.rollback()
    sms = session.get(Notice, sms.id)
    assert (sms.state, sms.attempts, sms.sent_at, sms.last_error) == ("sent", 3, t0 + timedelta(minutes=3), None)
    assert d.code in gateway.received[-1]["text"]


def test_refused_for_good_fails_at_once_and_retries_give_up_after_the_limit(session, office, send, smtp, gateway):
    receive(session, office, at=vn(2026, 11, 2, 9))
    smtp.refuse = {APPLICANT["email"]}
    gateway.script = [400]
    t0 = vn(2026, 11, 2, 9, 1)
    report = send(t0)
    assert (report.sent, report.retrying, report.failed) == (0, 0, 2)
    assert send(t0 + timedelta(days=1)).sent == 0
    assert gateway.answers == [400] and smtp.messages == []
    states = {n.channel: (n.state, n.attempts) for n in _notices(session)}
    assert states == {"email": ("failed", 1), "sms": ("failed", 1)}
    assert "550" in _notices(session)[0].last_error and "400" in _notices(session)[1].last_error

    # A gateway that keeps failing: tried max_attempts times at growing intervals, then given up.
    receive(session, office, at=vn(2026, 11, 2, 9))
    smtp.refuse = set()
    gateway.script = [503] * 10
    at = t0
    for expected_attempt in (1, 2, 3):
        report = send(at, max_attempts=3)
        assert report.sent == (1 if expected_attempt == 1 else 0)  # the e-mail goes the first time
        at = at + sender.backoff_delay(expected_attempt)
    assert report.failed == 1
    assert send(at + timedelta(days=1), max_attempts=3).sent == 0
    assert gateway.answers == [400, 503, 503, 503]
    last = _notices(session)[-1]
    assert (last.channel, last.state, last.attempts) == ("sms", "failed", 3)


# --- the same transaction as the change -------------------------------------------------------------
def test_a_change_that_is_rolled_back_queues_no_notice(session, office, monkeypatch):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    _forward(session, office, d, vn(2026, 11, 2, 10))
    before = len(_notices(session))
    # Use cases the engine refuses write nothing, notices included.
    with pytest.raises(LateSupplementRequest):
        dossiers.request_supplement(session, actor_id=office["chuyen_vien"], task_id=open_task(session, d).id,
                                    reason="x", items=ITEMS, now=vn(2026, 11, 6, 9))
    dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Cần xác minh",
                           new_due_at=vn(2026, 11, 10, 17), now=vn(2026, 11, 3, 9))
    with pytest.raises(DueDateAlreadyReset):
        dossiers.issue_apology(session, actor_id=office["lanh_dao"], dossier_code=d.code, reason="Lần nữa",
                               new_due_at=vn(2026, 11, 12, 17), now=vn(2026, 11, 4, 9))
    assert [n.kind for n in _notices(session)][before:] == ["apology", "apology"]

    # A change that fails after its notices were queued (here: saving the dossier row) leaves none.
    queued = []
    real_queue = notices.queue
    monkeypatch.setattr(notices, "queue", lambda *a: (real_queue(*a), queued.append(a[2]))[0])

    def broken_save(session_, dossier):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(aggregate, "save", broken_save)
    with pytest.raises(RuntimeError):
        dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="Rút",
                                  now=vn(2026, 11, 5, 9))
    assert queued == [["status_changed"]]           # the withdrawal notice was queued …
    assert [n.kind for n in _notices(session)][before:] == ["apology", "apology"]   # … and rolled back with it
    assert session.get(Dossier, d.id).status == "processing"


# --- two senders at once -----------------------------------------------------------------------------
def test_a_claimed_notice_is_not_taken_by_another_sender(session, office, factory, send, smtp, gateway):
    receive(session, office, at=vn(2026, 11, 2, 9))
    at = vn(2026, 11, 2, 9, 1)
    mine = sender._claim(factory, at, ["email", "sms"], 50, sender.MIN_LEASE)   # worker A holds them …
    assert len(mine) == 2
    assert send(at).sent == 0                                                  # … so B sends nothing
    assert send(at + sender.MIN_LEASE - timedelta(seconds=1)).sent == 0
    assert smtp.messages == [] and gateway.received == []
    # A sender that died holding them loses nothing: once its claim runs out they are sent.
    assert send(at + sender.MIN_LEASE).sent == 2


def test_concurrent_senders_send_each_notice_exactly_once(session, office, factory, smtp, gateway):
    for _ in range(8):
        receive(session, office, at=vn(2026, 11, 2, 9))
    smtp.delay = gateway.delay = 0.01
    workers = 4
    barrier = threading.Barrier(workers)
    reports, errors = [], []

    def worker():
        try:
            barrier.wait()
            reports.append(notify.send_pending(factory, smtp_url=smtp.url, sender=FROM, sms_url=gateway.url,
                                               public_url=PUBLIC, now=vn(2026, 11, 2, 9, 1), batch=1))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(1 for r in reports if r.sent) >= 2, "several senders took part"
    assert sum(r.sent for r in reports) == 16
    uids = [m["Message-ID"].strip("<>").split("@")[0] for m in smtp.messages] + [s["id"] for s in gateway.received]
    assert len(uids) == 16 and len(set(uids)) == 16
    assert set(uids) == {n.uid for n in _notices(session)}
    assert {n.state for n in _notices(session)} == {"sent"}


# --- the dossier page ---------------------------------------------------------------------------------
def _login(client, username):
    page = client.get("/dang-nhap").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/dang-nhap", data={"username": username, "password": "matkhau-123", "csrf_token": token})
    assert answer.status_code == 302


def test_the_dossier_page_shows_each_notice_and_its_state(app, session, office, send, smtp, gateway):
    d = receive(session, office, at=vn(2026, 11, 2, 9))
    gateway.script = [503]
    send(vn(2026, 11, 2, 9, 1))                                   # e-mail sent, SMS waiting for its retry
    _forward(session, office, d, vn(2026, 11, 2, 10))
    dossiers.withdraw_dossier(session, actor_id=office["mot_cua"], dossier_code=d.code, reason="Rút",
                              now=vn(2026, 11, 2, 11))             # queued, not sent yet
    app.config["SESSION_COOKIE_SECURE"] = False
    client = app.test_client()
    _login(client, "mot_cua1")
    page = client.get(f"/ho-so/{d.code}").get_data(as_text=True)
    section = page[page.index('id="thong-bao"'):]
    rows = re.findall(r'<tr data-notice="([a-z_]+-[a-z]+)" data-state="([a-z]+)">(.*?)</tr>', section, re.S)
    assert [(r[0], r[1]) for r in rows] == [("receipt-email", "sent"), ("receipt-sms", "pending"),
                                            ("withdrawal-email", "pending"), ("withdrawal-sms", "pending")]
    assert "Đã gửi" in rows[0][2] and "09:01 02/11/2026" in rows[0][2] and APPLICANT["email"] in rows[0][2]
    assert "Chờ gửi lại" in rows[1][2] and "09:02 02/11/2026" in rows[1][2] and "503" in rows[1][2]
    assert "Chờ gửi" in rows[2][2] and "Dừng giải quyết" in rows[2][2] and "Tin nhắn SMS" in rows[3][2]

    gateway.script = [400]
    send(vn(2026, 11, 2, 12))
    page = client.get(f"/ho-so/{d.code}").get_data(as_text=True)
    states = re.findall(r'data-notice="([a-z_]+-[a-z]+)" data-state="([a-z]+)"', page)
    assert states == [("receipt-email", "sent"), ("receipt-sms", "failed"), ("withdrawal-email", "sent"),
                      ("withdrawal-sms", "sent")]
    assert "Gửi không thành công" in page


# --- the texts ---------------------------------------------------------------------------------------
def test_every_sms_fits_160_characters_with_the_code_and_the_link():
    long_unit = "Trung tâm Phục vụ hành chính công tỉnh Phú Thọ — Chi nhánh khu vực Tân Lạc, Mường Bi và Lạc Sơn"
    code = "H40.1-261102-0001"
    payloads = {
        "receipt": {"due_at": "2026-11-05T17:00:00+07:00", "received_at": "2026-11-02T09:00:00+07:00"},
        "supplement_request": {"items": ITEMS * 4, "respond_by": "2026-12-03T17:00:00+07:00", "reason": "x"},
        "apology": {"reason": "Cần lấy ý kiến của Sở Xây dựng và Sở Tài chính về hồ sơ đất đai " * 3,
                    "new_due_at": "2026-11-16T17:00:00+07:00", "previous_due_at": "2026-11-05T17:00:00+07:00"},
        "new_appointment": {"new_due_at": "2026-11-06T17:00:00+07:00", "previous_due_at": "2026-11-05T17:00:00+07:00"},
        "refusal": {"reason": "Ngành nghề kinh doanh thuộc danh mục cấm đầu tư kinh doanh theo Luật Đầu tư " * 3},
        "result_ready": {}, "withdrawal": {},
    }
    assert set(payloads) == set(messages.KINDS)
    for base in (PUBLIC, "https://dichvucong.phutho.gov.vn/cong-dan/motcua"):
        for unit in ("UBND xã Tân Lạc", long_unit):
            for kind, payload in payloads.items():
                text = messages.sms(kind, messages.Facts(code, "Thủ tục", unit, payload), base)
                assert len(text) <= 160, (kind, len(text), text)
                assert code in text and text.endswith(f" Tra cuu: {base}/tra-cuu?ma={code}")
                assert text.isascii() and not set(text) & set("[]{}\\^~|`")
    refusal = messages.sms("refusal", messages.Facts(code, "x", "UBND xã Tân Lạc", payloads["refusal"]), PUBLIC)
    assert "bi tu choi giai quyet. Ly do: Nganh nghe kinh doanh thuoc danh... Tra cuu" in refusal  # cut, not dropped
    assert messages.plain("Đã tiếp nhận hồ sơ – Ông Nguyễn Văn Đức") == "Da tiep nhan ho so - Ong Nguyen Van Duc"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOTCUA_SMTP_URL", "smtps://u%40x:p@mail.example.vn")
    monkeypatch.setenv("MOTCUA_MAIL_FROM", FROM)
    monkeypatch.setenv("MOTCUA_SMS_URL", "https://sms.example.vn/send")
    monkeypatch.setenv("MOTCUA_PUBLIC_URL", PUBLIC)
    s = notify.Settings.from_env()
    assert s.kwargs() == {"smtp_url": "smtps://u%40x:p@mail.example.vn", "sender": FROM,
                          "sms_url": "https://sms.example.vn/send", "public_url": PUBLIC}
    mailer = notify.SmtpMailer(s.smtp_url, s.sender)
    assert (mailer.host, mailer.port, mailer.username, mailer.password) == ("mail.example.vn", 465, "u@x", "p")
    with pytest.raises(ValueError):
        notify.SmtpMailer("http://mail.example.vn", FROM)
    with pytest.raises(ValueError):
        notify.SmtpMailer("smtp://mail.example.vn", "")


def test_nothing_is_sent_on_a_channel_that_is_not_configured(session, office, factory, smtp):
    receive(session, office, at=vn(2026, 11, 2, 9))
    # Without `now`: the real clock (later than the change), read for each batch.
    report = notify.send_pending(factory, smtp_url=smtp.url, sender=FROM, sms_url=None, public_url=PUBLIC)
    assert report.sent == 1 and len(smtp.messages) == 1
    assert {n.channel: n.state for n in _notices(session)} == {"email": "sent", "sms": "pending"}
    assert session.scalar(select(func.count()).select_from(Notice).where(Notice.attempts > 0)) == 1
    sent = [n for n in _notices(session) if n.state == "sent"][0]
    assert abs(sent.sent_at - clock.now()) < timedelta(minutes=1)
