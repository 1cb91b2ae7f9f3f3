"""Procedure catalog: procedures, legal bases, immutable numbered versions, loading processes/."""
from __future__ import annotations

import hashlib
import re
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.access import policy
from engine.access.actors import load_actor
from engine.catalog.calendar import load_calendar
from engine.errors import BpmnInvalid, Conflict, InvalidInput, NotFound, ProcedureNotAccepting, VersionImmutable
from engine.store.db import PendingChanges, write_transaction
from engine.store.models import (
    LEVELS,
    ONLINE_LEVELS,
    LegalDocument,
    Procedure,
    ProcedureVersion,
    ProcessSpec,
    Role,
    Unit,
)
from engine.workflow import validation
from engine.workflow.runtime import SERIALIZER_VERSION

CODE_RE = re.compile(r"^[1-3]\.\d{6}$")


def known_units(session: Session) -> set[str]:
    return set(session.scalars(select(Unit.code)))


def known_roles(session: Session) -> set[str]:
    return set(session.scalars(select(Role.code).where(Role.is_system.is_(False))))


def _validate_procedure_fields(data: dict) -> dict:
    errors: dict[str, str] = {}
    if not CODE_RE.match(str(data.get("code", ""))):
        errors["code"] = "procedure code must look like 1.004227"
    for key in ("name", "field"):
        if not str(data.get(key, "")).strip():
            errors[key] = "required"
    if data.get("level") not in LEVELS:
        errors["level"] = f"one of {', '.join(LEVELS)}"
    if data.get("online_level") not in ONLINE_LEVELS:
        errors["online_level"] = f"one of {', '.join(ONLINE_LEVELS)}"
    days = data.get("statutory_days")
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 365:
        errors["statutory_days"] = "a whole number of working days between 0 and 365"
    respond = data.get("supplement_response_days")
    if respond is not None and (not isinstance(respond, int) or isinstance(respond, bool) or not 1 <= respond <= 365):
        errors["supplement_response_days"] = "a whole number of days between 1 and 365"
    seen = set()
    for i, comp in enumerate(data.get("components") or []):
        code = str(comp.get("code", "")).strip()
        if not code or not str(comp.get("name", "")).strip():
            errors[f"components.{i}"] = "each component needs a code and a name"
        elif code in seen:
            errors[f"components.{i}"] = f"duplicate component code {code}"
        seen.add(code)
    if errors:
        raise InvalidInput("the procedure is not valid", errors=errors)
    return data


def _put_procedure(session: Session, data: dict, *, create_only: bool = False) -> Procedure:
    """Create (or, for catalog loading, update) a procedure with its components and legal bases."""
    _validate_procedure_fields(data)
    proc = session.scalar(select(Procedure).where(Procedure.code == data["code"]))
    if proc is not None and create_only:
        raise Conflict(f"procedure {data['code']} already exists")
    if proc is None:
        proc = Procedure(code=data["code"], created_at=clock.now())
        session.add(proc)
    proc.name = data["name"].strip()
    proc.field = data["field"].strip()
    proc.level = data["level"]
    proc.statutory_days = data["statutory_days"]
    proc.fee = str(data.get("fee", ""))
    proc.online_level = data["online_level"]
    proc.supplement_window_days = int(data.get("supplement_window_days", 3))
    proc.supplement_response_days = data.get("supplement_response_days")
    proc.components = [
        {"code": str(c["code"]).strip(), "name": str(c["name"]).strip(), "required": bool(c.get("required", True)),
         "copies": int(c.get("copies", 1))}
        for c in data.get("components") or []
    ]
    bases = []
    numbers = [str(b.get("number", "")) for b in data.get("legal_bases") or []]
    twice = {f"legal_bases.{i}.number": "this legal document is already listed" for i, n in enumerate(numbers)
             if n in numbers[:i]}
    if twice:
        raise InvalidInput("a legal document is listed twice among the legal bases", errors=twice)
    for basis in data.get("legal_bases") or []:
        doc = session.scalar(select(LegalDocument).where(LegalDocument.number == basis["number"]))
        if doc is None:
            doc = LegalDocument(number=basis["number"])
            session.add(doc)
        doc.title = basis.get("title", doc.title or "")
        doc.effective_from = _as_date(basis.get("effective_from")) or doc.effective_from or date(1900, 1, 1)
        doc.expires_on = _as_date(basis.get("expires_on"))
        bases.append(doc)
    proc.legal_bases = bases
    session.flush()
    return proc


