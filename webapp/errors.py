"""Every error is application/problem+json (RFC 9457); a refused request changes nothing."""
from __future__ import annotations

import json
import logging
import math
import re
import uuid

from flask import g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from engine.errors import DomainError, InvalidInput

log = logging.getLogger("motcua.web")
PROBLEM = "application/problem+json"

TITLES = {
    400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Request too large", 415: "Unsupported media type",
    422: "Invalid input", 429: "Too many requests", 500: "Internal server error",
}


def problem(status: int, code: str, detail: str, errors=None, headers=None, title: str | None = None):
    body = {"type": f"urn:motcua:problem:{code}", "title": title or TITLES.get(status, "Error"), "status": status,
            "detail": detail, "request_id": g.get("request_id")}
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def wants_html() -> bool:
    return not request.path.startswith("/api/")


def html_error(status: int, message: str):
    from flask import render_template

    return render_template("error.html", status=status, message=message), status


HTML_MESSAGES = {
    400: "Yêu cầu không hợp lệ. Nếu bạn vừa gửi biểu mẫu, hãy tải lại trang và gửi lại.",
    403: "Bạn không có quyền xem trang này.",
    404: "Không tìm thấy trang hoặc hồ sơ bạn cần.",
    405: "Thao tác không được hỗ trợ.",
    413: "Tệp tải lên quá lớn (tối đa 20 MB mỗi tệp).",
    500: "Hệ thống gặp lỗi ngoài dự kiến. Vui lòng thử lại; nếu vẫn lỗi, báo quản trị kèm mã yêu cầu.",
}


# --- hostile input, refused at the boundary ------------------------------------------------------
# Text no use case should ever see: PostgreSQL refuses NUL in text ("A string literal cannot contain NUL"),
# and a lone surrogate (JSON "\ud800") cannot be encoded to UTF-8 for any database. Both are refused
# for every request before a view runs (path, query string, form fields, file names) and in every JSON
# body as it is parsed (with its nesting and its numbers), with a problem naming where (RefusedInput);
# nothing has been read or written yet.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
MAX_JSON_DEPTH = 32          # containers inside containers; the API's own bodies need 4 (task data: any)
MAX_ID = 2**31 - 1           # the largest integer column value (PostgreSQL `integer`)
# Integer parameters of the screens, with their sane range: a value outside it is refused (the views
# read them with `type=int`, and 10**20 overflows the database's integers).
INT_PARAMS = {"trang": (1, 10_000), "nguoi-ky": (1, MAX_ID), "so-ngay": (-MAX_ID, MAX_ID),
              "nam": (1, 9999), "year": (1, 9999), "a": (0, MAX_ID), "b": (0, MAX_ID)}
_INT = re.compile(r"^\s*[+-]?\d+\s*$")


class RefusedInput(DomainError):
    """Input refused at the boundary: `errors` says where, `title` and `message_vi` what. The status is
    400, except on the API where the contract (openapi.json) documents another for the place: in the
    path 404 (no resource has such a name or number), in the query string 422."""

    http_status = 400
    code = "bad_request"
    title = "Bad request"
    message_vi = "Yêu cầu không hợp lệ."

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.errors = {where: message}
        if not wants_html():
            place = where.split(".", 1)[0]
            self.http_status = {"path": 404, "query": 422}.get(place, 400)


class NulCharacter(RefusedInput):
    code = "nul_character"
    title = "Text contains a NUL character"
    message_vi = "Dữ liệu gửi lên có ký tự NUL (mã 0), không được phép trong văn bản. Hãy nhập lại."


class InvalidUnicode(RefusedInput):
    code = "invalid_unicode"
    title = "Text is not valid Unicode"
    message_vi = "Dữ liệu gửi lên có ký tự Unicode không hợp lệ (nửa cặp thay thế). Hãy nhập lại."


class JsonTooDeep(RefusedInput):
    code = "json_too_deep"
    title = "JSON nested too deeply"
    message_vi = f"Dữ liệu JSON lồng nhau quá sâu (tối đa {MAX_JSON_DEPTH} cấp)."


class NumberOutOfRange(RefusedInput):
    code = "number_out_of_range"
    title = "Number out of range"
    message_vi = "Số trong yêu cầu (số trang, mã số…) nằm ngoài giới hạn cho phép."


def check_text(value: str, where: str) -> None:
    """Refuse a NUL character or a lone surrogate in `value` (found at `where`)."""
    bad = _BAD_TEXT.search(value)
    if bad is None:
        return
    if bad.group() == "\x00":
        raise NulCharacter(f"{where} contains a NUL character (U+0000), which text may not contain", where)
    raise InvalidUnicode(f"{where} contains a lone surrogate (U+{ord(bad.group()):04X}), which is not valid "
                         "Unicode", where)


def _name(key: str, prefix: str) -> str:
    return f"{prefix}.{key}" if _BAD_TEXT.search(key) is None else prefix


