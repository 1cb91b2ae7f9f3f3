"""`motcua demo`: a fresh SQLite office, the shipped procedures and a few dossiers run through
their steps (one supplemented, one overdue with an apology, one refused); prints control slips."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from engine import catalog, clock, dossiers
from engine.access import directory
from engine.clock import VN_TZ
from engine.dossiers import audit, results, timers
from engine.errors import DomainError
from engine.reporting import slip as form06
from engine.store import schema
from engine.store.db import make_engine, make_sessionmaker
from engine.store.models import Dossier, HumanTask, ProcedureVersion

ROOT = Path(__file__).resolve().parent.parent  # the repository
RESULT_VI = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn", None: "Đang xử lý"}
STATUS_VI = {
    "received": "Được tiếp nhận", "processing": "Đang xử lý", "awaiting_supplement": "Yêu cầu bổ sung giấy tờ",
    "result_ready": "Đã xử lý xong", "returned": "Đã trả kết quả", "refused": "Từ chối xử lý", "withdrawn": "Dừng xử lý",
}
USERS = [
    ("motcua", "Trần Thị Mai", "mot_cua"), ("chuyenvien", "Lê Văn Hùng", "chuyen_vien"),
    ("truongphong", "Phạm Minh Đức", "lanh_dao_phong"), ("chutich", "Hoàng Văn Nam", "lanh_dao"),
    ("vanthu", "Đinh Thị Lan", "van_thu"), ("quantri", "Quản trị viên", "admin"),
    ("thietke", "Người thiết kế quy trình", "designer"), ("theodoi", "Lãnh đạo theo dõi", "manager"),
]
DEMO_PASSWORD = "motcua-demo"
# Two-tier government: the department that decides the sample inter-agency procedure, a unit it
# consults, and a second commune whose staff must see none of it.
LIEN_THONG_USERS = [
    ("sxd.chuyenvien", "Chuyên viên Sở Xây dựng", "SXD", "chuyen_vien"),
    ("sxd.lanhdao", "Lãnh đạo Sở Xây dựng", "SXD", "lanh_dao"),
    ("snnmt.chuyenvien", "Chuyên viên Sở Nông nghiệp và Môi trường", "SNNMT", "chuyen_vien"),
    ("muongbi.motcua", "Một cửa xã Mường Bi", "H40.2", "mot_cua"),
]


def _fmt(value: datetime | None) -> str:
    return value.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y") if value else "—"


def _print_slip(session, record) -> None:
    session.rollback()  # see the use cases' commits
    dossier = session.get(Dossier, record.id)
    flags = (" · Quá hạn" if dossier.overdue else "") + (" · Đã xin lỗi" if dossier.apologized else "")
    print(f"\n{dossier.code}  {dossier.procedure.name}")
    print(f"  Trạng thái: {STATUS_VI[dossier.status]}{flags}")
    print(f"  Tiếp nhận: {_fmt(dossier.received_at)}   Hẹn trả: {_fmt(dossier.due_at)}")
    print("  Phiếu kiểm soát quá trình giải quyết hồ sơ (mẫu 06):")
    print(f"  {'Bước':<40} {'Bàn giao':<17} {'Hạn':<17} {'Xong':<17} {'Người nhận':<16} Kết quả")
    for row in form06.control_slip(session, dossier.id):
        print(f"  {row.step_name[:40]:<40} {_fmt(row.handed_at):<17} {_fmt(row.due_at):<17} "
              f"{_fmt(row.finished_at):<17} {(row.receiver or '')[:16]:<16} {RESULT_VI[row.result]}"
              + (f" ({row.decision})" if row.decision and row.decision != "approve" else ""))
    print(f"  Nhật ký kiểm toán: {'nguyên vẹn' if audit.verify_chain(session, dossier.id) is None else 'BỊ SỬA ĐỔI'}")


def run(database: str | None = None) -> None:
    """Build the demo database from scratch (an existing demo file is replaced)."""
    path = Path(database or "var/demo.sqlite3")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path.resolve()}"
    schema.upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    with factory() as s:
        directory.add_unit(s, "H40", "UBND tỉnh Phú Thọ")
        directory.add_unit(s, "H40.1", "UBND xã Tân Lạc", parent_code="H40")
        directory.add_unit(s, "H40.2", "UBND xã Mường Bi", parent_code="H40")
        directory.add_unit(s, "SXD", "Sở Xây dựng tỉnh Phú Thọ", parent_code="H40")
        directory.add_unit(s, "SNNMT", "Sở Nông nghiệp và Môi trường tỉnh Phú Thọ", parent_code="H40")
        ids = {role: directory.add_user(s, username, DEMO_PASSWORD, [("H40.1", role)], name).id
               for username, name, role in USERS}
        for username, name, unit, role in LIEN_THONG_USERS:
            ids[f"{role}@{unit}"] = directory.add_user(s, username, DEMO_PASSWORD, [(unit, role)], name).id
        for line in catalog.load_processes(s, ROOT / "processes", actor_id=None):
            print(line)
        for line in catalog.load_processes(s, Path(__file__).resolve().parent / "demo_processes", actor_id=None):
            print(line)
        s.commit()

    def pdf(tag: str) -> bytes:
        return f"%PDF-1.4\n% bản quét {tag}\n%%EOF\n".encode()

    def comps(code: str) -> list[dict]:
        with factory() as s:
            proc = catalog.get_procedure(s, code)
            return [{"code": c["code"], "filename": f"{c['code'].lower()}.pdf", "content": pdf(c["code"]),
                     "content_type": "application/pdf"} for c in proc.components if c["required"]]

    def receive(code: str, at: datetime, name: str, id_number: str):
        with factory() as s:
            return dossiers.receive_dossier(
                s, actor_id=ids["mot_cua"], procedure_code=code, channel="counter",
                applicant={"name": name, "id_number": id_number, "phone": "0912000111", "address": "xã Tân Lạc"},
                components=comps(code), now=at)

    def step(dossier, at: datetime, decision: str = "approve", **extra):
        with factory() as s:
            task = s.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                     HumanTask.completed_at.is_(None))).one()
            data = {"decision": decision, **{k: v for k, v in extra.items() if k != "note"}}
            dossiers.complete_task(s, actor_id=ids[task.role], task_id=task.id, data=data,
                                   note=extra.get("note", ""), result=_result(s, task, decision, at), now=at)

    today = clock.local(clock.now()).date()
    start_day = today - timedelta(days=today.weekday() + 14)  # the Monday two weeks ago
    monday = datetime(start_day.year, start_day.month, start_day.day, 8, 0, tzinfo=VN_TZ)
    h = timedelta(hours=1)

    # 1. Business-household registration, on time, result handed over.
    d1 = receive("1.001612", monday, "Nguyễn Văn An", "017090001234")
    for i in range(5):
        step(d1, monday + (i + 1) * h)
    with factory() as s:
        dossiers.return_result(s, actor_id=ids["mot_cua"], dossier_code=d1.code, now=monday + 7 * h)

    # 2. Construction permit: supplementation requested once; a second request is refused.
    d2 = receive("1.009994", monday + h, "Bùi Thị Hoa", "017185004321")
    step(d2, monday + 2 * h)
    step(d2, monday + 26 * h, "request_supplement", note="Bản vẽ thiếu mặt cắt",
         items=[{"component": "BANVE", "problem": "Bổ sung bản vẽ mặt cắt công trình"}])
    with factory() as s:
        dossiers.deliver_supplement(s, actor_id=ids["mot_cua"], dossier_code=d2.code,
                                    components=[{"code": "BANVE", "filename": "banve-bosung.pdf",
                                                 "content": pdf("BANVE-2")}],
                                    note="Công dân nộp bổ sung", now=monday + timedelta(days=3, hours=1))
    try:
        step(d2, monday + timedelta(days=4), "request_supplement", note="Thiếu giấy tờ khác",
             items=[{"component": "DONDENGHI", "problem": "Giấy tờ khác"}])
    except DomainError as exc:
        print(f"\n[{d2.code}] yêu cầu bổ sung lần hai bị từ chối: {exc.message}")
    step(d2, monday + timedelta(days=4, hours=2))

    # 3. Birth registration received late in the day, left overdue, apology issued after the fact.
    d3 = receive("1.001193", monday + 6 * h, "Hà Văn Bình", "017300009876")
    with clock.frozen(monday + timedelta(days=2)):
        report = timers.run_once(factory)
    print(f"\nquét hạn: {report.dossiers_overdue} hồ sơ quá hạn, {report.steps_late} bước chậm tiến độ")
    with factory() as s:
        dossiers.issue_apology(s, actor_id=ids["lanh_dao"], dossier_code=d3.code,
                               reason="Cán bộ hộ tịch đi công tác", new_due_at=monday + timedelta(days=3, hours=9),
                               now=monday + timedelta(days=2, hours=1))

    # 4. Business-household registration refused after appraisal.
    d4 = receive("1.001612", monday + 2 * h, "Vũ Thị Lan", "017095007777")
    step(d4, monday + 3 * h)
    step(d4, monday + 4 * h, "refuse", note="Ngành nghề kinh doanh thuộc danh mục cấm")
    step(d4, monday + 5 * h)  # the leader signs form 03

    # 5. Liên thông: received at the commune, appraised by the Department of Construction, which asks
    #    the Department of Agriculture and Environment for its opinion; one more waits at the department.
    d5 = receive("1.999901", monday + timedelta(days=1, hours=1), "Lương Văn Tài", "017088002468")
    step(d5, monday + timedelta(days=1, hours=2))
    with factory() as s:
        task = s.scalars(select(HumanTask).where(HumanTask.dossier_id == d5.id, HumanTask.completed_at.is_(None))).one()
        asked, = dossiers.ask_opinions(s, actor_id=ids["chuyen_vien@SXD"], task_id=task.id, unit_codes=["SNNMT"],
                                       content="Xin ý kiến về hiện trạng sử dụng đất của thửa đất xin phép", days=3,
                                       now=monday + timedelta(days=1, hours=4))
    with factory() as s:
        dossiers.answer_opinion(s, actor_id=ids["chuyen_vien@SNNMT"], consultation_id=asked.id,
                                answer="Thửa đất là đất ở, phù hợp quy hoạch", now=monday + timedelta(days=2, hours=3))
    step_as(factory, d5, ids["chuyen_vien@SXD"], monday + timedelta(days=2, hours=5))
    step_as(factory, d5, ids["lanh_dao@SXD"], monday + timedelta(days=3, hours=2))
    step(d5, monday + timedelta(days=3, hours=4))
    d6 = receive("1.999901", monday + timedelta(days=2, hours=1), "Trần Thị Mai", "017091003579")
    step(d6, monday + timedelta(days=2, hours=2))

    _living_office(factory, ids, receive, step, comps, monday)

    with factory() as s:
        for d in (d1, d2, d3, d4, d5):
            _print_slip(s, dossiers.get_dossier(s, d.code))
    print(f"\nCơ sở dữ liệu demo: {path}  (mật khẩu mọi tài khoản: {DEMO_PASSWORD})")


def step_as(factory, dossier, actor_id: int, at: datetime, decision: str = "approve") -> None:
    """Complete the dossier's open step as `actor_id` (a user of another unit, for liên thông)."""
    with factory() as s:
        task = s.scalars(select(HumanTask).where(HumanTask.dossier_id == dossier.id,
                                                 HumanTask.completed_at.is_(None))).one()
        dossiers.complete_task(s, actor_id=actor_id, task_id=task.id, data={"decision": decision},
                               result=_result(s, task, decision, at), now=at)