def _as_date(value) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"'{value}' is not a date (YYYY-MM-DD)", errors={"date": str(value)}) from None


@dataclass(frozen=True)
class _Checked:
    """A validation done before the write transaction, with what it was checked against."""

    result: validation.Result
    basis: tuple


def _validation_basis(session: Session, statutory_days: int | None) -> tuple:
    """What a version's validation depends on besides the file: the procedure's statutory time, the roles,
    the units and the working calendar (validation reads the length of its working day)."""
    return statutory_days, frozenset(known_roles(session)), frozenset(known_units(session)), load_calendar(session)


def _validate(bpmn: str | bytes, basis: tuple) -> validation.Result:
    statutory_days, roles, units, calendar = basis
    return validation.validate(bpmn, statutory_days, set(roles), calendar, set(units))


def _check_outside_transaction(session: Session, actor_id: int | None, procedure_code: str,
                               bpmn: str | bytes) -> _Checked:
    """Authorize and validate a BPMN before the use case's write transaction begins: validation takes up
    to a second or so on the largest accepted file, and SQLite's write lock (BEGIN IMMEDIATE) must not be
    held meanwhile (a concurrent login would wait, then fail with "database is locked"). The reads end
    (rolled back, as `begin_write` would) before validating; `_add_version` checks, inside the write
    transaction, that nothing it was validated against has changed since (validating again if it has)."""
    _refuse_pending(session)
    if actor_id is not None:
        policy.require(load_actor(session, actor_id), "process.design", session=session)
    basis = _validation_basis(session, get_procedure(session, procedure_code).statutory_days)
    session.rollback()  # end the read transaction: validation holds no database state
    return _Checked(_validate(bpmn, basis), basis)


def _refuse_pending(session: Session) -> None:
    """As `begin_write` would, before the reads that precede it (which would otherwise autoflush)."""
    if session.in_transaction() and (session.new or session.deleted
                                     or any(session.is_modified(o) for o in session.dirty)):
        raise PendingChanges("commit or roll back the session's own changes before calling a use case")


def _check_files(session: Session, directory: Path, actor_id: int | None) -> dict[tuple, _Checked]:
    """`load_processes`' validations, before its write transaction: for each BPMN file its procedure does
    not have yet ((code, sha256 of the text)), validated against the statutory time procedure.toml gives."""
    _refuse_pending(session)
    if actor_id is not None:
        policy.require(load_actor(session, actor_id), "catalog.manage", session=session)
    stored = {(code, sha) for code, sha in session.execute(
        select(Procedure.code, ProcedureVersion.bpmn_sha256)
        .join(ProcedureVersion, ProcedureVersion.procedure_id == Procedure.id))}
    todo = []
    for toml_path in sorted(Path(directory).glob("*/procedure.toml")):
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        days = data.get("statutory_days")
        if not isinstance(days, int) or isinstance(days, bool):
            continue  # _put_procedure refuses it, inside
        for entry in data.get("versions", []):
            xml = (toml_path.parent / entry["file"]).read_text(encoding="utf-8")
            sha = hashlib.sha256(xml.encode("utf-8")).hexdigest()
            if (data.get("code"), sha) not in stored:
                todo.append(((data.get("code"), sha), xml, days))
    if not todo:
        return {}
    _, roles, units, calendar = _validation_basis(session, None)
    session.rollback()
    checked = {}
    for key, xml, days in todo:
        basis = (days, roles, units, calendar)
        checked[key] = _Checked(_validate(xml, basis), basis)
    return checked