def refuse_hostile_request() -> None:
    """The before-request check of the path, the query string, form fields and file names."""
    check_text(request.path, "path")
    for key, value in request.args.items(multi=True):
        check_text(key, "query")
        check_text(value, _name(key, "query"))
        _check_int(key, value, "query")
    for key, value in (request.view_args or {}).items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NumberOutOfRange(f"{key} is out of range (at most {MAX_ID})", f"path.{key}")
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for key, value in request.form.items(multi=True):
            check_text(key, "form")
            check_text(value, _name(key, "form"))
            _check_int(key, value, "form")
        for key, file in request.files.items(multi=True):
            check_text(key, "files")
            check_text(file.filename or "", _name(key, "files") + ".filename")


def _check_int(key: str, value: str, prefix: str) -> None:
    bounds = INT_PARAMS.get(key)
    if bounds is None or not _INT.match(value):
        return  # not one of the integer parameters, or not a number: the view's default applies
    digits = value.strip().lstrip("+-").lstrip("0")
    if len(digits) > 18 or not bounds[0] <= int(value) <= bounds[1]:
        raise NumberOutOfRange(f"{key} must be a whole number from {bounds[0]} to {bounds[1]}", f"{prefix}.{key}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NumberOutOfRange(f"the number {text[:20]} is out of range (it would be infinite)", "body")
    return value


def _no_constant(name: str):
    raise NumberOutOfRange(f"{name} is not a JSON number", "body")


def inspect_json(data, where: str = "body") -> None:
    """Refuse containers nested deeper than MAX_JSON_DEPTH, and NUL or lone surrogates in any string
    (keys too). Iterative: a deep document cannot exhaust the stack here."""
    stack = [(data, 1, None)]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise JsonTooDeep(f"the JSON document nests more than {MAX_JSON_DEPTH} levels", where)
        for key, item in items:
            if isinstance(key, str) and _BAD_TEXT.search(key):
                check_text(key, _path(where, path))
            if isinstance(item, str):
                if _BAD_TEXT.search(item):
                    check_text(item, _path(where, (path, key)))
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1, (path, key)))


def _path(where: str, path) -> str:
    keys = []
    while path is not None:
        path, key = path
        keys.append(key if isinstance(key, int) or _BAD_TEXT.search(key) is None else "?")
    return ".".join([where, *map(str, reversed(keys))])


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing request bodies with bounds: nesting (a RecursionError in the parser and
    anything deeper than MAX_JSON_DEPTH answer json_too_deep), text (no NUL, no lone surrogates) and
    numbers (NaN, Infinity and 1e999 are no JSON numbers a database can store: number_out_of_range).
    A RefusedInput is no ValueError: it reaches the error handler even from `get_json(silent=True)`."""

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_constant", _no_constant)
        kwargs.setdefault("parse_float", _finite)
        try:
            data = json.loads(s, **kwargs)
        except RecursionError:
            raise JsonTooDeep(f"the JSON document nests more than {MAX_JSON_DEPTH} levels", "body") from None
        inspect_json(data)
        return data


def _bounded_json(app) -> None:
    provider = BoundedJSONProvider(app)
    for attr in ("ensure_ascii", "sort_keys", "compact", "mimetype"):
        setattr(provider, attr, getattr(app.json, attr))
    app.json = provider


def init_app(app) -> None:
    _bounded_json(app)

    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex

    app.before_request(refuse_hostile_request)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        _rollback()
        if wants_html():
            from .i18n import ERROR

            if isinstance(exc, RefusedInput):
                return html_error(exc.http_status, exc.message_vi)
            return html_error(exc.http_status, ERROR.get(exc.code, HTML_MESSAGES.get(exc.http_status, exc.message)))
        errors = exc.errors if isinstance(exc, (InvalidInput, RefusedInput)) else None
        if exc.http_status >= 500:
            log.error("request %s: %s", g.get("request_id"), exc.message)
        return problem(exc.http_status, exc.code, exc.message, errors,
                       title=exc.title if isinstance(exc, RefusedInput) else None)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        _rollback()
        return problem(422, "invalid_input", "the request body is not valid", exc.normalized_messages())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        _rollback()
        if wants_html():
            return html_error(exc.code or 500, HTML_MESSAGES.get(exc.code, exc.description or ""))
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
                415: "unsupported_media_type", 400: "bad_request", 401: "unauthenticated"}.get(exc.code, "http_error")
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        return problem(exc.code or 500, code, exc.description or TITLES.get(exc.code, ""), headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        _rollback()
        log.exception("unexpected error in request %s", g.get("request_id"))
        if wants_html():
            return html_error(500, HTML_MESSAGES[500] + f" (mã yêu cầu {g.get('request_id')})")
        return problem(500, "internal_error", f"an unexpected error occurred; quote request id {g.get('request_id')}")


def _rollback() -> None:
    s = g.get("db")
    if s is not None:
        s.rollback()
