"""How a dossier ends, or is late: the apology with a new appointment (form 04), refusal by the
agency's leader (form 03), withdrawal at the applicant's request (form 05), handing over the result,
and the citizen's one rating of the service."""
from __future__ import annotations

import hmac
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import load_actor
from engine.dossiers.aggregate import Record
from engine.dossiers.change import dossier_change
from engine.errors import Conflict, DossierClosed, DueDateAlreadyReset, InvalidInput, NotAllowed, NotFound
from engine.store.models import (
    OPEN_STATUSES,
    REFUSED,
    RESULT_READY,
    RETURNED,
    WITHDRAWN,
    Apology,
    ServiceRating,
    SupplementRequest,
)

RATINGS = ("very_satisfied", "satisfied", "not_satisfied")


class AlreadyRated(Conflict):
    code = "already_rated"


def _reason(reason: str | None) -> str:
    reason = str(reason or "").strip()
    if not reason:
        raise InvalidInput("a reason is required", errors={"reason": "required"})
    return reason


def issue_apology(session: Session, *, actor_id: int, dossier_code: str, reason: str, new_due_at: datetime | date,
                  signed_by_id: int | None = None, now: datetime | None = None) -> Record:
    """Form 04: apology with a new appointment — a time, or a day (then at the end of its office
    hours), signed by the agency's leader (L12): the leader issues it, or the desk records the one a
    leader signed (`signed_by_id`). The appointment may be reset only once; the legal date in force
    does not move, so the dossier still counts late if it finishes after it."""
    with dossier_change(session, actor_id=actor_id, permission="apology.issue", code=dossier_code, now=now) as change:
        dossier, now, cal = change.dossier, change.now, change.calendar
        if dossier.status not in OPEN_STATUSES:
            raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; no apology can be issued")
        if dossier.clock_paused:
            raise DossierClosed("the processing time is paused while the citizen supplements the dossier; "
                                "no apology is due")
        earlier = change.part(Apology)
        if earlier is not None and not _restarted_since(change, earlier.issued_at):
            raise DueDateAlreadyReset("the appointment was already reset once with an apology; it cannot be reset again")
        reason = _reason(reason)
        signer = _signer(change, signed_by_id)
        if not isinstance(new_due_at, datetime):
            day = new_due_at
            if not cal.is_working_day(day):
                raise InvalidInput("the new appointment must fall on a working day", errors={"new_due_at": "not a working day"})
            new_due_at = cal.end_of_working_day(day)
        new_due_at = clock.aware(new_due_at)
        if not cal.is_working_day(clock.local(new_due_at).date()):
            raise InvalidInput("the new appointment must fall on a working day", errors={"new_due_at": "not a working day"})
        current = max(dossier.due_at, dossier.legal_due_at, now)
        if new_due_at <= current:
            raise InvalidInput("the new appointment must be later than the current one",
                               errors={"new_due_at": f"after {clock.local(current):%H:%M %d/%m/%Y}"})
        # No later than 1 (working) day before the legal due date; later ones are recorded but count as late.
        day_before = clock.local(dossier.legal_due_at).date() - timedelta(days=1)
        while not cal.is_working_day(day_before):
            day_before -= timedelta(days=1)
        late = now > cal.end_of_working_day(day_before)
        change.on_duplicate = DueDateAlreadyReset("the appointment was already reset once with an apology")
        values = dict(issued_at=now, issued_by_id=change.actor.id, signed_by_id=signer, reason=reason,
                      previous_due_at=dossier.due_at, new_due_at=new_due_at, late=late)
        if earlier is None:
            apology = change.add(Apology, **values)
        else:
            # One apology per processing period (L12): the timely supplement started a new one; the row
            # holds the apology in force, the audit trail every apology issued.
            for key, value in values.items():
                setattr(earlier, key, value)
            change.save_part(Apology, earlier)
            apology = earlier
        change.audit("apology_issued", reason=reason, previous_due_at=dossier.due_at.isoformat(),
                     new_due_at=new_due_at.isoformat(), late=late, signed_by=signer)
        dossier.due_at = new_due_at
        dossier.apologized = True
        dossier.late_without_apology = False
        change.emit("appointment_changed")
    return apology


def _restarted_since(change, moment: datetime) -> bool:
    """Whether a timely supplement restarted the processing time after `moment` (a new period)."""
    request = change.part(SupplementRequest)
    return bool(request is not None and request.within_window and request.received_at is not None
                and request.received_at > moment)


