"""What a notice says: the e-mail (subject and body, Vietnamese with full diacritics) and the SMS text
(at most 160 characters, diacritics removed) for each kind of notice, from the facts stored with it.

SMS text is folded to plain ASCII ("Đã tiếp nhận" → "Da tiep nhan"), as Vietnamese carriers' brandname
SMS usually is: one GSM-7 message holds 160 characters, while text with diacritics is sent as UCS-2
and one message holds only 70. Every SMS carries the dossier code and the look-up link; what does not
fit is left out in this order: the sending unit's name, the reason (shortened, then dropped).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from engine import clock

# The kinds of notice (Notice.kind).
RECEIPT = "receipt"                        # dossier received, with the appointment (form 01)
SUPPLEMENT_REQUEST = "supplement_request"  # form 02: the list of documents to supplement
APOLOGY = "apology"                        # form 04: the apology with the new appointment (L12)
NEW_APPOINTMENT = "new_appointment"        # a new appointment: the calendar changed, or the supplement restarted the time
REFUSAL = "refusal"                        # form 03, with the reason
RESULT_READY = "result_ready"              # the result waits at the desk (L13)
WITHDRAWAL = "withdrawal"                  # form 05: processing stopped at the applicant's request (L14)
KINDS = (RECEIPT, SUPPLEMENT_REQUEST, APOLOGY, NEW_APPOINTMENT, REFUSAL, RESULT_READY, WITHDRAWAL)

SMS_LIMIT = 160


@dataclass(frozen=True)
class Facts:
    """What a message states: the dossier's identity (read when it is sent) and the notice's payload
    (the facts as they were when the change happened)."""

    code: str
    procedure: str
    unit: str
    payload: dict


def lookup_link(public_url: str, code: str) -> str:
    """The citizen look-up page with the code filled in (the applicant adds their ID number)."""
    return f"{public_url.rstrip('/')}/tra-cuu?ma={quote(code, safe='.-')}"


def _when(value: str | None) -> datetime | None:
    return clock.local(datetime.fromisoformat(value)) if value else None


def _dt(value: str | None) -> str:
    at = _when(value)
    return at.strftime("%H:%M %d/%m/%Y") if at else "—"


def _d(value: str | None) -> str:
    at = _when(value)
    return at.strftime("%d/%m/%Y") if at else "—"


# --- e-mail ---------------------------------------------------------------------------------------
def email(kind: str, facts: Facts, public_url: str) -> tuple[str, str]:
    """The e-mail's subject and plain-text body."""
    p, code, unit = facts.payload, facts.code, facts.unit
    if kind == RECEIPT:
        subject = f"Hồ sơ {code} đã được tiếp nhận — hẹn trả kết quả {_dt(p.get('due_at'))}"
        lines = [f"{unit} đã tiếp nhận hồ sơ của Ông/Bà.", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}",
                 f"Ngày tiếp nhận: {_dt(p.get('received_at'))}",
                 f"Ngày hẹn trả kết quả: {_dt(p.get('due_at'))}", "",
                 "Khi đến nhận kết quả, Ông/Bà vui lòng mang theo Giấy tiếp nhận hồ sơ và hẹn trả kết quả."]
    elif kind == SUPPLEMENT_REQUEST:
        subject = f"Hồ sơ {code}: yêu cầu bổ sung, hoàn thiện hồ sơ"
        lines = [f"{unit} đề nghị Ông/Bà bổ sung, hoàn thiện hồ sơ sau:", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}", f"Lý do: {p.get('reason', '')}", "",
                 "Giấy tờ cần bổ sung, hoàn thiện:"]
        for i, item in enumerate(p.get("items") or [], 1):
            line = f"  {i}. {item.get('name') or item.get('component')}: {item.get('problem', '')}"
            if item.get("reason"):
                line += f" (lý do cần bổ sung: {item['reason']})"
            lines.append(line)
        lines.append("")
        if p.get("respond_by"):
            lines.append(f"Hạn bổ sung: {_d(p['respond_by'])}.")
        if p.get("within_window", True):
            lines.append("Thời gian giải quyết được tính lại từ đầu khi nhận đủ hồ sơ bổ sung.")
        lines.append("Theo quy định, hồ sơ chỉ được yêu cầu bổ sung, hoàn thiện một lần.")
    elif kind == APOLOGY:
        subject = f"Hồ sơ {code}: thư xin lỗi và hẹn lại ngày trả kết quả {_dt(p.get('new_due_at'))}"
        lines = [f"{unit} chân thành xin lỗi Ông/Bà vì hồ sơ chưa được giải quyết đúng hẹn.", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}", f"Lý do: {p.get('reason', '')}",
                 f"Ngày hẹn trả kết quả trước đây: {_dt(p.get('previous_due_at'))}",
                 f"Ngày hẹn trả kết quả mới: {_dt(p.get('new_due_at'))}"]
    elif kind == NEW_APPOINTMENT:
        subject = f"Hồ sơ {code}: thay đổi ngày hẹn trả kết quả — {_dt(p.get('new_due_at'))}"
        lines = [("Cơ quan đã nhận đủ hồ sơ bổ sung của Ông/Bà; thời hạn giải quyết được tính lại từ ngày nhận."
                  if p.get("cause") == "supplement" else
                  "Do thay đổi lịch làm việc của cơ quan nhà nước, ngày hẹn trả kết quả hồ sơ của Ông/Bà "
                  "được điều chỉnh."), "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}",
                 f"Ngày hẹn trả kết quả trước đây: {_dt(p.get('previous_due_at'))}",
                 f"Ngày hẹn trả kết quả mới: {_dt(p.get('new_due_at'))}"]
    elif kind == REFUSAL:
        subject = f"Hồ sơ {code}: thông báo từ chối giải quyết hồ sơ"
        lines = [f"{unit} thông báo từ chối giải quyết hồ sơ của Ông/Bà.", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}", f"Lý do: {p.get('reason') or ''}", "",
                 "Ông/Bà có thể liên hệ Bộ phận tiếp nhận và trả kết quả để được hướng dẫn."]
    elif kind == RESULT_READY:
        subject = f"Hồ sơ {code} đã xử lý xong — mời Ông/Bà nhận kết quả"
        lines = ["Hồ sơ của Ông/Bà đã được giải quyết xong.", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}", "",
                 f"Mời Ông/Bà đến Bộ phận tiếp nhận và trả kết quả của {unit} để nhận kết quả, mang theo "
                 "Giấy tiếp nhận hồ sơ và hẹn trả kết quả (và giấy ủy quyền nếu nhận thay)."]
    elif kind == WITHDRAWAL:
        subject = f"Hồ sơ {code}: thông báo dừng giải quyết hồ sơ"
        lines = [f"Theo đề nghị của Ông/Bà, {unit} đã dừng giải quyết hồ sơ.", "",
                 f"Thủ tục: {facts.procedure}", f"Mã hồ sơ: {code}"]
    else:
        raise ValueError(f"unknown notice kind {kind!r}")
    name = str(p.get("name") or "").strip()
    body = "\n".join([f"Kính gửi Ông/Bà {name}," if name else "Kính gửi Ông/Bà,", "", *lines, "",
                      f"Tra cứu tình trạng hồ sơ: {lookup_link(public_url, code)}",
                      "(nhập mã hồ sơ và số định danh cá nhân của chủ hồ sơ).", "",
                      f"{unit} — Bộ phận tiếp nhận và trả kết quả",
                      "Thư này được gửi tự động, vui lòng không trả lời thư."])
    return subject, body


