"""marshmallow schemas of the v1 API: they parse requests and dump answers, and generate openapi.json."""
from __future__ import annotations

from datetime import date, datetime, timezone

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from engine.clock import VN_TZ
from engine.dossiers import applicant as applicant_rules
from engine.store.models import CHANNELS, LEVELS, ONLINE_LEVELS

STATUSES = ("received", "processing", "awaiting_supplement", "result_ready", "returned", "refused", "withdrawn")


class Aware(fields.AwareDateTime):
    """ISO 8601 with offset, as the contract says: answers in Asia/Ho_Chi_Minh (+07:00); input must carry
    an offset."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(VN_TZ).isoformat()



# Dates outside this range are typing mistakes, and before 1900 Asia/Ho_Chi_Minh has no whole-minute offset.
SANE_DATES = validate.Range(min=date(2000, 1, 1), max=date(2100, 12, 31))


class TokenRequest(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenResponse(Schema):
    token = fields.String(required=True)
    expires_at = Aware(required=True)


class ComponentDef(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    required = fields.Boolean(load_default=True)
    copies = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))


class LegalBasis(Schema):
    number = fields.String(required=True, validate=validate.Length(min=1, max=64))
    title = fields.String(required=True, validate=validate.Length(max=2000))
    effective_from = fields.Date(required=True)
    expires_on = fields.Date(allow_none=True, load_default=None)


class ProcedureIn(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[1-3]\.\d{6}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    field = fields.String(required=True, validate=validate.Length(min=1, max=255))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    statutory_days = fields.Integer(required=True, validate=validate.Range(min=0, max=365))
    fee = fields.String(load_default="", validate=validate.Length(max=255))
    online_level = fields.String(required=True, validate=validate.OneOf(ONLINE_LEVELS))
    supplement_window_days = fields.Integer(load_default=3, validate=validate.Range(min=0, max=60))
    components = fields.List(fields.Nested(ComponentDef), load_default=list)
    legal_bases = fields.List(fields.Nested(LegalBasis), load_default=list)


class VersionOut(Schema):
    number = fields.Integer()
    status = fields.String()
    effective_from = fields.Date(allow_none=True)
    notes = fields.String()


class ProcedureOut(Schema):
    code = fields.String()
    name = fields.String()
    field = fields.String()
    level = fields.String()
    statutory_days = fields.Integer()
    fee = fields.String()
    online_level = fields.String()
    supplement_window_days = fields.Integer()
    components = fields.List(fields.Nested(ComponentDef))
    legal_bases = fields.List(fields.Nested(LegalBasis))
    versions = fields.List(fields.Nested(VersionOut))


class VersionIn(Schema):
    bpmn = fields.String(required=True, validate=validate.Length(min=1))
    notes = fields.String(load_default="", validate=validate.Length(max=4000))


class Problem(Schema):
    severity = fields.String()
    code = fields.String()
    element_id = fields.String(allow_none=True)
    message = fields.String()
    message_vi = fields.String()


class VersionCreated(Schema):
    number = fields.Integer()
    problems = fields.List(fields.Nested(Problem))


class PublishIn(Schema):
    effective_from = fields.Date(required=True, validate=SANE_DATES)


class ValidateIn(Schema):
    bpmn = fields.String(required=True)


class ValidateOut(Schema):
    valid = fields.Boolean()
    problems = fields.List(fields.Nested(Problem))


class Applicant(Schema):
    """The applicant: the rules of engine/dossiers/applicant.py (the desk's form applies the same). Phone,
    e-mail and address are optional, and checked when given; without `id_type` the number's shape names it."""

    # The rules are applicant_rules' (checked below, all at once); the lengths here only document them.
    name = fields.String(required=True, metadata={"minLength": 1, "maxLength": applicant_rules.NAME_MAX})
    id_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(applicant_rules.ID_TYPES),
                            metadata={"description": "cccd (12 digits) · cmnd (9 digits) · ho_chieu (a letter and 7 "
                                      "digits) · ma_so_thue (10 digits, or 10-3) · khac (3-30 characters)"})
    id_number = fields.String(required=True, metadata={"minLength": 1, "maxLength": applicant_rules.ID_NUMBER_MAX})
    phone = fields.String(load_default="", metadata={
        "maxLength": 32, "description": "mobile 0[35789]xxxxxxxx or landline 02xxxxxxxxx; +84 is accepted and stored "
                                        "as 0"})
    email = fields.String(load_default="", metadata={"maxLength": applicant_rules.EMAIL_MAX})
    address = fields.String(load_default="", metadata={"maxLength": applicant_rules.ADDRESS_MAX})

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, data, **_):
        # A field missing or of the wrong type has its own message already.
        problems = [p for p in applicant_rules.check(data)[1] if p.field in data]
        if problems:
            raise ValidationError({p.field: [p.en] for p in problems})


class FileIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_base64 = fields.String(required=True, validate=validate.Length(min=1))


class DossierIn(Schema):
    procedure_code = fields.String(required=True, validate=validate.Length(min=1, max=16))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    applicant = fields.Nested(Applicant, required=True)
    components = fields.List(fields.Nested(FileIn), required=True)
    unit_code = fields.String(load_default=None, allow_none=True)
    forward = fields.Boolean(load_default=False, metadata={
        "description": "also complete the desk's intake step (tiếp nhận → chuyển xử lý) in the same transaction; "
                       "409 intake_not_forwardable (and nothing received) when the process does not allow it"})


class DossierCreated(Schema):
    code = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    received_at = Aware()
    due_at = Aware()


class OpenTask(Schema):
    unit_code = fields.String(allow_none=True)
    id = fields.String()
    name = fields.String()
    role = fields.String()
    started_at = Aware()
    due_at = Aware()
    decisions = fields.List(fields.String())
    assignee = fields.String(allow_none=True)


class SupplementItem(Schema):
    component = fields.String(allow_none=True)
    name = fields.String()
    problem = fields.String()
    reason = fields.String()


class SupplementItemIn(Schema):
    component = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64), metadata={
        "description": "a component code of the procedure; null: a document the procedure does not list"})
    name = fields.String(load_default="", validate=validate.Length(max=1000))
    problem = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    reason = fields.String(load_default="", validate=validate.Length(max=2000), metadata={
        "description": "why a document the procedure does not list is needed"})


class SupplementOut(Schema):
    requested_at = Aware()
    reason = fields.String()
    items = fields.List(fields.Nested(SupplementItem))
    within_window = fields.Boolean()
    respond_by = Aware(allow_none=True)
    expired_at = Aware(allow_none=True)
    received_at = Aware(allow_none=True)
    new_due_at = Aware(allow_none=True)


class ApologyOut(Schema):
    issued_at = Aware()
    reason = fields.String()
    previous_due_at = Aware()
    new_due_at = Aware()
    late = fields.Boolean()


class TimelineStep(Schema):
    unit_code = fields.String(allow_none=True)
    step = fields.String()
    name = fields.String()
    role = fields.String()
    user = fields.String(allow_none=True)
    started = Aware()
    due = Aware()
    finished = Aware(allow_none=True)
    decision = fields.String(allow_none=True)
    note = fields.String()
    on_time = fields.Boolean(allow_none=True)
    result = fields.String(allow_none=True)


class ResultFileOut(Schema):
    id = fields.Integer()
    filename = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    uploaded_at = Aware()


class ResultOut(Schema):
    number = fields.String(allow_none=True)
    signed_on = fields.Date(allow_none=True)
    file = fields.Nested(ResultFileOut, allow_none=True)


class DossierOut(Schema):
    code = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean()
    apologized = fields.Boolean()
    channel = fields.String()
    unit_code = fields.String()
    applicant = fields.Nested(Applicant)
    received_at = Aware()
    due_at = Aware()
    legal_due_at = Aware()
    original_due_at = Aware()
    clock_paused = fields.Boolean()
    finish_result = fields.String(allow_none=True)
    finished_at = Aware(allow_none=True)
    returned_at = Aware(allow_none=True)
    procedure_code = fields.String()
    procedure_name = fields.String()
    version = fields.Integer()
    refusal_reason = fields.String(allow_none=True)
    result = fields.Nested(ResultOut, allow_none=True, metadata={
        "description": "the result document: number, signing date and the signed PDF; null until recorded"})
    open_tasks = fields.List(fields.Nested(OpenTask))
    supplements = fields.List(fields.Nested(SupplementOut))
    apologies = fields.List(fields.Nested(ApologyOut))
    timeline = fields.List(fields.Nested(TimelineStep))