def _add_version(session: Session, procedure_code: str, bpmn_xml: str | bytes,
                 notes: str = "", checked: _Checked | None = None) -> tuple[ProcedureVersion, list]:
    """Validate and store a new draft version. Raises BpmnInvalid (with every problem) if not executable.
    With `checked` (validated before the transaction) the file is validated again only if the procedure's
    statutory time, the roles, the units or the working day changed in between."""
    proc = get_procedure(session, procedure_code)
    basis = _validation_basis(session, proc.statutory_days)
    result = checked.result if checked is not None and checked.basis == basis else _validate(bpmn_xml, basis)
    if not result.valid:
        raise BpmnInvalid("the BPMN is not executable", [p.as_dict() for p in result.problems])
    xml_text = result.text  # decoded per its BOM or XML declaration (UTF-16, ISO-8859-1… stored as text)
    parsed = result.parsed
    if session.get(ProcessSpec, parsed.spec_hash) is None:
        session.add(ProcessSpec(hash=parsed.spec_hash, serializer_version=SERIALIZER_VERSION, spec_json=parsed.spec_json))
    number = (session.scalar(
        select(ProcedureVersion.number).where(ProcedureVersion.procedure_id == proc.id)
        .order_by(ProcedureVersion.number.desc()).limit(1)
    ) or 0) + 1
    meta = {
        "statutory_days": proc.statutory_days,
        "supplement_window_days": proc.supplement_window_days,
        "supplement_response_days": proc.supplement_response_days,
        "components": proc.components,
        "steps": {s.id: {"name": s.name, "role": s.role, "duration": s.duration, "decisions": s.decisions,
                         "unit": s.unit, "labels": s.labels, "result": s.result}
                  for s in result.model.steps.values()},
        "supplement_events": result.model.supplement_events,
        # The legal bases this version was drawn up under (the procedure's list can change later).
        "legal_bases": [b.number for b in proc.legal_bases],
    }
    version = ProcedureVersion(
        procedure_id=proc.id, number=number, status="draft", bpmn_xml=xml_text,
        bpmn_sha256=hashlib.sha256(xml_text.encode("utf-8")).hexdigest(), spec_hash=parsed.spec_hash,
        process_id=parsed.process_id, meta=meta, notes=notes, created_at=clock.now(),
    )
    session.add(version)
    session.flush()
    return version, [p.as_dict() for p in result.problems]


def get_version(session: Session, procedure_code: str, number: int) -> ProcedureVersion:
    proc = get_procedure(session, procedure_code)
    version = session.scalar(select(ProcedureVersion).where(
        ProcedureVersion.procedure_id == proc.id, ProcedureVersion.number == number))
    if version is None:
        raise NotFound(f"procedure {procedure_code} has no version {number}")
    return version


def _publish(session: Session, procedure_code: str, number: int, effective_from: date) -> ProcedureVersion:
    version = get_version(session, procedure_code, number)
    if version.status != "draft":
        raise VersionImmutable(f"version {number} is already {version.status}; publish a new version instead")
    if version.procedure.level == "huyen" and effective_from >= DISTRICTS_ABOLISHED:
        raise DistrictLevelAbolished(
            f"procedure {procedure_code} is a district-level (huyen) procedure: the district level was abolished on "
            f"{DISTRICTS_ABOLISHED:%d/%m/%Y}; move it to the commune (xa) or province (tinh) level before publishing "
            "a version in force after that date", errors={"effective_from": f"before {DISTRICTS_ABOLISHED.isoformat()}",
                                                           "level": "xa or tinh"})
    version.status = "published"
    version.effective_from = effective_from
    version.published_at = clock.now()
    session.flush()
    return version


# Two-tier local government since 1/7/2025 (Luật Tổ chức chính quyền địa phương 2025; the National
# Assembly's resolution of 12/6/2025): no district level (LEGAL.md, "What is in force").
DISTRICTS_ABOLISHED = date(2025, 7, 1)


class DistrictLevelAbolished(InvalidInput):
    code = "district_level_abolished"


def get_procedure(session: Session, code: str) -> Procedure:
    proc = session.scalar(select(Procedure).where(Procedure.code == code))
    if proc is None:
        raise NotFound(f"no procedure with code {code}")
    return proc


def expired_bases(proc: Procedure, on: date) -> list[LegalDocument]:
    return [b for b in proc.legal_bases if (b.expires_on is not None and b.expires_on <= on) or b.effective_from > on]


def version_in_force(session: Session, proc: Procedure, on: date) -> ProcedureVersion:
    """The published version a dossier received on `on` runs on; refuses if the legal basis lapsed."""
    lapsed = expired_bases(proc, on)
    if lapsed:
        raise ProcedureNotAccepting(
            f"procedure {proc.code} accepts no dossiers: legal basis {', '.join(b.number for b in lapsed)} "
            f"is not in force on {on.isoformat()}")
    version = session.scalar(
        select(ProcedureVersion).where(
            ProcedureVersion.procedure_id == proc.id, ProcedureVersion.status == "published",
            ProcedureVersion.effective_from <= on,
        ).order_by(ProcedureVersion.effective_from.desc(), ProcedureVersion.number.desc()).limit(1)
    )
    if version is None:
        raise ProcedureNotAccepting(f"procedure {proc.code} has no version in force on {on.isoformat()}")
    return version