# --- SMS ------------------------------------------------------------------------------------------
# GSM 03.38 characters that take one septet; the rest (and the extension table's [ ] { } \ ^ ~ | €,
# which take two) are replaced, so the length counted here is the length the carrier counts.
_GSM_SAFE = set("@$_!\"#%&'()*+,-./:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ")
_REPLACE = {"đ": "d", "Đ": "D", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...",
            "[": "(", "]": ")", "{": "(", "}": ")", "|": "/", "\\": "/", "~": "-", "^": "", "`": "'"}


def plain(text: str) -> str:
    """Vietnamese without diacritics, on one line, in the GSM 7-bit alphabet (case kept, unlike
    engine.text.fold, which is for search)."""
    text = "".join(_REPLACE.get(c, c) for c in str(text or ""))
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = " ".join(text.split())
    return "".join(c if c in _GSM_SAFE else "?" for c in text)


def sms(kind: str, facts: Facts, public_url: str) -> str:
    """The SMS text: at most 160 characters, with the dossier code and the look-up link."""
    p, code = facts.payload, facts.code
    extra, reason = "", ""
    if kind == RECEIPT:
        core = f"Da tiep nhan ho so {code}, hen tra ket qua {_dt(p.get('due_at'))}."
    elif kind == SUPPLEMENT_REQUEST:
        n = len(p.get("items") or [])
        core = f"Ho so {code} can bo sung {n} giay to" + (f", han {_d(p['respond_by'])}." if p.get("respond_by") else ".")
        extra = "Chi tiet: email hoac Bo phan mot cua."
    elif kind == APOLOGY:
        core = f"Ho so {code} cham hen, xin loi ong/ba. Hen tra moi {_dt(p.get('new_due_at'))}."
        reason = p.get("reason") or ""
    elif kind == NEW_APPOINTMENT:
        core = (f"Ho so {code} da nhan du ho so bo sung, hen tra ket qua {_dt(p.get('new_due_at'))}."
                if p.get("cause") == "supplement" else
                f"Ho so {code} doi hen tra ket qua sang {_dt(p.get('new_due_at'))} do thay doi lich nghi.")
    elif kind == REFUSAL:
        core = f"Ho so {code} bi tu choi giai quyet."
        reason = p.get("reason") or ""
    elif kind == RESULT_READY:
        core = f"Ho so {code} da xu ly xong, moi ong/ba nhan ket qua tai Bo phan mot cua."
    elif kind == WITHDRAWAL:
        core = f"Ho so {code} da dung giai quyet theo de nghi cua ong/ba."
    else:
        raise ValueError(f"unknown notice kind {kind!r}")
    if reason.strip():
        extra = "Ly do: " + plain(reason).rstrip(".") + "."
    return fit(plain(facts.unit), plain(core), plain(extra), code, lookup_link(public_url, code),
               shorten=bool(reason.strip()))


def fit(unit: str, core: str, extra: str, code: str, link: str, shorten: bool = False) -> str:
    """The first that fits in one SMS, followed by the look-up link: "unit: core extra", "core extra",
    "core extr..." (when `shorten`: a reason may be cut), "unit: core", "core"; the last resort is the
    code and the link alone."""
    tail = f" Tra cuu: {link}"
    body = f"{core} {extra}" if extra else core
    candidates = [f"{unit}: {body}" if unit else body, body]
    room = SMS_LIMIT - len(tail) - len(core) - 1
    if extra and shorten and room >= 20:
        cut = extra[:room - 3]
        cut = cut.rsplit(" ", 1)[0] if extra[room - 3:room - 2] not in ("", " ") and " " in cut else cut
        candidates.append(f"{core} {cut.rstrip(' ,.;:')}...")
    if unit:
        candidates.append(f"{unit}: {core}")
    candidates.append(core)
    for text in candidates:
        if len(text) + len(tail) <= SMS_LIMIT:
            return text + tail
    return f"Ho so {plain(code)}.{tail}"[:SMS_LIMIT]