class AuditEventOut(Schema):
    seq = fields.Integer()
    at = Aware()
    actor_id = fields.Integer(allow_none=True, metadata={"description": "null: the system (timers, sweeps)"})
    actor_name = fields.String()
    kind = fields.String(metadata={"description": "what happened: received, task_completed, handed_off, …"})
    step = fields.String(allow_none=True)
    data = fields.Dict()
    chain_version = fields.Integer(metadata={
        "description": "1: an event written before the keyed chain (unkeyed SHA-256, its actor's name not "
                       "covered); 2: HMAC-SHA256 with the instance's audit key, covering the actor's name"})
    prev_hash = fields.String()
    hash = fields.String()


class AuditOut(Schema):
    code = fields.String()
    intact = fields.Boolean(metadata={"description": "the hash chain verifies up to the head recorded on the dossier"})
    first_bad_seq = fields.Integer(allow_none=True, metadata={
        "description": "the first event that is wrong (or missing); null when intact"})
    reason = fields.String(allow_none=True, validate=validate.OneOf(
        ("gap", "hash_mismatch", "forged_name", "missing_tail", "head_mismatch", "truncated_after_anchor")), metadata={
        "description": "gap: an event missing in the middle; hash_mismatch: an event changed; forged_name: the "
                       "actor's name shown was changed; missing_tail: the last events removed; head_mismatch: the "
                       "log does not end at the head recorded on the dossier; truncated_after_anchor: the log is "
                       "shorter than, or differs from, the head an audit anchor recorded (events removed and the "
                       "dossier's head set back)"})
    detail = fields.String(allow_none=True)
    events = fields.List(fields.Nested(AuditEventOut))


class TaskOut(Schema):
    unit_code = fields.String(allow_none=True)
    id = fields.String()
    dossier_code = fields.String()
    name = fields.String()
    role = fields.String()
    started_at = Aware()
    due_at = Aware()
    decisions = fields.List(fields.String())
    labels = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "the button text of each decision, from the name of the flow it takes in the diagram "
                       "(e.g. approve → 'Trình lãnh đạo phòng'); a decision whose flow has no name is absent"})
    assignee_id = fields.Integer(allow_none=True, metadata={
        "description": "the user the step is assigned to (only they may complete it); null: anyone of its role"})
    assignee = fields.String(allow_none=True, metadata={"description": "the assignee's name"})


class AssignIn(Schema):
    assignee_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "a user holding the step's role in the step's unit"})


class ResultFileIn(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_base64 = fields.String(required=True, validate=validate.Length(min=1), metadata={
        "description": "the signed result document, a PDF (checked by its content), base64"})


class ResultIn(Schema):
    file = fields.Nested(ResultFileIn, load_default=None, allow_none=True, metadata={
        "description": "required when the step's diagram says result = file"})
    number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64), metadata={
        "description": "số văn bản / số quyết định; required when the step's diagram says result = number"})
    signed_on = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "the signing date (ngày ký); required with number"})


class CompleteIn(Schema):
    data = fields.Dict(keys=fields.String(), load_default=dict)
    note = fields.String(load_default="", validate=validate.Length(max=4000))
    result = fields.Nested(ResultIn, load_default=None, allow_none=True, metadata={
        "description": "the result document the step records when it approves (steps whose diagram sets the "
                       "`result` property: the signing step attaches the PDF, the register step records its "
                       "number and date); without it such a step answers 422 result_required, naming each field"})


class CompleteOut(Schema):
    dossier_code = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    next_tasks = fields.List(fields.Nested(OpenTask))


class SupplementIn(Schema):
    components = fields.List(fields.Nested(FileIn), required=True)
    note = fields.String(load_default="", validate=validate.Length(max=4000))


class ApologyIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    signed_by_id = fields.Integer(load_default=None, allow_none=True, strict=True,
                                  validate=validate.Range(min=1, max=2**31 - 1))  # a user id (integer column)
    new_due_at = Aware(required=True, validate=validate.Range(
        min=datetime(2000, 1, 1, tzinfo=timezone.utc), max=datetime(2100, 12, 31, tzinfo=timezone.utc)))


class ReasonIn(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=4000))


class WithdrawIn(ReasonIn):
    requested_at = Aware(load_default=None, allow_none=True)


class NoteIn(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=4000))


class ReturnIn(NoteIn):
    via = fields.String(load_default="counter", validate=validate.OneOf(("counter", "post", "online")))


