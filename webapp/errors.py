"""Every error is application/problem+json (RFC 9457); a refused request changes nothing."""
from __future__ import annotations

import logging
import uuid

from flask import g, jsonify, request
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


def problem(status: int, code: str, detail: str, errors=None, headers=None):
    body = {"type": f"urn:motcua:problem:{code}", "title": TITLES.get(status, "Error"), "status": status,
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


def init_app(app) -> None:
    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        _rollback()
        if wants_html():
            from .i18n import ERROR

            return html_error(exc.http_status, ERROR.get(exc.code, HTML_MESSAGES.get(exc.http_status, exc.message)))
        errors = exc.errors if isinstance(exc, InvalidInput) else None
        if exc.http_status >= 500:
            log.error("request %s: %s", g.get("request_id"), exc.message)
        return problem(exc.http_status, exc.code, exc.message, errors)

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
