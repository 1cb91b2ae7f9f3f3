"""The applicant's details (chủ hồ sơ): the one rule set the desk's form, the API and the use cases share —
name, identity document by type, Vietnamese phone numbers, e-mail, address. Each problem is said in
English (the API's problem+json) and in Vietnamese (next to the field on the screens)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import InvalidInput

NAME_MAX = 200
ADDRESS_MAX = 500
EMAIL_MAX = 254
ID_NUMBER_MAX = 30
FIELDS = ("name", "id_type", "id_number", "phone", "email", "address")


@dataclass(frozen=True)
class IdType:
    label: str      # the document, as the form's select names it
    number: str     # its number, as a message names it
    pattern: str    # the whole value, after normalize_id
    rule_en: str
    rule_vi: str


# The identity documents a counter sees. A citizen's số định danh cá nhân is the 12 digits of the CCCD
# (Luật Căn cước 2023); the old 9-digit CMND still turns up on older papers; a passport is one letter and
# seven digits; an organisation gives its tax code (10 digits, a branch adds -XXX); anything else (a
# foreigner's papers, a birth certificate number) is free but bounded.
ID_TYPES: dict[str, IdType] = {
    "cccd": IdType("Căn cước công dân / Căn cước (số định danh cá nhân)", "Số định danh cá nhân (CCCD)", r"\d{12}",
                   "a CCCD number has exactly 12 digits", "gồm đúng 12 chữ số"),
    "cmnd": IdType("Chứng minh nhân dân", "Số CMND", r"\d{9}", "a CMND number has exactly 9 digits",
                   "gồm đúng 9 chữ số"),
    "ho_chieu": IdType("Hộ chiếu", "Số hộ chiếu", r"[A-Z]\d{7}",
                       "a passport number is one letter and 7 digits (C1234567)",
                       "gồm 1 chữ cái và 7 chữ số, ví dụ C1234567"),
    "ma_so_thue": IdType("Mã số thuế (tổ chức, doanh nghiệp)", "Mã số thuế", r"\d{10}(-\d{3})?",
                         "a tax code has 10 digits, or 10 digits, a hyphen and 3 digits",
                         "gồm 10 chữ số, hoặc 10 chữ số, dấu gạch ngang và 3 chữ số"),
    "khac": IdType("Giấy tờ khác", "Số giấy tờ", r"\S.{1,%d}\S" % (ID_NUMBER_MAX - 2),
                   f"3 to {ID_NUMBER_MAX} characters", f"gồm từ 3 đến {ID_NUMBER_MAX} ký tự"),
}
# What an API client that names no type may send (the contract before types existed): the type is then
# read from the number's shape, and anything else of this shape counts as another document.
_UNTYPED = re.compile(r"[0-9A-Za-z-]{6,20}")
_NO_SPACES = re.compile(r"[\s.]+")
_PHONE_SEPARATORS = re.compile(r"[\s.\-()]+")
MOBILE = re.compile(r"0[35789]\d{8}")
LANDLINE = re.compile(r"02\d{9}")
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
# For the form's client-side hints (pattern attributes); the server stays the authority.
PHONE_HINT = r"[+0-9 .()\-]{9,20}"


@dataclass(frozen=True)
class Problem:
    field: str
    en: str
    vi: str


def _shown(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def normalize_phone(raw: str) -> str | None:
    """A Vietnamese phone number as dialled at home (0xxxxxxxxx), or None if it is not one: a mobile
    number (10 digits from 03, 05, 07, 08, 09) or a landline (11 digits from 02); +84 / 84 / 0084 become 0."""
    digits = _PHONE_SEPARATORS.sub("", raw)
    for prefix in ("+84", "0084", "84"):
        if digits.startswith(prefix) and len(digits) - len(prefix) in (9, 10):
            digits = "0" + digits[len(prefix):]
            break
    if MOBILE.fullmatch(digits) or LANDLINE.fullmatch(digits):
        return digits
    return None


def normalize_id(id_type: str | None, raw: str) -> str:
    """Spaces and dots typed between digit groups go; a passport's letter is upper-cased. Another
    document's number is kept as written (inner spaces collapsed)."""
    if id_type == "khac":
        return " ".join(raw.split())
    return _NO_SPACES.sub("", raw).upper()


def infer_id_type(value: str) -> str | None:
    """The type of a number sent without one (the API before types): the first whose shape it has."""
    for code in ("cccd", "cmnd", "ho_chieu", "ma_so_thue"):
        if re.fullmatch(ID_TYPES[code].pattern, value):
            return code
    return "khac" if _UNTYPED.fullmatch(value) else None


