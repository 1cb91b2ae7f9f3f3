"""Notices to the applicant by e-mail and SMS (issue #13, L4, L12, L13).

Queued by the unit of work in the transaction of the change that causes them
(engine/dossiers/notices.py, one `notices` row per channel), sent here by `send_pending`, run by
`motcua notices send` (or any worker) — with retries, back-off and a claim that keeps two senders
from sending the same notice.

Settings (environment):
    MOTCUA_SMTP_URL    smtp://host:port · smtp+starttls://user:pass@host:587 · smtps://user:pass@host:465
    MOTCUA_MAIL_FROM   the From address, e.g. "Bộ phận một cửa <motcua@xa-tanlac.gov.vn>"
    MOTCUA_SMS_URL     the SMS gateway (engine/notify/sms.py: POST JSON {"id", "phone", "text"})
    MOTCUA_PUBLIC_URL  the web app's public address, for the look-up link (…/tra-cuu?ma=<code>)
A channel without its setting is not sent: its notices wait (shown "Chờ gửi" on the dossier page).

Depends on engine.store only (and engine.clock): never on engine.dossiers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from engine.notify.errors import DeliveryError
from engine.notify.mail import SmtpMailer
from engine.notify.sender import FAILED, MAX_ATTEMPTS, PENDING, SENT, SendReport, backoff_delay, send_pending
from engine.notify.sms import HttpSmsGateway


@dataclass(frozen=True)
class Settings:
    smtp_url: str | None
    sender: str | None
    sms_url: str | None
    public_url: str | None

    @classmethod
    def from_env(cls) -> Settings:
        def get(name):
            return os.environ.get(name) or None
        return cls(get("MOTCUA_SMTP_URL"), get("MOTCUA_MAIL_FROM"), get("MOTCUA_SMS_URL"), get("MOTCUA_PUBLIC_URL"))

    def kwargs(self) -> dict:
        """Keyword arguments for `send_pending`."""
        return {"smtp_url": self.smtp_url, "sender": self.sender, "sms_url": self.sms_url, "public_url": self.public_url}


__all__ = ["FAILED", "MAX_ATTEMPTS", "PENDING", "SENT", "DeliveryError", "HttpSmsGateway", "SendReport", "Settings",
           "SmtpMailer", "backoff_delay", "send_pending"]
