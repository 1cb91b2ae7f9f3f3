"""HTML form parsing with marshmallow, like the API's JSON: a schema per form, unknown fields
ignored (CSRF token, buttons), errors keyed by field for the templates."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from engine.dossiers import applicant as applicant_rules
from engine.errors import InvalidInput
from engine.store.models import CHANNELS


class FormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _strip(self, data, **_):
        """Trimmed; a field left empty counts as not sent (its default applies, or `required` speaks)."""
        data = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
        return {k: v for k, v in data.items() if v not in ("", None)}


def parse(schema: type[Schema], form) -> dict:
    """Load `form` (a MultiDict or dict); a bad field raises InvalidInput naming it."""
    data = {k: form.get(k) for k in form.keys()} if hasattr(form, "keys") else dict(form)
    try:
        return schema().load(data)
    except ValidationError as exc:
        raise InvalidInput("the form is not valid",
                           errors={k: "; ".join(v) if isinstance(v, list) else str(v) for k, v in exc.messages.items()}) from None


RECEPTION_ACTIONS = ("chuyen-xu-ly", "tiep-nhan", "huong-dan", "tu-choi")  # the desk form's buttons


class ReceptionForm(FormSchema):
    """The desk's form: the applicant (the rules of engine/dossiers/applicant.py, said in Vietnamese; the
    address is required at the counter, form 01 prints it), what to do with the dossier, and for a dossier
    not received the counter notice's reason."""

    name = fields.String(load_default="")
    id_type = fields.String(load_default="cccd")
    id_number = fields.String(load_default="")
    phone = fields.String(load_default="")
    email = fields.String(load_default="")
    address = fields.String(load_default="")
    channel = fields.String(load_default="counter", validate=validate.OneOf(CHANNELS))
    unit_code = fields.String(load_default=None)
    action = fields.String(load_default="tiep-nhan", validate=validate.OneOf(RECEPTION_ACTIONS))
    reason = fields.String(load_default="")
    acknowledge_repeat = fields.Boolean(load_default=False, data_key="xac-nhan-lan-hai")

    @validates_schema(skip_on_field_errors=False)
    def _applicant(self, data, **_):
        _, problems = applicant_rules.check(data, address_required=True)
        if problems:
            raise ValidationError({f"applicant.{p.field}": p.vi for p in problems})

    @staticmethod
    def applicant(data: dict) -> dict:
        return {k: data.get(k, "") for k in applicant_rules.FIELDS}


class TaskForm(FormSchema):
    decision = fields.String(load_default="")
    reason = fields.String(load_default="")
    acknowledge_late = fields.Boolean(load_default=False, data_key="xac-nhan-muon")


OUTSIDE_ROWS = 3  # rows offered for documents the procedure does not list


def supplement_items(form, components: list[dict]) -> list[dict]:
    """The task form's supplement request: a ticked component with what is wrong with it, or a
    document the procedure does not list with the reason it is needed."""
    ticked = set(form.getlist("thanh-phan"))
    items = [{"component": c["code"], "problem": form.get(f"van-de-{c['code']}", "").strip()}
             for c in components if c["code"] in ticked]
    for i in range(1, OUTSIDE_ROWS + 1):
        name = form.get(f"ngoai-ten-{i}", "").strip()
        if name:
            items.append({"component": None, "name": name, "problem": form.get(f"ngoai-van-de-{i}", "").strip(),
                          "reason": form.get(f"ngoai-ly-do-{i}", "").strip()})
    return items


def lines(text: str) -> list[str]:
    """A textarea's non-empty lines (one document to supplement per line)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class ApologyForm(FormSchema):
    reason = fields.String(load_default="")
    signed_by_id = fields.Integer(load_default=None, allow_none=True, data_key="nguoi-ky")
    new_due = fields.Date(required=True, data_key="new_due", error_messages={"required": "date", "invalid": "date"})


class NoteForm(FormSchema):
    note = fields.String(load_default="")


class ReturnForm(NoteForm):
    via = fields.String(load_default="counter", data_key="hinh-thuc",
                        validate=validate.OneOf(("counter", "post", "online")))


class WithdrawForm(FormSchema):
    reason = fields.String(load_default="")
    requested_on = fields.Date(load_default=None, allow_none=True, data_key="ngay-de-nghi")


class ReasonForm(FormSchema):
    reason = fields.String(load_default="")


class LookupForm(FormSchema):
    ma = fields.String(load_default="")
    so_dinh_danh = fields.String(load_default="", data_key="so-dinh-danh")
    rating = fields.String(load_default="")
    comment = fields.String(load_default="")


class ConsultForm(FormSchema):
    content = fields.String(load_default="", data_key="noi-dung")
    days = fields.Integer(load_default=None, allow_none=True, data_key="so-ngay",
                          error_messages={"invalid": "days"})


class AnswerForm(FormSchema):
    answer = fields.String(load_default="", data_key="y-kien")
