"""E-mail through SMTP with the standard library (smtplib).

MOTCUA_SMTP_URL says where and how:
    smtp://host[:port]                      plain SMTP (port 25), e.g. a local relay
    smtp+starttls://user:pass@host[:port]   STARTTLS (port 587), then login when a user is given
    smtps://user:pass@host[:port]           SMTP over TLS (port 465)
User and password are URL-encoded (`%40` for `@`). MOTCUA_MAIL_FROM is the From address, with a display
name if wanted: `Bộ phận một cửa <motcua@example.gov.vn>`.
"""
from __future__ import annotations

import smtplib
import ssl
from email.header import Header
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import unquote, urlsplit

from engine import clock
from engine.notify.errors import DeliveryError

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class SmtpMailer:
    """Sends plain-text UTF-8 e-mail; keeps one connection open across a batch (`close()` ends it)."""

    def __init__(self, url: str, sender: str, timeout: float = 20.0):
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"MOTCUA_SMTP_URL must be smtp://, smtp+starttls:// or smtps://host[:port], not {url!r}")
        if not sender or "@" not in parseaddr(sender)[1]:
            raise ValueError("MOTCUA_MAIL_FROM (the sender's address) is not set")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or SCHEMES[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""
        self.sender, self.timeout = sender, timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            if self.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.scheme == "smtp+starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            self._smtp = smtp
        return self._smtp

    def message(self, to: str, subject: str, body: str, uid: str) -> MIMEText:
        """The message, UTF-8. Built with the compat32 API on purpose: its RFC 2047 encoding of a long
        Vietnamese subject keeps the spaces between encoded words, which EmailMessage's folder (Python
        3.11) drops ("xin lỗivà")."""
        msg = MIMEText(body, "plain", "utf-8")
        name, address = parseaddr(self.sender)
        msg["From"] = formataddr((name, address), charset="utf-8")
        msg["To"] = to
        msg["Subject"] = Header(subject, "utf-8")
        msg["Date"] = format_datetime(clock.now())
        msg["Message-ID"] = f"<{uid}@{address.rpartition('@')[2] or 'motcua'}>"
        return msg

    def send(self, to: str, subject: str, body: str, uid: str) -> None:
        """Deliver one e-mail; raises DeliveryError (permanent when the server refused the recipient
        or the message with a 5xx answer; otherwise it is worth trying again)."""
        local, _, domain = to.rpartition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>,;" for c in to):
            raise DeliveryError(f"invalid e-mail address {to!r}", permanent=True)
        msg = self.message(to, subject, body, uid)
        try:
            self._connect().send_message(msg, from_addr=parseaddr(self.sender)[1], to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=all(c >= 500 for c in codes)) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
            self.close()  # the configuration, not this notice: try again once it is fixed
            raise DeliveryError(f"SMTP: {exc}", permanent=False) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                                permanent=exc.smtp_code >= 500 and isinstance(exc, smtplib.SMTPDataError)) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", permanent=False) from None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