def _result(session, task, decision: str, at: datetime) -> dict | None:
    """The result document a step records when it approves, where its diagram says so (the leader's
    signing step: the signed PDF; the clerk's register step: its number and signing date)."""
    if decision != "approve":
        return None
    dossier = session.get(Dossier, task.dossier_id)
    needs = results.required(session.get(ProcedureVersion, dossier.version_id).meta, task.spec_name)
    out: dict = {}
    if "file" in needs:
        out["file"] = {"filename": f"ket-qua-{dossier.code}.pdf",
                       "content": f"%PDF-1.4\n% kết quả đã ký {dossier.code}\n%%EOF\n".encode()}
    if "number" in needs:
        out.update(number=f"{dossier.id:03d}/QĐ-UBND", signed_on=clock.local(at).date())
    return out or None


APPLICANTS = ["Nguyễn Thị Hằng", "Trần Văn Dũng", "Lê Minh Tuấn", "Phạm Thu Trang", "Hoàng Đức Thắng", "Vũ Thị Ngọc",
              "Đặng Quốc Bảo", "Bùi Thanh Hương", "Đỗ Văn Khoa", "Hồ Thị Mỹ", "Ngô Gia Huy", "Dương Thị Lan Anh",
              "Lý Văn Phúc", "Mai Thị Thảo", "Trịnh Công Sơn", "Phan Thị Thu", "Võ Minh Khang", "Đinh Văn Lộc"]


