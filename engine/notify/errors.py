"""A notice that could not be delivered."""
from __future__ import annotations


class DeliveryError(Exception):
    """The mail server or the SMS gateway did not take the notice. `permanent`: trying again cannot help
    (the address or number was refused, the message rejected); otherwise it is retried with back-off."""

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent
