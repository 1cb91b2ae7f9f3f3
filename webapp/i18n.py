"""Vietnamese labels and messages of the staff and citizen screens (UX.md glossary)."""
from __future__ import annotations

import re
from datetime import datetime

from engine.clock import VN_TZ, now
from engine.dossiers import consultations, results
from engine.reporting import deadlines

STATUS = {
    "received": "Được tiếp nhận", "processing": "Đang xử lý", "awaiting_supplement": "Yêu cầu bổ sung giấy tờ",
    "result_ready": "Đã xử lý xong", "returned": "Đã trả kết quả", "refused": "Từ chối xử lý", "withdrawn": "Dừng xử lý",
}
ROLE = {
    "mot_cua": "Một cửa", "chuyen_vien": "Chuyên viên", "lanh_dao_phong": "Lãnh đạo phòng",
    "lanh_dao": "Lãnh đạo cơ quan", "van_thu": "Văn thư", "admin": "Quản trị", "designer": "Thiết kế quy trình",
    "manager": "Lãnh đạo theo dõi",
}
DECISION = {
    "approve": "Chuyển xử lý", "return": "Trả lại bước trước", "request_supplement": "Yêu cầu bổ sung",
    "refuse": "Từ chối",
}
DECISION_DONE = {"approve": "Chuyển xử lý", "return": "Trả lại", "request_supplement": "Yêu cầu bổ sung",
                 "refuse": "Từ chối"}
COUNTER_KIND = {"guidance": "Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ (mẫu 02)",
                "refusal": "Phiếu từ chối tiếp nhận hồ sơ (mẫu 03)"}
CHANNEL = {"counter": "Trực tiếp", "online": "Trực tuyến", "post": "Qua bưu chính công ích"}
RESULT = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn", None: "Đang xử lý"}
RETURNED_VIA = {"counter": "Trực tiếp", "post": "Bưu chính", "online": "Trực tuyến"}
RATING = {"very_satisfied": "Rất hài lòng", "satisfied": "Hài lòng", "not_satisfied": "Không hài lòng"}
LEVEL = {"trung_uong": "Trung ương", "tinh": "Cấp tỉnh", "huyen": "Cấp huyện", "xa": "Cấp xã"}

