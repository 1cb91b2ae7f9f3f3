"""Domain errors raised by use cases; the web layer maps each class to one HTTP status."""
from __future__ import annotations


class DomainError(Exception):
    """Base class. `code` is stable for integrations; the message says what to do."""

    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class NotAllowed(DomainError):
    """The actor lacks the role or unit for this action."""

    code = "not_allowed"
    http_status = 403


class InvalidInput(DomainError):
    code = "invalid_input"
    http_status = 422

    def __init__(self, message: str, errors: dict | list | None = None, **details):
        super().__init__(message, **details)
        self.errors = errors or {}


class MissingComponents(InvalidInput):
    code = "missing_components"


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class TaskNotReady(Conflict):
    code = "task_not_ready"


class SupplementAlreadyRequested(Conflict):
    code = "supplement_already_requested"


class LateSupplementRequest(Conflict):
    """The window for a supplement request has passed: the caller must confirm it knows (L10)."""

    code = "supplement_request_late"


class ConsultationPending(Conflict):
    """The step asked other units for their opinion; it continues when all answered or the time is up (L8)."""

    code = "consultation_pending"


class SupplementNotRequested(Conflict):
    code = "supplement_not_requested"


class DueDateAlreadyReset(Conflict):
    code = "due_date_already_reset"


class DossierClosed(Conflict):
    code = "dossier_closed"


class ProcedureNotAccepting(Conflict):
    """No version in force, or the legal basis expired."""

    code = "procedure_not_accepting"


class VersionImmutable(Conflict):
    code = "version_immutable"


class BpmnInvalid(InvalidInput):
    code = "bpmn_invalid"

    def __init__(self, message: str, problems: list):
        super().__init__(message, errors=problems)
        self.problems = problems


class WorkflowError(DomainError):
    """The process could not go on from this step (e.g. no gateway condition matched the data, a script
    divided by zero): the change is refused whole and nothing is written. A 422, not a 500: the request
    was understood and the server is sound; the step cannot be completed with this data in this process."""

    code = "workflow_error"
    http_status = 422


class StepLimitExceeded(WorkflowError):
    """A step of the process went past a bound of the engine (an expression or script too slow or too
    large, a working-time count out of range, the dossier's state over its cap): the step fails and the
    dossier is unchanged. 422: a designer must change the process or the data sent must be smaller."""

    code = "step_limit_exceeded"
    http_status = 422