def load_processes(session: Session, directory: Path, *, actor_id: int | None) -> list[str]:
    """Load every <code>/procedure.toml (+ its BPMN versions). Idempotent: an unchanged BPMN is not
    stored twice and a published version is never altered. Returns what was done, line by line."""
    report: list[str] = []
    checked = _check_files(session, directory, actor_id)  # validated before the write transaction
    with _catalog_change(session, actor_id, "catalog.manage"):
        _load(session, directory, report, checked)
    return report


def _load(session: Session, directory: Path, report: list[str], checked: dict[tuple, _Checked]) -> None:
    for toml_path in sorted(Path(directory).glob("*/procedure.toml")):
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        proc = _put_procedure(session, data)
        existing = {v.bpmn_sha256: v for v in session.scalars(
            select(ProcedureVersion).where(ProcedureVersion.procedure_id == proc.id))}
        for entry in data.get("versions", []):
            xml = (toml_path.parent / entry["file"]).read_text(encoding="utf-8")
            sha = hashlib.sha256(xml.encode("utf-8")).hexdigest()
            version = existing.get(sha)
            if version is None:
                version, _problems = _add_version(session, proc.code, xml, entry.get("notes", ""), checked.get((proc.code, sha)))
                report.append(f"{proc.code}: stored {entry['file']} as version {version.number}")
            if version.status == "draft" and entry.get("effective_from"):
                _publish(session, proc.code, version.number, _as_date(entry["effective_from"]))
                report.append(f"{proc.code}: published version {version.number} from {entry['effective_from']}")
        if not report or not report[-1].startswith(proc.code):
            report.append(f"{proc.code}: up to date")


# --- use cases (each one transaction; `actor_id=None` is the operator at the command line) ----------
@contextmanager
def _catalog_change(session: Session, actor_id: int | None, permission: str):
    """Begin the use case's write transaction, authorize, commit once on exit (roll back on error)."""
    with write_transaction(session):
        if actor_id is not None:
            policy.require(load_actor(session, actor_id), permission, session=session)
        yield


def list_procedures(session: Session) -> list[Procedure]:
    return list(session.scalars(select(Procedure).order_by(Procedure.code)))


def procedures_accepting(session: Session, day: date) -> list[tuple[Procedure, ProcedureVersion]]:
    """The procedures a desk can receive on `day`, each with the version a dossier would run on."""
    out = []
    for proc in list_procedures(session):
        try:
            out.append((proc, version_in_force(session, proc, day)))
        except ProcedureNotAccepting:
            continue
    return out


def create_procedure(session: Session, *, actor_id: int | None, data: dict) -> Procedure:
    with _catalog_change(session, actor_id, "catalog.manage"):
        proc = _put_procedure(session, data, create_only=True)
    return proc


def submit_version(session: Session, *, actor_id: int | None, procedure_code: str, bpmn: str | bytes,
                   notes: str = "") -> tuple[ProcedureVersion, list]:
    """Validate and store a new draft version. Raises BpmnInvalid (with every problem) if not executable.
    The file is validated before the write transaction begins (`_check_outside_transaction`)."""
    checked = _check_outside_transaction(session, actor_id, procedure_code, bpmn)
    if not checked.result.valid:  # refused without taking the write lock at all
        raise BpmnInvalid("the BPMN is not executable", [p.as_dict() for p in checked.result.problems])
    with _catalog_change(session, actor_id, "process.design"):
        version, problems = _add_version(session, procedure_code, bpmn, notes, checked)
    return version, problems


def publish_version(session: Session, *, actor_id: int | None, procedure_code: str, number: int,
                    effective_from: date) -> ProcedureVersion:
    with _catalog_change(session, actor_id, "catalog.manage"):
        version = _publish(session, procedure_code, number, effective_from)
    return version


def retire_version(session: Session, *, actor_id: int | None, procedure_code: str, number: int) -> ProcedureVersion:
    """Stop offering a published version for new dossiers; running dossiers keep it."""
    with _catalog_change(session, actor_id, "catalog.manage"):
        version = _retire(session, procedure_code, number)
    return version


def _retire(session: Session, procedure_code: str, number: int) -> ProcedureVersion:
    version = get_version(session, procedure_code, number)
    if version.status != "published":
        raise VersionImmutable(f"version {number} is {version.status}; only a published version can be retired")
    version.status = "retired"
    session.flush()
    return version


def update_legal_document(session: Session, *, actor_id: int | None, number: str, title: str | None = None,
                          effective_from: date | None = None,
                          expires_on: date | None | str = "keep") -> LegalDocument:
    """Record a change of a legal document's dates (e.g. it is replaced and expires)."""
    with _catalog_change(session, actor_id, "catalog.manage"):
        doc = _update_legal_document(session, number, title, effective_from, expires_on)
    return doc


def _update_legal_document(session, number, title, effective_from, expires_on) -> LegalDocument:
    doc = session.scalar(select(LegalDocument).where(LegalDocument.number == number))
    if doc is None:
        raise NotFound(f"no legal document {number}")
    if title is not None:
        doc.title = title.strip()
    if effective_from is not None:
        doc.effective_from = effective_from
    if expires_on != "keep":
        doc.expires_on = expires_on
    if doc.expires_on is not None and doc.expires_on <= doc.effective_from:
        raise InvalidInput("a document must expire after it takes effect", errors={"expires_on": "after effective_from"})
    session.flush()
    return doc


def basis_warnings(session: Session, today: date, within_days: int = 30) -> list[dict]:
    """Procedures whose legal basis has expired (they accept no dossiers) or expires within `within_days`."""
    out = []
    for proc in list_procedures(session):
        for doc in proc.legal_bases:
            if doc.expires_on is None or (doc.expires_on - today).days > within_days:
                continue
            out.append({"procedure": proc, "document": doc, "expired": doc.expires_on <= today,
                        "days_left": (doc.expires_on - today).days})
    return sorted(out, key=lambda w: (w["document"].expires_on, w["procedure"].code))


def export_catalog(session: Session) -> list[dict]:
    """The catalog in the national TTHC database's shape (NĐ 63/2010 Đ8(2); TT 01/2018 Đ16)."""
    return [{
        "code": p.code, "name": p.name, "field": p.field, "level": p.level, "statutory_days": p.statutory_days,
        "fee": p.fee, "online_level": p.online_level, "supplement_window_days": p.supplement_window_days,
        "supplement_response_days": p.supplement_response_days,
        "components": p.components,
        "legal_bases": [{"number": b.number, "title": b.title, "effective_from": b.effective_from.isoformat(),
                         "expires_on": b.expires_on.isoformat() if b.expires_on else None} for b in p.legal_bases],
        "versions": [{"number": v.number, "status": v.status, "bpmn_sha256": v.bpmn_sha256,
                      "effective_from": v.effective_from.isoformat() if v.effective_from else None}
                     for v in p.versions],
    } for p in list_procedures(session)]


def import_catalog(session: Session, *, actor_id: int | None, data) -> list[str]:
    """Create or update procedures from an export (metadata, components, legal bases; BPMN versions are
    submitted separately). All or nothing: one invalid record and nothing is written."""
    if not isinstance(data, list):
        raise InvalidInput("the catalog must be a JSON list of procedures", errors={"catalog": "list"})
    done, errors = [], {}
    with _catalog_change(session, actor_id, "catalog.manage"):
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                errors[str(i)] = "not an object"
                continue
            record = {k: v for k, v in record.items() if k != "versions"}
            try:
                with session.begin_nested():
                    _put_procedure(session, record)
                done.append(record["code"])
            except InvalidInput as exc:
                errors[str(record.get("code", i))] = exc.errors
        if errors:
            raise InvalidInput("some procedures are not valid; nothing was imported", errors=errors)
    return done


def diff_versions(session: Session, procedure_code: str, a: int, b: int) -> dict:
    """Which steps were added or removed, and which changed name, role (lane), duration or decisions."""
    proc = get_procedure(session, procedure_code)
    versions = {v.number: v for v in proc.versions}
    if a not in versions or b not in versions:
        raise NotFound(f"procedure {procedure_code} has no version {a if a not in versions else b}")
    old, new = versions[a].meta["steps"], versions[b].meta["steps"]
    changed = []
    for step_id in sorted(set(old) & set(new)):
        fields = {k: (old[step_id].get(k), new[step_id].get(k)) for k in ("name", "role", "duration", "decisions")
                  if old[step_id].get(k) != new[step_id].get(k)}
        if fields:
            changed.append({"step": step_id, "name": new[step_id].get("name") or old[step_id].get("name"),
                            "changes": fields})
    return {
        "added": [{"step": s, **new[s]} for s in sorted(set(new) - set(old))],
        "removed": [{"step": s, **old[s]} for s in sorted(set(old) - set(new))],
        "changed": changed,
        "statutory_days": (versions[a].meta["statutory_days"], versions[b].meta["statutory_days"]),
    }
