"""SQLAlchemy 2.0 models: catalog, units and users, dossiers, workflow state, inbox, audit."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from engine.store.db import Base, UTCDateTime

# Dossier statuses (DESIGN.md, HTTP API).
RECEIVED = "received"
PROCESSING = "processing"
AWAITING_SUPPLEMENT = "awaiting_supplement"
RESULT_READY = "result_ready"
RETURNED = "returned"
REFUSED = "refused"
WITHDRAWN = "withdrawn"
OPEN_STATUSES = (RECEIVED, PROCESSING, AWAITING_SUPPLEMENT)

LEVELS = ("trung_uong", "tinh", "huyen", "xa")
ONLINE_LEVELS = ("toan_trinh", "mot_phan")
CHANNELS = ("counter", "online", "post")


class Unit(Base):
    """An agency or office; a tree (province → commune). `code` prefixes dossier codes."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class Role(Base):
    __tablename__ = "roles"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    is_system: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    grants: Mapped[list[RoleGrant]] = relationship(back_populates="user", cascade="all, delete-orphan", lazy="joined")

    def holds(self, role: str, unit_id: int) -> bool:
        return any(g.role == role and g.unit_id == unit_id for g in self.grants)


class RoleGrant(Base):
    """A user holds a role in a unit."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "unit_id", "role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    role: Mapped[str] = mapped_column(ForeignKey("roles.code"))
    user: Mapped[User] = relationship(back_populates="grants")


class LegalDocument(Base):
    __tablename__ = "legal_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)


class Procedure(Base):
    """A procedure (TTHC) as in the national database."""

    __tablename__ = "procedures"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(Text)
    field: Mapped[str] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))
    statutory_days: Mapped[int] = mapped_column(Integer)
    fee: Mapped[str] = mapped_column(String(255), default="")
    online_level: Mapped[str] = mapped_column(String(16))
    supplement_window_days: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    # Days (calendar) the citizen is given to answer a supplement request, when specialised law sets
    # them; None: the engine's default (engine/dossiers/processing.py, SUPPLEMENT_RESPONSE_DAYS).
    supplement_response_days: Mapped[int | None] = mapped_column(Integer)
    components: Mapped[list[dict]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    versions: Mapped[list[ProcedureVersion]] = relationship(back_populates="procedure", order_by="ProcedureVersion.number")
    legal_bases: Mapped[list[LegalDocument]] = relationship(secondary="procedure_legal_bases")


class ProcedureLegalBasis(Base):
    __tablename__ = "procedure_legal_bases"
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id", ondelete="CASCADE"), primary_key=True)
    legal_document_id: Mapped[int] = mapped_column(ForeignKey("legal_documents.id"), primary_key=True)


class ProcessSpec(Base):
    """A serialized SpiffWorkflow spec, stored once and referenced by its hash."""

    __tablename__ = "process_specs"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    serializer_version: Mapped[str] = mapped_column(String(32))
    spec_json: Mapped[str] = mapped_column(Text)


class ProcedureVersion(Base):
    """Immutable once published: the BPMN and the metadata snapshot a dossier runs on."""

    __tablename__ = "procedure_versions"
    __table_args__ = (UniqueConstraint("procedure_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published | retired
    bpmn_xml: Mapped[str] = deferred(mapped_column(Text))
    bpmn_sha256: Mapped[str] = mapped_column(String(64))
    spec_hash: Mapped[str] = mapped_column(ForeignKey("process_specs.hash"))
    process_id: Mapped[str] = mapped_column(String(255))
    # statutory_days, supplement_window_days, components, steps{spec_name: {name, role, duration, decisions}}
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text, default="")
    effective_from: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    procedure: Mapped[Procedure] = relationship(back_populates="versions")


class Dossier(Base):
    """A dossier (hồ sơ) and its workflow instance: one row, one lock, one state document."""

    __tablename__ = "dossiers"
    __table_args__ = (
        Index("ix_dossiers_timer_due_at", "timer_due_at"),
        # Partial indexes of what the timer sweep has pending (migration 0011): the running dossiers not flagged.
        Index("ix_dossiers_legal_due_running", "legal_due_at",
              postgresql_where=text("finished_on IS NULL AND overdue IS false AND clock_paused IS false"),
              sqlite_where=text("finished_on IS NULL AND overdue IS 0 AND clock_paused IS 0")),
        Index("ix_dossiers_unit_status", "unit_id", "status"),
        Index("ix_dossiers_status_due", "status", "due_at"),
        Index("ix_dossiers_applicant_id", "applicant_id_number"),
        Index("ix_dossiers_unit_received_on", "unit_id", "received_on"),
        Index("ix_dossiers_unit_finished_on", "unit_id", "finished_on"),
        Index("ix_dossiers_procedure_received_on", "procedure_id", "received_on"),
        Index("ix_dossiers_received_on", "received_on"),
        # The register (sổ theo dõi, form 07): a running number per unit and year.
        UniqueConstraint("unit_id", "register_year", "register_no", name="uq_dossiers_register_no"),
        Index("ix_dossiers_finished_on", "finished_on"),
        # The work in progress, for the reports' live part: covering on PostgreSQL (index-only scans).
        Index("ix_dossiers_open", "unit_id", "procedure_id",
              postgresql_include=["received_on", "status", "legal_due_at", "clock_paused", "apologized"],
              postgresql_where=text("finished_on IS NULL"), sqlite_where=text("finished_on IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("procedure_versions.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    channel: Mapped[str] = mapped_column(String(16))
    applicant: Mapped[dict[str, Any]] = mapped_column(JSON)
    applicant_id_number: Mapped[str] = mapped_column(String(32))
    # Lower-case, diacritics removed: code, applicant name and phone, for search that ignores accents.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handed_on_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Three dates (engine/dossiers/deadlines.py): `due_at` is the appointment the citizen holds (an
    # apology moves it); `legal_due_at` is the date the law holds the agency to (set at reception,
    # set afresh when a timely supplement arrives, never moved by an apology): lateness is judged on
    # it; `original_due_at` is the first appointment, printed on form 01.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    legal_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    original_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # True while the citizen holds the dossier after a timely supplement request: the processing time
    # is paused (L10) and nothing about it can be late.
    clock_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    register_year: Mapped[int | None] = mapped_column(Integer)
    register_no: Mapped[int | None] = mapped_column(Integer)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    overdue_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late_without_apology: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    apologized: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_via: Mapped[str | None] = mapped_column(String(16))  # counter | post | online (form 07)
    # Reporting columns, set once when the fact happens, so every figure is a plain SQL aggregate:
    # local calendar days (no time-zone arithmetic in SQL) and early/on_time/late judged on the calendar.
    received_on: Mapped[date | None] = mapped_column(Date)
    finished_on: Mapped[date | None] = mapped_column(Date)
    finish_result: Mapped[str | None] = mapped_column(String(8))  # early | on_time | late (deadlines.finish_result)
    steps_result: Mapped[str | None] = mapped_column(String(8))   # worst step: early | on_time | late
    digitised: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))  # scans stored
    supplemented: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The supplement request came after the window (L10): the agency's doing, scored 0 on TT 01 index 3.
    supplement_late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    rating: Mapped[str | None] = mapped_column(String(16))  # the citizen's rating, copied for the reports
    # Workflow instance state; the spec is referenced through version.spec_hash, never copied.
    serializer_version: Mapped[str] = mapped_column(String(32))
    workflow_state: Mapped[str] = deferred(mapped_column(Text))
    timer_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    # Head of the audit hash chain, kept on the locked row so appending needs no extra query.
    audit_seq: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    audit_head: Mapped[str] = mapped_column(String(64), default="0" * 64)
    # The events written before the chain was keyed (migration 0012), sealed then with the audit key:
    # HMAC of the dossier's code and that chain's head (engine/dossiers/audit.py); None when it had none.
    audit_legacy_seal: Mapped[str | None] = mapped_column(String(64))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    # The result document (engine/dossiers/results.py): its number (số văn bản, số quyết định) and signing
    # date, recorded by the step whose diagram says `result = number`; the signed PDF itself is a
    # DossierFile with purpose "result" (the latest one is the result).
    result_number: Mapped[str | None] = mapped_column(String(64))
    result_signed_on: Mapped[date | None] = mapped_column(Date)
    procedure: Mapped[Procedure] = relationship()
    version: Mapped[ProcedureVersion] = relationship()
    unit: Mapped[Unit] = relationship()

    __mapper_args__ = {"version_id_col": lock_version}


RESULT_PURPOSE = "result"  # dossier_files.purpose of the signed result document (engine/dossiers/results.py)


class DossierFile(Base):
    __tablename__ = "dossier_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    component_code: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(16), default="reception")  # reception | supplement | consultation | result
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RegisterSequence(Base):
    """The register's running number per unit and year (the "số" of form 01's register line, form 07)."""

    __tablename__ = "register_sequences"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class DailySequence(Base):
    """Daily dossier sequence per agency code (the XXXX in <agency>-YYMMDD-XXXX)."""

    __tablename__ = "daily_sequences"
    unit_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class HumanTask(Base):
    """Inbox read model: one row per human task, open until completed; kept in the same transaction."""

    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_human_tasks_inbox", "unit_id", "role", "completed_at", "due_at"),
        Index("ix_human_tasks_dossier", "dossier_id"),
        Index("ix_human_tasks_due_open", "due_at", postgresql_where=text("completed_at IS NULL AND late IS false"),
              sqlite_where=text("completed_at IS NULL AND late IS 0")),  # migration 0011: steps to flag late
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task id
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    role: Mapped[str] = mapped_column(String(64))
    spec_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    decisions: Mapped[list[str]] = mapped_column(JSON)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    dossier: Mapped[Dossier] = relationship()


class SupplementRequest(Base):
    """At most one per dossier: the unique constraint is the database's half of the rule."""

    __tablename__ = "supplement_requests"
    __table_args__ = (
        # Migration 0011: the requests the timer sweep may find unanswered.
        Index("ix_supplement_requests_respond_by_open", "respond_by",
              postgresql_where=text("received_at IS NULL AND expired_at IS NULL"),
              sqlite_where=text("received_at IS NULL AND expired_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    step: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    # [{"component": code, "name": component name, "problem": what is wrong}] or, for a document the
    # procedure does not list, {"component": None, "name": ..., "problem": ..., "reason": why it is needed}.
    items: Mapped[list[dict]] = mapped_column(JSON)
    # Asked within the window after reception (L10). A late request does not pause or restart the
    # processing time: the agency bears the delay.
    within_window: Mapped[bool] = mapped_column(Boolean)
    # The date the citizen was asked to answer by; past it the desk is told and may close the dossier.
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the sweep found it unanswered
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    received_note: Mapped[str] = mapped_column(Text, default="")
    previous_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    new_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Consultation(Base):
    """A step asks another unit for its opinion (xin ý kiến, L8): content, a deadline, the answer."""

    __tablename__ = "consultations"
    __table_args__ = (Index("ix_consultations_open", "unit_id", "answered_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))   # the asking step (it waits for the answers)
    step: Mapped[str] = mapped_column(String(255))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))  # the consulted unit
    content: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    asked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer: Mapped[str] = mapped_column(Text, default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Apology(Base):
    """Form 04. The due date may be reset at most once: one row per dossier."""

    __tablename__ = "apologies"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The agency's leader who signed it (L12); the desk may record an apology a leader signed on paper.
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    previous_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    new_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    late: Mapped[bool] = mapped_column(Boolean)


class AuditEvent(Base):
    """Append-only, hash-chained event log per dossier."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("dossier_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # How `hash` is computed (engine/dossiers/audit.py): 1 = unkeyed SHA-256 without the actor's name
    # (events written before migration 0012), 2 = HMAC-SHA256 with the audit key, covering the name.
    chain_version: Mapped[int] = mapped_column(SmallInteger, default=2, server_default=text("1"))


class CalendarDay(Base):
    """A day off or a make-up working day of the working calendar in force (engine/catalog/calendar.py):
    shipped law data (engine/catalog/vn_calendar.toml, loaded by migration 0008) or an admin's change.
    For a year listed in the `calendar_years` setting these rows are the whole list of days off besides
    weekends; other years fall back to the `holidays` package with these rows on top."""

    __tablename__ = "calendar_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # holiday | workday
    note: Mapped[str] = mapped_column(String(255), default="")
    # The document that declares it (decision, notice or official letter number), "" when none.
    source: Mapped[str] = mapped_column(String(255), default="", server_default="")
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: shipped data or the CLI
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CalendarChange(Base):
    """The calendar's audit trail: every day added, changed or removed, every year's status and dated
    law parameter (the transfer cut-off) set, with who, when, old → new, the reason and the source."""

    __tablename__ = "calendar_changes"
    __table_args__ = (Index("ix_calendar_changes_day", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: migration or CLI
    subject: Mapped[str] = mapped_column(String(64))  # day | year | parameter:<key>
    day: Mapped[date | None] = mapped_column(Date)    # the day changed (subject "day")
    old_value: Mapped[Any | None] = mapped_column(JSON)
    new_value: Mapped[Any | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(255), default="")
    # Open dossiers whose dates the change moved (set once they are moved; None: none were asked to move).
    dossiers_moved: Mapped[int | None] = mapped_column(Integer)


class Setting(Base):
    """Law- or office-dependent parameters as data (office hours, the calendar's years, the dated
    transfer cut-off…)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)



class ApiToken(Base):
    """Bearer token for the API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class IdempotencyKey(Base):
    """A retried POST with the same key returns the first result; written in the use case's transaction."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    dossier_code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEvent(Base):
    """Dossier state changes for the national portal, written in the same transaction as the change."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_unsent", "sent_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    dossier_id: Mapped[int | None] = mapped_column(ForeignKey("dossiers.id"))  # none: an audit anchor (0015)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateLimitWindow(Base):
    """Fixed-window request counters shared by every web process (public look-ups)."""

    __tablename__ = "rate_limit_windows"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ServiceRating(Base):
    """The citizen's rating of the service, once per dossier, after the result was handed over."""

    __tablename__ = "service_ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), unique=True)
    rating: Mapped[str] = mapped_column(String(16))  # very_satisfied | satisfied | not_satisfied
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DailyCount(Base):
    """Report counters per unit, procedure and local day (flows: received on that day, finished on
    that day), kept in the same transaction as each change of a dossier's facts (engine.reportfacts).
    The dashboard sums these instead of scanning dossiers."""

    __tablename__ = "daily_counts"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class Notice(Base):
    """A notice to the applicant (e-mail or SMS) about their dossier: receipt with the appointment,
    supplement request, apology or new appointment, refusal, result ready, withdrawal. Written by the
    unit of work in the transaction of the change that causes it (engine/dossiers/notices.py), sent by
    engine/notify (`send_pending`) with retries and back-off; `uid` is its stable identity
    (the e-mail's Message-ID, the SMS gateway's idempotency key)."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_due", "state", "next_attempt_at"),
        Index("ix_notices_dossier", "dossier_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    # receipt | supplement_request | apology | new_appointment | refusal | result_ready | withdrawal
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    recipient: Mapped[str] = mapped_column(String(255))  # the address or phone number, as given at the time
    # The facts the message states, as they were when the change happened (dates as ISO 8601, local time).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # When a sender may next take it: now when queued, later after a failure (back-off) or while one
    # sender holds it (its claim lasts until then).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CounterNotice(Base):
    """Guidance to complete a dossier (form 02, "guidance") or a refusal to receive it (form 03, "refusal")
    given at the counter without receiving anything (L3, engine/dossiers/counter.py): no dossier exists.
    Numbered per unit, year and kind (số …/PBS, số …/PTC). The desk guides once, completely (L2): a second
    guidance to the same applicant for the same procedure at the same unit is issued only after a warning,
    and marked `repeated`."""

    __tablename__ = "counter_notices"
    __table_args__ = (
        UniqueConstraint("unit_id", "year", "kind", "number", name="uq_counter_notices_number"),
        Index("ix_counter_notices_applicant", "unit_id", "procedure_id", "applicant_id_number"),
        Index("ix_counter_notices_unit_day", "unit_id", "issued_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"))
    kind: Mapped[str] = mapped_column(String(16))  # guidance | refusal
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    applicant: Mapped[dict[str, Any]] = mapped_column(JSON)  # as engine/dossiers/applicant.py cleans it
    applicant_id_number: Mapped[str] = mapped_column(String(32))
    # What to complete, as a supplement request lists it: [{"component", "name", "problem"}] or, for a document
    # the procedure does not list, {"component": None, "name", "problem", "reason"}.
    items: Mapped[list[dict]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    repeated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_on: Mapped[date] = mapped_column(Date)  # the local day, for the desk's list of the day


class CounterNoticeSequence(Base):
    """The running number of counter notices per unit, year and kind."""

    __tablename__ = "counter_notice_sequences"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class AuditAnchor(Base):
    """A seal over the audit chains (engine/dossiers/anchors.py): the heads of the dossiers whose logs grew
    since the previous anchor, as of event `up_to_event_id`; anchors form a keyed chain of their own and are
    also written to the outbox and to files outside the database."""

    __tablename__ = "audit_anchors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # previous + 1, under a lock
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    up_to_event_id: Mapped[int] = mapped_column(Integer)  # the highest audit_events.id covered
    dossiers: Mapped[int] = mapped_column(Integer)  # heads in it
    root: Mapped[str] = mapped_column(String(64))  # HMAC over its heads, in dossier order
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))  # HMAC over prev_hash, id, created_at, up_to_event_id, dossiers, root


class AuditAnchorHead(Base):
    """One dossier's chain head in an anchor. No foreign key to the dossier: the head outlives a dossier
    removed with its log, as the evidence that it existed."""

    __tablename__ = "audit_anchor_heads"
    __table_args__ = (Index("ix_audit_anchor_heads_dossier", "dossier_id", "anchor_id"),)
    anchor_id: Mapped[int] = mapped_column(ForeignKey("audit_anchors.id"), primary_key=True)
    dossier_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head: Mapped[str] = mapped_column(String(64))
