"""Logging in and out of the staff screens (session cookie, rate-limited by client address)."""
from __future__ import annotations

from urllib.parse import urlparse

from flask import redirect, render_template, request, session, url_for

from engine.access import ratelimit, tokens
from engine.errors import DomainError

from . import db
from .common import bp, rollback, staff_required

# Where each role starts its day when it holds no step-working role (issue #12 item 6).
DESK_ROLES = {"mot_cua", "chuyen_vien", "lanh_dao_phong", "lanh_dao", "van_thu"}


def start_page(roles: set[str]) -> str:
    """The inbox for whoever works steps; otherwise the dashboard (managers), the designer, the catalog."""
    if roles & DESK_ROLES or not roles:
        return url_for("ui.inbox")
    if "manager" in roles:
        return url_for("dashboard.dashboard")
    if "designer" in roles:
        return url_for("designer.index")
    if "admin" in roles:
        return url_for("admin.procedures")
    return url_for("ui.inbox")


def safe_next(target: str | None, roles: set[str] = frozenset()) -> str:
    if target and urlparse(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return start_page(set(roles))


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
                return redirect(safe_next(request.args.get("next"), {g.role for g in user.grants}))
    return render_template("login.html", error=error, username=request.form.get("username", "")), (401 if error else 200)


@bp.post("/dang-xuat")
def logout():
    session.clear()
    return redirect(url_for("ui.login"))


@bp.get("/")
@staff_required
def home(actor):
    return redirect(start_page({role for _, role in actor.grants}))
