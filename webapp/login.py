"""Logging in and out of the staff screens (session cookie, rate-limited by client address)."""
from __future__ import annotations

from urllib.parse import urlparse

from flask import redirect, render_template, request, session, url_for

from engine.access import ratelimit, tokens
from engine.errors import DomainError

from . import db
from .common import bp, rollback


def safe_next(target: str | None) -> str:
    if target and urlparse(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.inbox")


@bp.route("/dang-nhap", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        s = db.session()
        client = request.remote_addr or "unknown"
        username = request.form.get("username", "").strip()
        wait = ratelimit.login_blocked(s, username, client)
        if wait:
            error = f"Đăng nhập sai quá nhiều lần; vui lòng thử lại sau {max(1, wait // 60)} phút."
        else:
            try:
                user = tokens.authenticate(s, username, request.form.get("password", ""))
            except DomainError:
                rollback()
                ratelimit.login_failed(s, username, client)
                error = "Tên đăng nhập hoặc mật khẩu không đúng."
            else:
                session.clear()
                session["user_id"] = user.id
                session.permanent = True
                return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=request.form.get("username", "")), (401 if error else 200)


@bp.post("/dang-xuat")
def logout():
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/")
def home():
    return redirect(url_for("ui.inbox"))