def check(data: Mapping | None, *, address_required: bool = False) -> tuple[dict, list[Problem]]:
    """The applicant's details cleaned (trimmed, phone normalised, ID number normalised, its type
    named), and every problem found. `address_required`: the desk's form asks for it (form 01 prints
    it); the API keeps it optional, as its contract always had it."""
    data = data or {}

    def text(key: str) -> str:
        value = data.get(key)
        return value.strip() if isinstance(value, str) else ""

    problems: list[Problem] = []
    name = " ".join(text("name").split())
    if not name:
        problems.append(Problem("name", "required", "Nhập họ và tên chủ hồ sơ (cá nhân hoặc tổ chức)."))
    elif len(name) > NAME_MAX:
        problems.append(Problem("name", f"at most {NAME_MAX} characters",
                                f"Họ và tên không hợp lệ: dài {len(name)} ký tự, tối đa {NAME_MAX} ký tự."))

    id_type = text("id_type") or None
    id_number = normalize_id(id_type, text("id_number"))
    if id_type is not None and id_type not in ID_TYPES:
        problems.append(Problem("id_type", f"one of {', '.join(ID_TYPES)}", "Chọn loại giấy tờ tùy thân."))
    elif not id_number:
        problems.append(Problem("id_number", "required", "Nhập số giấy tờ tùy thân của chủ hồ sơ."))
    elif len(id_number) > ID_NUMBER_MAX or not id_number.isprintable():
        problems.append(Problem("id_number", f"at most {ID_NUMBER_MAX} characters",
                                f"Số giấy tờ không hợp lệ: tối đa {ID_NUMBER_MAX} ký tự, không có ký tự điều khiển."))
    elif id_type is None:
        id_type = infer_id_type(id_number)
        if id_type is None:
            problems.append(Problem("id_number", "an ID number: a CCCD of 12 digits, or name the document in id_type "
                                    f"({', '.join(ID_TYPES)})",
                                    f"Số giấy tờ không hợp lệ: «{_shown(id_number)}» — chọn đúng loại giấy tờ."))
    elif not re.fullmatch(ID_TYPES[id_type].pattern, id_number):
        rule = ID_TYPES[id_type]
        problems.append(Problem("id_number", rule.rule_en,
                                f"{rule.number} không hợp lệ: «{_shown(id_number)}» — {rule.rule_vi}."))

    phone = text("phone")
    if phone:
        normalized = normalize_phone(phone)
        if normalized is None:
            problems.append(Problem(
                "phone", "a Vietnamese phone number: a mobile of 10 digits from 03, 05, 07, 08 or 09, or a landline of "
                "11 digits from 02; +84 may replace the leading 0",
                f"Số điện thoại không hợp lệ: «{_shown(phone)}» — số di động gồm 10 chữ số bắt đầu bằng 03, 05, 07, "
                "08, 09; số cố định gồm 11 chữ số bắt đầu bằng 02; có thể viết +84 thay cho số 0 đầu."))
        else:
            phone = normalized

    email = text("email")
    if email and (len(email) > EMAIL_MAX or not EMAIL.fullmatch(email)):
        problems.append(Problem("email", "not an e-mail address",
                                f"Thư điện tử không hợp lệ: «{_shown(email)}» — ví dụ: ten@example.vn."))

    address = " ".join(text("address").split())
    if not address and address_required:
        problems.append(Problem("address", "required", "Nhập địa chỉ của chủ hồ sơ."))
    elif len(address) > ADDRESS_MAX:
        problems.append(Problem("address", f"at most {ADDRESS_MAX} characters",
                                f"Địa chỉ không hợp lệ: dài {len(address)} ký tự, tối đa {ADDRESS_MAX} ký tự."))

    clean = {"name": name, "id_type": id_type or "", "id_number": id_number, "phone": phone, "email": email,
             "address": address}
    return clean, problems


def clean(data: Mapping | None, *, address_required: bool = False, prefix: str = "applicant") -> dict:
    """The applicant's details cleaned, or InvalidInput naming each bad field (`prefix.field`) in English,
    with the Vietnamese messages in `details['messages_vi']`."""
    cleaned, problems = check(data, address_required=address_required)
    if problems:
        raise InvalidInput("applicant details are not valid",
                           errors={f"{prefix}.{p.field}": p.en for p in problems},
                           messages_vi={f"{prefix}.{p.field}": p.vi for p in problems})
    return cleaned