# The application form of each shipped procedure (what a missing signature is asked on).
FORM_COMPONENT = {"1.001612": "GIAYDENGHI", "1.009994": "DONDENGHI", "1.001193": "TOKHAI"}


def _living_office(factory, ids, receive, step, comps, monday) -> None:
    """A few dozen more dossiers over the last two weeks, left at every stage, so the screens look
    like a working office: fresh, in progress, waiting for the citizen, overdue, finished, returned."""
    import random

    rng = random.Random(766)
    codes = ["1.001612", "1.009994", "1.001193"]
    now = clock.now()
    made = 0
    for day in range(12):
        at = monday + timedelta(days=day, hours=1)
        if at.weekday() >= 5 or at > now:
            continue
        for k in range(3):
            when = at + timedelta(minutes=47 * k)
            if when > now:
                break
            code = codes[(day + k) % 3]
            d = receive(code, when, APPLICANTS[(day * 3 + k) % len(APPLICANTS)], f"0171{day:02d}{k:02d}{rng.randint(1000, 9999)}")
            made += 1
            progress = rng.choice(["new", "forwarded", "appraised", "supplement", "done", "returned", "late"])
            t = when + timedelta(minutes=20)
            if progress == "new":
                continue
            step(d, t)
            if progress == "forwarded":
                continue
            if progress == "supplement":
                step(d, t + timedelta(hours=2), "request_supplement", note="Hồ sơ chưa đủ chữ ký",
                     items=[{"component": FORM_COMPONENT[code], "problem": "Bổ sung chữ ký của người đề nghị trên đơn"}])
                continue
            if progress == "late":
                continue  # left at the specialist: the sweep below marks it overdue if its time has passed
            for _ in range(4):
                try:
                    step(d, t + timedelta(hours=2))
                except Exception:  # noqa: BLE001 - a shorter process finished earlier
                    break
                t += timedelta(hours=2)
            if progress == "returned":
                with factory() as s:
                    try:
                        dossiers.return_result(s, actor_id=ids["mot_cua"], dossier_code=d.code, now=t + h_one())
                    except DomainError:
                        pass
    with clock.frozen(now):
        timers.run_once(factory)
    print(f"\n{made} hồ sơ khác đã được tạo ở các bước khác nhau")


def h_one() -> timedelta:
    return timedelta(hours=1)
