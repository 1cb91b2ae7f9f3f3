"""Result documents (kết quả giải quyết): a step whose diagram says `result = file` attaches the signed
result document (a PDF, checked by its bytes) when it approves, one that says `result = number` records
the document's number (số văn bản, số quyết định) and signing date (ngày ký) — in the shipped processes
the leader's signing step and the clerk's register step. Approving such a step without them is refused
and changes nothing: a dossier's result is recorded in the system when it is made (DESIGN.md, "Why")."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from engine import clock
from engine.dossiers.aggregate import Record
from engine.dossiers.change import DossierChange
from engine.errors import InvalidInput
from engine.store import files
from engine.store.models import RESULT_PURPOSE, DossierFile
from engine.workflow.bpmn_xml import RESULT_FILE, RESULT_NUMBER

APPROVE = "approve"
FILE_CODE = "KETQUA"       # the component code the result file is kept under
PDF_TYPE = "application/pdf"
MAX_NUMBER_CHARS = 64
FIELDS = ("file", "number", "signed_on")


class ResultRequired(InvalidInput):
    """The step records the result document when it approves, and some of it is missing or not valid."""

    code = "result_required"


@dataclass(frozen=True)
class ResultEntry:
    """A step's result as checked, ready to record: the PDF ({filename, content}) and/or the number and date."""

    file: dict | None
    number: str | None
    signed_on: date | None


def required(meta: dict, spec_name: str) -> list[str]:
    """What the step records about the result when it approves: "file", "number", both or nothing."""
    return list((meta.get("steps", {}).get(spec_name) or {}).get("result") or [])


def check(change: DossierChange, task: Record, decision: str, given: dict | None) -> ResultEntry | None:
    """The result the step must record with `decision`, checked; refuses a missing or invalid one (and a
    result given to a step or decision that records none). Changes nothing."""
    needs = required(change.meta, task.spec_name)
    if given is not None and not isinstance(given, dict):
        raise InvalidInput("result must be an object {file, number, signed_on}", errors={"result": "an object"})
    given = given or {}
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise InvalidInput("unexpected result fields", errors={f"result.{k}": "not a result field" for k in unknown})
    present = {k for k in FIELDS if given.get(k) not in (None, "", {})}
    if decision != APPROVE or not needs:
        if present:
            why = "this step records no result document" if not needs else \
                "a result document is recorded only when the step is approved"
            raise InvalidInput(why, errors={f"result.{k}": why for k in sorted(present)})
        return None
    errors: dict[str, str] = {}
    pdf = _pdf(given.get("file"), errors) if RESULT_FILE in needs else None
    number = signed_on = None
    if RESULT_NUMBER in needs:
        number = _number(given.get("number"), errors)
        signed_on = _signed_on(change, given.get("signed_on"), errors)
    for key in sorted(present):
        if (key == "file" and RESULT_FILE not in needs) or (key != "file" and RESULT_NUMBER not in needs):
            errors[f"result.{key}"] = "this step does not record it"
    if errors:
        raise ResultRequired("the result document is not complete: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                             errors=errors)
    return ResultEntry(pdf, number, signed_on)


def record(change: DossierChange, task: Record, entry: ResultEntry) -> None:
    """Keep the result with the dossier and audit it (in the change's transaction)."""
    if entry.file is not None:
        content = entry.file["content"]
        stored = files.store(content)
        row = change.add(DossierFile, component_code=FILE_CODE, filename=entry.file["filename"], content_type=PDF_TYPE,
                         size=stored.size, sha256=stored.sha256, storage_key=stored.storage_key, purpose=RESULT_PURPOSE,
                         uploaded_at=change.now)
        change.audit("result_attached", step=task.spec_name, task_id=task.id, file_id=row.id,
                     filename=row.filename, size=stored.size, sha256=stored.sha256)
    if entry.number is not None:
        dossier = change.dossier
        dossier.result_number, dossier.result_signed_on = entry.number, entry.signed_on
        change.audit("result_registered", step=task.spec_name, task_id=task.id, number=entry.number,
                     signed_on=entry.signed_on.isoformat())


# --- checks (they fill `errors`) -----------------------------------------------------------------
def _pdf(given, errors: dict) -> dict | None:
    key = "result.file"
    if not given:
        errors[key] = "attach the signed result document (PDF)"
        return None
    if not isinstance(given, dict):
        errors[key] = "a file {filename, content}"
        return None
    content, filename = given.get("content"), str(given.get("filename") or "").strip()
    if not isinstance(content, (bytes, bytearray)) or not content:
        errors[key] = "the file is empty"
    elif len(content) > files.MAX_FILE_BYTES:
        errors[key] = f"the file is larger than {files.MAX_FILE_BYTES // (1024 * 1024)} MB"
    elif not bytes(content[:5]) == b"%PDF-":
        errors[key] = "not a PDF file (its content does not begin with %PDF-)"
    elif b"%%EOF" not in bytes(content[-2048:]):
        errors[key] = "the PDF is incomplete (it has no end-of-file marker): upload it again"
    elif not filename or "/" in filename or "\\" in filename or len(filename) > 255 or not filename.isprintable():
        errors[key] = "a plain file name is required"
    else:
        return {"filename": filename, "content": bytes(content)}
    return None


def _number(given, errors: dict) -> str | None:
    number = " ".join(str(given or "").split())
    if not number:
        errors["result.number"] = "the document's number is required (số văn bản / số quyết định)"
    elif len(number) > MAX_NUMBER_CHARS or not number.isprintable():
        errors["result.number"] = f"at most {MAX_NUMBER_CHARS} printable characters"
    else:
        return number
    return None


def _signed_on(change: DossierChange, given, errors: dict) -> date | None:
    key = "result.signed_on"
    if given in (None, ""):
        errors[key] = "the signing date is required"
        return None
    if isinstance(given, datetime):
        day = clock.local(given).date()
    elif isinstance(given, date):
        day = given
    else:
        try:
            day = date.fromisoformat(str(given))
        except ValueError:
            errors[key] = "a date (YYYY-MM-DD)"
            return None
    received = clock.local(change.dossier.received_at).date()
    today = clock.local(change.now).date()
    if day > today:
        errors[key] = "the signing date cannot be in the future"
    elif day < received:
        errors[key] = f"the signing date cannot be before the dossier was received ({received.isoformat()})"
    else:
        return day
    return None
