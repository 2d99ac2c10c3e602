"""The HTTP client for developer webhooks: one signed POST to an endpoint through the SSRF guard.

The URL is checked again at every attempt (`generation.inputs.public_url_check`: the name
resolved once, every address public) and the connection goes to the address that was checked,
with the endpoint's name as Host, SNI and certificate name, so a DNS answer that changes between
the check and the connection (rebinding) is never used. Redirects are not followed (a 3xx is a
failed attempt, shown with its code); environment proxies are ignored (they would resolve the
name themselves). Only the status line and headers are read, the body is discarded unread.

The whole attempt (connects, TLS handshake, sending, status line and headers) ends at a wall-clock
deadline, `attempt_deadline()` = DEVELOPER_WEBHOOK_TIMEOUT seconds after it starts, whatever the
server does: a server that drips its headers a byte at a time is cut off there, not after a
timeout per read. At most MAX_ADDRESSES of the name's checked addresses are tried, each connect
getting at most half the deadline. The connection is the image fetcher's own
(`generation.inputs.pinned_pool`: the checked address, the deadline on every step). The name's
resolution comes before the deadline starts (the system resolver's own timeouts bound it); the
claim lease and the task's time limit (services.py, tasks.py) leave room for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ssl
import time
from dataclasses import dataclass

import urllib3
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import SSLError as Urllib3SSLError

from generation.errors import InvalidInput
from generation.inputs import pinned_pool, public_url_check

USER_AGENT = "AtelierWebhooks/1.0 (+https://standardwebhooks.com)"
SECRET_PREFIX = "whsec_"
MAX_ADDRESSES = 2  # of the name's checked addresses, tried in order while the first refuses


def attempt_deadline() -> float:
    """Seconds one attempt may take from its first connect to the last header, wall clock."""
    return float(settings.DEVELOPER_WEBHOOK_TIMEOUT)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # None: no HTTP answer (see `error`)
    error: str  # why there was no answer, or "" when there was one
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def check_url(url: str) -> None:
    """The registration check: raises InvalidInput (field "url") for an address we would not send to."""
    _target(url)


def _target(url: str):
    return public_url_check(
        url, schemes=("https",), allowed_private_hosts=settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS, field="url"
    )


def sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header, Standard Webhooks v1: base64 HMAC-SHA256 of
    "{id}.{timestamp}.{body}" keyed with the base64-decoded part of the secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def post(*, url: str, secret: str, message_id: str, body: bytes) -> Outcome:
    """Send one signed delivery. Never raises for a network or address problem: the outcome says."""
    started = time.monotonic()

    def outcome(status_code: int | None, error: str = "") -> Outcome:
        return Outcome(status_code, error[:300], int((time.monotonic() - started) * 1000))

    try:
        target = _target(url)
    except InvalidInput as exc:
        return outcome(None, f"Refused before sending: {exc}")
    timestamp = int(time.time())
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, message_id=message_id, timestamp=timestamp, body=body),
    }
    seconds = attempt_deadline()
    deadline = time.monotonic() + seconds
    failure: Exception | None = None
    for address in target.addresses[:MAX_ADDRESSES]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            failure = TimeoutError("the webhook attempt's deadline passed")
            break
        # A connect gets at most half the deadline, so a second address still has a chance.
        timeout = urllib3.Timeout(connect=min(seconds / 2, remaining), read=remaining)
        pool = pinned_pool(target, address, timeout, deadline=deadline)
        try:
            response = pool.urlopen(
                "POST",
                target.request_target,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
                timeout=timeout,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            failure = exc  # the next checked address of the same name
            pool.close()
            continue
        except (Urllib3HTTPError, http.client.HTTPException, OSError) as exc:
            pool.close()
            return outcome(None, _describe(exc, seconds))
        try:
            return outcome(response.status)
        finally:
            response.close()  # the body is not read: we only need the status
            pool.close()
    return outcome(None, _describe(failure, seconds) if failure else "No address to connect to.")


def _describe(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, NewConnectionError):  # a subclass of ConnectTimeoutError in urllib3
        return "Could not connect (connection refused or unreachable)."
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return f"No answer within {seconds:g} seconds."
    if isinstance(exc, Urllib3SSLError | ssl.SSLError | ssl.CertificateError):
        return "The HTTPS certificate could not be verified."
    return "The connection broke before an answer arrived."