class StatusOut(Schema):
    code = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))


class PublicDossier(Schema):
    code = fields.String()
    procedure_code = fields.String()
    procedure_name = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    overdue = fields.Boolean()
    received_at = Aware()
    due_at = Aware()
    finished_at = Aware(allow_none=True)
    returned_at = Aware(allow_none=True)


class PublicQuery(Schema):
    id_number = fields.String(required=True, validate=validate.Length(min=1, max=32))


class MetricsQuery(Schema):
    from_ = fields.Date(data_key="from", load_default=None, validate=SANE_DATES)
    to = fields.Date(load_default=None, validate=SANE_DATES)
    unit = fields.String(load_default=None)
    procedure = fields.String(load_default=None)
    field = fields.String(load_default=None)


class Counts(Schema):
    total = fields.Integer()


class MetricsOut(Schema):
    from_ = Aware(data_key="from", attribute="from")
    to = Aware()
    unit = fields.String(allow_none=True)
    procedure = fields.String(allow_none=True)
    field = fields.String(allow_none=True)
    received = fields.Dict(keys=fields.String(), values=fields.Integer())
    finished = fields.Dict(keys=fields.String(), values=fields.Integer())
    in_progress = fields.Dict(keys=fields.String(), values=fields.Integer())
    withdrawn = fields.Integer()
    overdue_without_apology = fields.Integer()
    supplement_requests = fields.Integer()
    apologies = fields.Dict(keys=fields.String(), values=fields.Integer())
    on_time_rate = fields.Float(allow_none=True)
    tt01 = fields.Dict(keys=fields.String(), metadata={"description": "TT 01/2018 Đ13-15 indices (indices, total, "
                                                        "max_available, scaled_to_18, rating)"})
    qd766 = fields.Dict(keys=fields.String(), metadata={"description": "QĐ 766 groups with data (groups, score, "
                                                         "max_available); weights are configuration"})


class ConsultIn(Schema):
    units = fields.List(fields.String(validate=validate.Length(min=1, max=32)), required=True,
                        validate=validate.Length(min=1, max=20))
    content = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    days = fields.Integer(required=True, strict=True)


class AnswerFileIn(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_base64 = fields.String(required=True, validate=validate.Length(min=1))


class AnswerIn(Schema):
    answer = fields.String(required=True, validate=validate.Length(min=1, max=8000))
    files = fields.List(fields.Nested(AnswerFileIn), load_default=list, validate=validate.Length(max=10))


class ConsultationOut(Schema):
    id = fields.Integer()
    dossier_code = fields.String()
    step = fields.String()
    unit_code = fields.String()
    content = fields.String()
    asked_at = Aware()
    due_at = Aware()
    answered_at = Aware(allow_none=True)
    answer = fields.String()
    late = fields.Boolean()
    files = fields.List(fields.Nested(Schema.from_dict({"id": fields.Integer(), "filename": fields.String()})))


class CounterNoticeIn(Schema):
    """Guidance (form 02) or a refusal (form 03) given at the counter to a dossier that is not received."""

    procedure_code = fields.String(required=True, validate=validate.Length(min=1, max=16))
    kind = fields.String(required=True, validate=validate.OneOf(("guidance", "refusal")))
    applicant = fields.Nested(Applicant, required=True)
    items = fields.List(fields.Nested(SupplementItemIn), load_default=list, validate=validate.Length(max=50), metadata={
        "description": "guidance: every document to complete (at least one); refusal: optional"})
    reason = fields.String(load_default="", validate=validate.Length(max=4000), metadata={
        "description": "required for a refusal"})
    unit_code = fields.String(load_default=None, allow_none=True)
    acknowledge_repeat = fields.Boolean(load_default=False, metadata={
        "description": "issue a second guidance to an applicant already guided for this procedure at this unit "
                       "(otherwise 409 counter_guidance_repeated)"})


class CounterNoticeOut(Schema):
    id = fields.Integer()
    number = fields.String(metadata={"description": "as printed: 7/PBS (guidance), 3/PTC (refusal)"})
    kind = fields.String()
    unit_code = fields.String()
    procedure_code = fields.String()
    applicant = fields.Nested(Applicant)
    items = fields.List(fields.Nested(SupplementItem))
    reason = fields.String()
    repeated = fields.Boolean()
    issued_at = Aware()
    issued_by = fields.String()
