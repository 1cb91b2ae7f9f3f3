"""Citizens: look a dossier up by its code and the applicant's ID number, and rate the service once."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, render_template, request

from engine import dossiers
from engine.access import ratelimit
from engine.errors import DomainError, NotFound
from engine.reporting import views

from . import db, forms, i18n
from .common import bp, error_text, rollback


@bp.route("/tra-cuu", methods=["GET", "POST"])
def lookup():
    s = db.session()
    # The ID number travels in the POST body only, never in a URL (logs, history, Referer); a GET
    # (a QR code on form 01) may carry the dossier code alone.
    form = forms.parse(forms.LookupForm, request.form if request.method == "POST" else request.args)
    code = form["ma"]
    id_number = form["so_dinh_danh"] if request.method == "POST" else ""
    result = message = None
    if code and id_number:
        cfg = current_app.config
        allowed, reset = ratelimit.hit(s, f"public:{request.remote_addr or 'unknown'}", cfg["PUBLIC_LOOKUP_LIMIT"],
                                       timedelta(seconds=cfg["PUBLIC_LOOKUP_WINDOW_SECONDS"]))
        if not allowed:
            return render_template("lookup.html", code=code, message=f"Bạn tra cứu quá nhiều lần; vui lòng thử lại "
                                   f"sau {reset} giây.", result=None), 429
        try:
            if form["rating"]:
                dossiers.rate_service(s, dossier_code=code, id_number=id_number, rating=form["rating"],
                                      comment=form["comment"])
                flash("Cảm ơn bạn đã đánh giá chất lượng phục vụ.", "success")
            result = views.public_lookup(s, code, id_number)
        except DomainError as exc:
            rollback()
            if isinstance(exc, NotFound):
                message = "Không có hồ sơ nào được tìm thấy"
            else:
                message = error_text(exc)
                result = views.public_lookup(s, code, id_number)
    history = [{"at": h["at"], "what": h["what"], "who": i18n.ROLE.get(h["role"], "")} for h in result["history"]] \
        if result else []
    return render_template("lookup.html", code=code, id_number=id_number if result else "", result=result,
                           message=message, history=history, rated=result["rating"] if result else None), \
        (404 if message and not result else 200)