def _signer(change, signed_by_id: int | None) -> int:
    """The leader who signs form 04: the actor when they may sign, else the named leader (L12)."""
    unit_id = change.dossier.unit_id
    if signed_by_id is None and policy.can(change.actor, "apology.sign", unit_id, session=change.session,
                                           dossier=change.dossier):
        return change.actor.id
    if signed_by_id is None:
        raise InvalidInput("an apology is signed by the agency's leader: name the leader who signed it",
                           errors={"signed_by_id": "required"})
    try:
        signer = load_actor(change.session, int(signed_by_id))
    except (NotAllowed, TypeError, ValueError):
        signer = None
    if signer is None or not policy.can(signer, "apology.sign", unit_id, session=change.session, dossier=change.dossier):
        raise InvalidInput("the signer must be a leader of the agency",
                           errors={"signed_by_id": "not a leader of this unit"})
    return signer.id


def refuse_dossier(session: Session, *, actor_id: int, dossier_code: str, reason: str,
                   now: datetime | None = None) -> Record:
    """Form 03 after appraisal, by the agency's leader: ends the process with reasons (L11)."""
    with dossier_change(session, actor_id=actor_id, permission="dossier.refuse", code=dossier_code, now=now) as change:
        dossier = change.dossier
        if dossier.status not in OPEN_STATUSES:
            raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; it cannot be refused")
        reason = _reason(reason)
        change.cancel_open_tasks()
        change.finish(REFUSED)
        dossier.refusal_reason = reason
        # L11: a refusal belongs inside the processing time; one after it is recorded and flagged late.
        change.audit("refused", reason=reason, within_time=dossier.finish_result != "late")
    return dossier


def withdraw_dossier(session: Session, *, actor_id: int, dossier_code: str, reason: str = "",
                     requested_at: datetime | date | None = None, now: datetime | None = None) -> Record:
    """Form 05: the applicant withdraws before any decision was issued (L14). `requested_at`: when
    the applicant asked (their letter's date), printed on the notice; default now."""
    with dossier_change(session, actor_id=actor_id, permission="dossier.withdraw", code=dossier_code, now=now) as change:
        dossier = change.dossier
        if dossier.status not in OPEN_STATUSES:
            raise DossierClosed(f"dossier {dossier.code} is {dossier.status}: a decision was already issued")
        asked = change.now if requested_at is None else requested_at
        if not isinstance(asked, datetime):
            asked = datetime.combine(asked, datetime.min.time(), tzinfo=clock.VN_TZ)
        asked = clock.aware(asked)
        received_day = datetime.combine(clock.local(dossier.received_at).date(), datetime.min.time(), tzinfo=clock.VN_TZ)
        if asked > change.now or asked < received_day:
            raise InvalidInput("the request date must lie between reception and now",
                               errors={"requested_at": "between reception and now"})
        change.cancel_open_tasks()
        change.finish(WITHDRAWN)
        change.audit("withdrawn", reason=str(reason or "").strip(), requested_at=asked.isoformat())
    return dossier


RETURN_WAYS = ("counter", "post", "online")


def return_result(session: Session, *, actor_id: int, dossier_code: str, note: str = "", via: str = "counter",
                  now: datetime | None = None) -> Record:
    """The one-stop desk hands the result to the applicant: at the counter, by post or online (form 07)."""
    with dossier_change(session, actor_id=actor_id, permission="result.return", code=dossier_code, now=now) as change:
        dossier = change.dossier
        if dossier.status != RESULT_READY:
            raise DossierClosed(f"dossier {dossier.code} is {dossier.status}; only a finished result can be handed over")
        if via not in RETURN_WAYS:
            raise InvalidInput("how was the result handed over?", errors={"via": f"one of {', '.join(RETURN_WAYS)}"})
        dossier.status, dossier.returned_at, dossier.returned_via = RETURNED, change.now, via
        change.audit("result_returned", note=str(note or "").strip(), via=via,
                     on_time=dossier.finish_result != "late")
    return dossier


def rate_service(session: Session, *, dossier_code: str, id_number: str, rating: str, comment: str = "",
                 now: datetime | None = None) -> Record:
    """The citizen rates the service once, after the result was handed over (NĐ 61 Đ29). The citizen
    proves who they are with the applicant's ID number; a mismatch answers like a missing dossier."""
    try:
        with dossier_change(session, actor_id=None, permission=None, code=dossier_code, now=now) as change:
            dossier = change.dossier
            if not hmac.compare_digest(dossier.applicant_id_number.encode(), (id_number or "").encode()):
                raise NotFound("Không có hồ sơ nào được tìm thấy")
            if rating not in RATINGS:
                raise InvalidInput("choose a rating", errors={"rating": f"one of {', '.join(RATINGS)}"})
            if dossier.status != RETURNED:
                raise DossierClosed("the service can be rated once the result has been handed over")
            if change.has_part(ServiceRating):
                raise AlreadyRated("this dossier has already been rated")
            change.on_duplicate = AlreadyRated("this dossier has already been rated")
            row = change.add(ServiceRating, rating=rating, comment=str(comment or "").strip()[:2000], created_at=change.now)
            dossier.rating = rating
    except NotFound:
        raise NotFound("Không có hồ sơ nào được tìm thấy") from None
    return row