ERROR = {
    "not_allowed": "Bạn không có quyền thực hiện thao tác này.",
    "not_found": "Không tìm thấy hồ sơ hoặc công việc.",
    "task_not_ready": "Bước này đã được xử lý hoặc không còn mở; danh sách đã được cập nhật.",
    "supplement_already_requested": "Hồ sơ đã được yêu cầu bổ sung một lần. Pháp luật chỉ cho phép yêu cầu bổ sung, "
                                    "hoàn thiện hồ sơ một lần (Nghị định 118/2025/NĐ-CP, Điều 11).",
    "supplement_not_requested": "Hồ sơ không ở trạng thái chờ công dân bổ sung.",
    "due_date_already_reset": "Ngày hẹn trả đã được gia hạn một lần bằng văn bản xin lỗi; không thể gia hạn thêm.",
    "dossier_closed": "Hồ sơ đã kết thúc hoặc chưa đến bước này; không thể thực hiện thao tác.",
    "missing_components": "Thiếu thành phần hồ sơ bắt buộc.",
    "invalid_input": "Thông tin chưa hợp lệ; vui lòng kiểm tra các ô được đánh dấu.",
    "procedure_not_accepting": "Thủ tục này hiện không tiếp nhận hồ sơ (căn cứ pháp lý hết hiệu lực hoặc chưa có "
                               "quy trình có hiệu lực).",
    "bpmn_invalid": "Tệp quy trình (BPMN) không hợp lệ: xem danh sách lỗi bên dưới.",
    "version_immutable": "Phiên bản đã công bố không được sửa: hãy tạo phiên bản mới.",
    "unauthenticated": "Cần đăng nhập (hoặc mã truy cập đã hết hạn) để thực hiện thao tác này.",
    "bad_credentials": "Tên đăng nhập hoặc mật khẩu không đúng.",
    "bad_request": "Yêu cầu không hợp lệ.",
    "nul_character": "Nội dung gửi lên chứa ký tự không hợp lệ (ký tự NUL).",
    "invalid_unicode": "Nội dung gửi lên chứa ký tự không hợp lệ (mã Unicode hỏng).",
    "json_too_deep": "Dữ liệu gửi lên lồng nhau quá sâu.",
    "number_out_of_range": "Số gửi lên vượt quá giới hạn cho phép.",
    "step_limit_exceeded": "Bước này vượt giới hạn an toàn của hệ thống (biểu thức hoặc đoạn mã trong quy trình chạy "
                           "quá lâu, tạo dữ liệu quá lớn, hoặc số ngày làm việc ngoài khoảng cho phép); hồ sơ chưa bị "
                           "thay đổi. Vui lòng báo người thiết kế quy trình hoặc quản trị hệ thống.",
    "domain_error": "Không thực hiện được thao tác này với hồ sơ ở trạng thái hiện tại.",
    "workflow_error": "Quy trình xử lý gặp lỗi; vui lòng báo quản trị hệ thống.",
    "already_rated": "Hồ sơ này đã được đánh giá.",
    "idempotency_key_reused": "Yêu cầu trùng với một yêu cầu trước nhưng nội dung khác.",
    "conflict": "Hồ sơ vừa được người khác cập nhật; vui lòng thử lại.",
    "supplement_request_late": "Đã quá thời hạn yêu cầu bổ sung (03 ngày làm việc kể từ ngày tiếp nhận). Yêu cầu vẫn "
                               "gửi được nhưng ghi nhận là yêu cầu muộn, thời gian giải quyết không được tính lại: "
                               "đánh dấu ô xác nhận rồi gửi lại.",
    "consultation_pending": "Bước này đang chờ ý kiến của đơn vị được hỏi; chỉ chuyển tiếp được khi các đơn vị đã "
                            "trả lời hoặc đã hết hạn xin ý kiến.",
    "consultation_answered": "Yêu cầu xin ý kiến này đã được trả lời.",
    "task_taken": "Bước này đã được giao cho người khác; chỉ Lãnh đạo đơn vị mới phân công lại được.",
    "intake_not_forwardable": "Quy trình của thủ tục này không cho phép tiếp nhận và chuyển xử lý cùng lúc (bước đầu "
                              "tiên không phải bước tiếp nhận của Bộ phận một cửa). Chưa tiếp nhận hồ sơ: hãy chọn "
                              "\u201cTiếp nhận và in giấy hẹn\u201d rồi chuyển xử lý trong hộp thư.",
    "counter_guidance_repeated": "Công dân này đã được hướng dẫn bổ sung hồ sơ của thủ tục này tại quầy. Pháp luật chỉ "
                                 "cho phép hướng dẫn một lần, đầy đủ (Nghị định 118/2025/NĐ-CP, Điều 11).",
    "result_required": "Bước này phải ghi nhận kết quả giải quyết khi chuyển tiếp: kiểm tra các ô được đánh dấu.",
    "district_level_abolished": "Cấp huyện đã kết thúc hoạt động từ ngày 01/07/2025: chuyển thủ tục sang cấp xã hoặc "
                                "cấp tỉnh trước khi công bố phiên bản có hiệu lực sau ngày này.",
}
FIELD = {
    "reason": "Vui lòng nhập lý do.",
    "items": "Chọn đầy đủ các giấy tờ cần bổ sung và ghi rõ cần sửa gì (liệt kê một lần).",
    "decision": "Hãy chọn một thao tác hợp lệ.",
    "new_due_at": "Ngày hẹn mới phải là ngày làm việc và sau ngày hẹn hiện tại.",
    "applicant.name": "Nhập họ tên chủ hồ sơ.",
    "applicant.id_number": "Số định danh cá nhân (CCCD) hoặc mã số thuế gồm 6–20 chữ số/chữ cái.",
    "channel": "Chọn hình thức nộp.",
    "unit_code": "Chọn đơn vị tiếp nhận.",
    "rating": "Hãy chọn mức độ hài lòng.",
    "signed_by_id": "Chọn Lãnh đạo cơ quan đã ký văn bản xin lỗi.",
    "requested_at": "Ngày đề nghị phải từ ngày tiếp nhận đến hôm nay.",
    "via": "Chọn hình thức trả kết quả.",
    "units": "Chọn ít nhất một đơn vị khác (không phải đơn vị đang xử lý bước này).",
    "content": "Nhập nội dung cần xin ý kiến.",
    "days": "Thời hạn trả lời là số ngày làm việc, từ 1 đến 30.",
    "answer": "Nhập ý kiến của đơn vị.",
}


ITEM_FIELD = {
    "problem": "Ghi rõ giấy tờ này thiếu hoặc sai gì.",
    "component": "Giấy tờ không có trong thành phần hồ sơ của thủ tục.",
    "name": "Ghi tên giấy tờ ngoài danh mục.",
    "reason": "Giấy tờ ngoài danh mục thủ tục phải ghi rõ lý do (căn cứ) yêu cầu.",
}


# The result document a step records (engine/dossiers/results.py): the engine's reason → the sentence shown.
RESULT_FIELD = {
    "result.file": (("attach", "Đính kèm văn bản kết quả đã ký (tệp PDF)."),
                    ("empty", "Tệp văn bản kết quả rỗng: hãy chọn lại tệp."),
                    ("larger", "Tệp văn bản kết quả lớn hơn 20 MB."),
                    ("incomplete", "Tệp PDF không đầy đủ (có thể bị cắt khi tải lên): hãy tải lên lại."),
                    ("not a PDF", "Văn bản kết quả phải là tệp PDF (bản đã ký); tệp đã chọn không phải PDF."),
                    ("file name", "Tên tệp không hợp lệ.")),
    "result.number": (("required", "Nhập số văn bản (số quyết định, số giấy phép…)."),
                      ("at most", "Số văn bản tối đa 64 ký tự, không chứa ký tự điều khiển.")),
    "result.signed_on": (("required", "Nhập ngày ký văn bản."),
                         ("future", "Ngày ký không được sau ngày hôm nay."),
                         ("before", "Ngày ký không được trước ngày tiếp nhận hồ sơ."),
                         ("date", "Ngày ký không đúng dạng ngày.")),
}


def field_message(key: str, fallback: str) -> str:
    if key in FIELD:
        return FIELD[key]
    if key.startswith("result."):
        if "does not record" in fallback or "only when" in fallback:
            return "Bước này (hoặc thao tác này) không ghi nhận thông tin kết quả này."
        return next((text for cue, text in RESULT_FIELD.get(key, ()) if cue in fallback),
                    "Thông tin kết quả giải quyết chưa hợp lệ.")
    if key.startswith("items."):
        return ITEM_FIELD.get(key.rsplit(".", 1)[-1], "Chọn thành phần hồ sơ cần bổ sung và ghi rõ cần sửa gì.")
    if key.startswith("components."):
        if "missing" in fallback:
            return "Thiếu tệp quét của thành phần bắt buộc này."
        if "not a component" in fallback:
            return "Thành phần này không có trong danh mục của thủ tục."
        return "Tệp không hợp lệ: chỉ nhận PDF, JPEG, PNG hoặc DOCX, tối đa 20 MB, không rỗng."
    if key == "components":
        return "Hãy đính kèm ít nhất một tệp giấy tờ bổ sung."
    return "Giá trị chưa hợp lệ, vui lòng kiểm tra lại."   # never the engine's English text


def dt(value: datetime | None) -> str:
    return value.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y") if value else "—"


def d(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(VN_TZ)
    return value.strftime("%d/%m/%Y")


def remaining(due: datetime | None, reference: datetime | None = None, calendar=None) -> tuple[str, str]:
    """Deadline in words and its tone, in working days (hours under one day) on the working calendar:
    ('Còn 2 ngày làm việc', 'ok') · ('Còn 3 giờ làm việc', 'soon') · ('Quá hạn 4 ngày làm việc', 'late')."""
    if due is None:
        return "", ""
    if calendar is None:
        from engine.catalog.calendar import working_calendar

        from . import db
        calendar = working_calendar(db.session())
    sign, days, hours = deadlines.working_time_left(calendar, due, reference or now())
    if sign < 0:
        if days:
            return f"Quá hạn {days} ngày làm việc", "late"
        return (f"Quá hạn {max(1, round(hours))} giờ làm việc" if hours >= 0.5 else "Vừa quá hạn"), "late"
    if days >= 2:
        return f"Còn {days} ngày làm việc", "ok"
    if days == 1:
        return "Còn 1 ngày làm việc", "soon"
    return (f"Còn {round(hours)} giờ làm việc" if hours >= 1 else "Còn dưới 1 giờ làm việc"), "soon"


# The step-duration grammar the engine accepts (engine/workflow/workcal.py): PnD, PTnH, PTnM, PnDTnH…
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?)?$")


def number(value: float) -> str:
    """4 → '4', 1.5 → '1,5' (Vietnamese decimal comma), at most three decimals."""
    return f"{value:.3f}".rstrip("0").rstrip(".").replace(".", ",")


def duration(text: str | None) -> str:
    """A step's ISO 8601 working-time duration in words, the one form people read:
    'PT4H' → '4 giờ làm việc', 'P2D' → '2 ngày làm việc', 'P1DT4H' → '1 ngày 4 giờ làm việc',
    'PT30M' → '30 phút làm việc'. The designer's panel (static/modeler.js) says the same."""
    if not text or not str(text).strip():
        return "Chưa có thời hạn"
    iso = str(text).strip().upper()
    m = _ISO_DURATION.match(iso)
    if not m or iso in ("P", "PT") or iso.endswith("T"):
        return f"«{text}» (thời hạn không đúng dạng)"
    parts = [f"{number(float(m.group(group)))} {unit}" for group, unit in
             (("days", "ngày"), ("hours", "giờ"), ("minutes", "phút")) if m.group(group) and float(m.group(group))]
    return " ".join(parts or ["0 giờ"]) + " làm việc"


def fixed(value: float | int | None, digits: int = 1) -> str:
    """A number with `digits` decimals as Vietnamese writes it: comma for decimals, dot between thousands (1.234,5)."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}" if digits else f"{value:,.0f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def percent(rate: float | None, empty: str = "Không có") -> str:
    """A rate 0..1 as a Vietnamese percentage: 100,0 %."""
    return empty if rate is None else f"{fixed(rate * 100, 1)} %"


def component_label(code: str, components=()) -> str:
    """What a person reads for a file's component: its name in the procedure, never its code."""
    for c in components or ():
        if c.get("code") == code:
            return c.get("name") or "Thành phần hồ sơ"
    if code == results.FILE_CODE:
        return "Văn bản kết quả"
    if code.startswith(consultations.FILE_PREFIX):
        return "Ý kiến đơn vị phối hợp"
    return "Tài liệu khác"
