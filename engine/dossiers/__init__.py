"""Dossier use cases — what staff, citizens and the timer do to a dossier. Each is one function,
one unit of work (engine.dossiers.change), one commit. Import them from here."""
from engine.dossiers.assignment import Assignment, TaskTaken, assign_task, claim_task, release_task
from engine.dossiers.consultations import AlreadyAnswered, answer_opinion, ask_opinions
from engine.dossiers.outcomes import (
    RATINGS,
    AlreadyRated,
    issue_apology,
    rate_service,
    refuse_dossier,
    return_result,
    withdraw_dossier,
)
from engine.dossiers.processing import (
    Completion,
    complete_task,
    deliver_supplement,
    deliver_supplement_once,
    request_supplement,
)
from engine.dossiers.reception import IdempotencyMismatch, get_dossier, receive_dossier, receive_dossier_once

__all__ = [
    "RATINGS", "AlreadyAnswered", "AlreadyRated", "Assignment", "Completion", "TaskTaken", "answer_opinion",
    "ask_opinions", "assign_task", "claim_task", "release_task",
    "IdempotencyMismatch", "complete_task", "deliver_supplement",
    "deliver_supplement_once", "get_dossier", "issue_apology", "rate_service", "receive_dossier",
    "receive_dossier_once", "refuse_dossier", "request_supplement", "return_result", "withdraw_dossier",
]
