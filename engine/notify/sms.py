"""SMS through an HTTP gateway (a carrier's or an aggregator's brandname SMS API), with urllib.

The built-in adapter, `HttpSmsGateway`, POSTs to MOTCUA_SMS_URL:

    POST <MOTCUA_SMS_URL>
    Content-Type: application/json; charset=utf-8
    Idempotency-Key: <notice uid>
    Authorization: Basic …            (only when the URL carries user:password@)

    {"id": "<notice uid>", "phone": "0912345678", "text": "Da tiep nhan ho so …"}

`phone` is the number the applicant gave, without spaces, dots or dashes; `text` is at most 160
characters of the GSM 7-bit alphabet (engine/notify/messages.py); `id` stays the same when a notice is
sent again after a failure, so the gateway can drop a duplicate. Any 2xx answer means accepted. A 5xx
answer, 408, 425, 429, a timeout or a refused connection is retried later with back-off; any other 4xx
is permanent (the number or the text was refused) and the notice is marked failed.

A gateway with another contract (form fields, its own signature, a brandname parameter) is a small
class with the same `send(phone, text, uid)` method raising `DeliveryError`, given to
`engine.notify.send_pending(..., sms_gateway=...)`.
"""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from engine.notify.errors import DeliveryError

RETRYABLE_4XX = {408, 425, 429}


class HttpSmsGateway:
    def __init__(self, url: str, timeout: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"MOTCUA_SMS_URL must be an http(s) URL, not {url!r}")
        self.auth = None
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.auth = "Basic " + base64.b64encode(pair).decode("ascii")
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        self.url, self.timeout = urlunsplit(parts), timeout

    def send(self, phone: str, text: str, uid: str) -> None:
        number = re.sub(r"[\s.\-()]", "", phone or "")
        if not re.fullmatch(r"\+?\d{8,15}", number):
            raise DeliveryError(f"invalid phone number {phone!r}", permanent=True)
        body = json.dumps({"id": uid, "phone": number, "text": text}, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": uid}
        if self.auth:
            headers["Authorization"] = self.auth
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (the operator's URL)
                status = response.status
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip()
            raise DeliveryError(f"SMS gateway answered HTTP {exc.code}: {detail}",
                                permanent=400 <= exc.code < 500 and exc.code not in RETRYABLE_4XX) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DeliveryError(f"SMS gateway unreachable: {exc}", permanent=False) from None
        if not 200 <= status < 300:
            raise DeliveryError(f"SMS gateway answered HTTP {status}", permanent=False)
