"""Stripe API stand-in: localstripe, plus the Prices, Checkout and Billing Portal calls that
billing/stripe_api.py makes.

localstripe (a stateful fake of Stripe's v1 API) has no Prices, Checkout Sessions or Billing
Portal and answers in 2017-era shapes. `StripeAPIServer` listens on one base URL, serves the
endpoints below itself (form-encoded requests, JSON answers, Stripe-style errors) and forwards
everything else to localstripe, so the real `stripe` library works against one URL:

    server = StripeAPIServer("http://127.0.0.1:8420").start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})

Served here (state in memory; any other parameter is a 400 "Received unknown parameter"):
  POST /v1/prices                      product or product_data[name], unit_amount, currency,
                                       recurring[interval], nickname, metadata, lookup_key,
                                       transfer_lookup_key. A recurring price is also created in
                                       localstripe as a Plan with the same id, for subscriptions.
  GET  /v1/prices                      lookup_keys[], active, limit (newest first)
  POST /v1/checkout/sessions           mode (payment|subscription), customer (required for a
                                       subscription here), line_items[price, quantity] (one
                                       recurring price for a subscription), success_url,
                                       cancel_url, client_reference_id, metadata,
                                       payment_intent_data[metadata], subscription_data[metadata]
  GET  /v1/checkout/sessions/{id}
  POST /v1/billing_portal/sessions     customer, return_url
  GET  /v1/invoice_payments            invoice or payment[payment_intent]
  GET  /v1/disputes[/{id}]             the published disputes only (localstripe has none)
  GET/POST /pay/{id}, GET /portal/{id} the hosted checkout page (a card number field; pays and
                                       redirects to success_url) and the billing portal page

Forwarded to localstripe: customers, products, plans, subscriptions, payment_intents,
payment_methods, refunds, invoices, charges, `/_config/...`. Its JSON answers are reshaped to the
installed library's API version by `_modernize`: invoices lose `payment_intent`/`charge` (see
/v1/invoice_payments), charges lose `invoice`, subscriptions keep their period on their items, a
PaymentIntent's `latest_charge` is an id, and items and invoice lines get live Stripe's decimal
strings. A 5xx from localstripe is relayed with `Stripe-Should-Retry: false`.

Published objects: `put(...)` holds objects in live Stripe's full shapes
(tests/fakes/stripe_shapes.py); `GET /v1/<resource>/<id>` answers them before localstripe is
asked, disputes and invoice payments are listed from them; `unpublish_all()` forgets them.

Everywhere: an `Idempotency-Key` on a POST replays the stored 2xx/402 answer (with
`Idempotent-Replayed: true`); the same key on another endpoint or with other parameters is a 400
`idempotency_error`. Our own endpoints need an `sk_`/`rk_` key (401 otherwise).

Test-side helpers: `complete_checkout` (the customer pays; a declined card raises
`CheckoutDeclined` and leaves the session open), `expire_checkout`, `session`, `sessions`,
`prices`, `portal_sessions`, `event` (a Stripe Event dict) and `sign_payload` (the
`Stripe-Signature` header). As in Stripe, the PaymentIntent gets `payment_intent_data[metadata]`
and the subscription `subscription_data[metadata]`, not the session's `metadata`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.client
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

try:  # the API version the installed stripe library speaks (e.g. "2026-10-28.endive")
    from stripe._api_version import _ApiVersion

    API_VERSION = _ApiVersion.CURRENT
except ImportError:  # pragma: no cover - stripe is installed wherever the tests run
    API_VERSION = "2025-08-27.basil"

INTERNAL_API_KEY = "sk_test_stripe_fake_internal"
_ALPHABET = string.ascii_letters + string.digits
_HOP_BY_HOP = {
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "accept-encoding",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "upgrade",
}


def _rand(n: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _now() -> int:
    return int(time.time())


# --- webhooks ---------------------------------------------------------------------------------


def sign_payload(payload: str | bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends with `payload`: t=<ts>,v1=<hex HMAC-SHA256>.

    The HMAC key is the whole endpoint secret string ("whsec_..."), the message "<ts>.<payload>".
    """
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8")
    ts = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode("utf-8"), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


# --- form encoding, as Stripe's v1 API speaks it ---------------------------------------------------


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SUBKEY = re.compile(r"\[([^\[\]]*)\]")


def parse_form(pairs: list[tuple[str, str]]) -> dict:
    """`a[b][0][c]=x&l[]=y&l[]=z` -> {"a": {"b": [{"c": "x"}]}, "l": ["y", "z"]} (values stay strings)."""
    root: dict = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        parts = [match.group(1), *_SUBKEY.findall(match.group(2))] if match else [raw_key]
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(value):
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    return value


def encode_form(params: dict) -> str:
    """The inverse of `parse_form`, with lists indexed as the stripe library does."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), sub)
        elif isinstance(value, list | tuple):
            for i, sub in enumerate(value):
                walk(f"{prefix}[{i}]", sub)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        else:
            pairs.append((prefix, str(value)))

    walk("", params)
    return urlencode(pairs)


# --- errors -----------------------------------------------------------------------------------


class StripeFakeError(Exception):
    """Answered as Stripe's error JSON: {"error": {"type", "message", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


def _modernize(path: str, payload: dict) -> dict:
    """Reshape localstripe's (2017-era) objects the way Stripe answers at the library's API version,
    so the app is tested against today's field locations:
    - invoices lose `payment_intent` and `charge` (they live in /v1/invoice_payments now);
    - charges lose `invoice`;
    - subscriptions keep `current_period_*` on their items only;
    - a PaymentIntent's `latest_charge` is an id unless expanded.
    """
    objects = payload.get("data") if payload.get("object") == "list" else [payload]
    for obj in objects or []:
        if not isinstance(obj, dict):
            continue
        kind = obj.get("object")
        if kind == "invoice":
            obj.pop("payment_intent", None)
            obj.pop("charge", None)
            for line in (obj.get("lines") or {}).get("data") or []:
                _with_decimals(line)
        elif kind == "charge":
            obj.pop("invoice", None)
        elif kind == "subscription":
            start, end = obj.pop("current_period_start", None), obj.pop("current_period_end", None)
            for item in (obj.get("items") or {}).get("data") or []:
                item.setdefault("current_period_start", start)
                item.setdefault("current_period_end", end)
                _with_decimals(item)
        elif kind == "payment_intent" and isinstance(obj.get("latest_charge"), dict):
            obj["latest_charge"] = obj["latest_charge"]["id"]
    return payload


_PUBLISHED_PATH = re.compile(
    r"/v1/(?P<resource>charges|disputes|invoices|subscriptions|payment_intents|checkout/sessions"
    r"|invoice_payments)/(?P<id>[^/]+)"
)
_PUBLISHED_KINDS = {
    "charges": "charge",
    "disputes": "dispute",
    "invoices": "invoice",
    "subscriptions": "subscription",
    "payment_intents": "payment_intent",
    "checkout/sessions": "checkout.session",
    "invoice_payments": "invoice_payment",
}


def _ref(value) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def _with_decimals(item: dict) -> None:
    """Give a localstripe subscription item or invoice line the decimal-string fields live Stripe
    sends (the SDK turns them into `Decimal`): `plan.amount_decimal`, a `price` with
    `unit_amount_decimal`, and on invoice lines `pricing.unit_amount_decimal` / `quantity_decimal`."""
    plan = item.get("plan")
    if not isinstance(plan, dict):
        return
    amount = plan.get("amount")
    plan.setdefault("amount_decimal", None if amount is None else str(amount))
    if item.get("object") == "line_item":
        item.setdefault(
            "pricing",
            {
                "type": "price_details",
                "price_details": {"price": plan.get("id"), "product": plan.get("product")},
                "unit_amount_decimal": plan["amount_decimal"],
            },
        )
        item.setdefault("quantity_decimal", str(item.get("quantity") or 1))
        return
    item.setdefault(
        "price",
        {
            "id": plan.get("id"),
            "object": "price",
            "active": plan.get("active", True),
            "billing_scheme": "per_unit",
            "currency": plan.get("currency"),
            "product": plan.get("product"),
            "recurring": {"interval": plan.get("interval"), "interval_count": plan.get("interval_count") or 1},
            "type": "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": plan["amount_decimal"],
        },
    )


def _missing(param: str) -> StripeFakeError:
    return StripeFakeError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def _no_such(kind: str, value: str, param: str, status: int = 400) -> StripeFakeError:
    return StripeFakeError(status, f"No such {kind}: '{value}'", param=param, code="resource_missing")


def _invalid(param: str, message: str) -> StripeFakeError:
    return StripeFakeError(400, message, param=param, code="parameter_invalid")


class LocalstripeError(RuntimeError):
    """localstripe refused a call a test-side helper made."""

    def __init__(self, status: int, body: dict, method: str, path: str) -> None:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        super().__init__(f"localstripe {method} {path} -> {status}: {message or body}")
        self.status, self.body = status, body


class CheckoutDeclined(Exception):
    """complete_checkout(): the card was declined; the session stays open and unpaid."""

    def __init__(self, message: str, *, session: dict, code: str | None, payment_intent: str | None) -> None:
        super().__init__(f"checkout {session['id']}: {message} ({code})")
        self.message, self.session, self.code, self.payment_intent = message, session, code, payment_intent


# --- parameter checks -------------------------------------------------------------------------


def _check_known(params: dict, known: set[str]) -> None:
    for key in params:
        if key not in known:
            raise StripeFakeError(400, f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def _int(params: dict, key: str, *, minimum: int = 0, param: str | None = None) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(param or key, f"Invalid integer: {value}") from None
    if number < minimum:
        raise _invalid(param or key, f"This value must be greater than or equal to {minimum}.")
    return number


def _bool(params: dict, key: str) -> bool | None:
    value = params.get(key)
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise _invalid(key, f"Invalid boolean: {value}")


def _metadata(value, param: str = "metadata") -> dict:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(param, "Invalid object")
    return dict(value)


PRICE_CREATE_PARAMS = {
    "currency",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "product_data",
    "recurring",
    "transfer_lookup_key",
    "unit_amount",
}
PRICE_LIST_PARAMS = {"active", "lookup_keys", "limit"}
SESSION_CREATE_PARAMS = {
    "cancel_url",
    "client_reference_id",
    "customer",
    "line_items",
    "metadata",
    "mode",
    "payment_intent_data",
    "subscription_data",
    "success_url",
}
PORTAL_CREATE_PARAMS = {"customer", "return_url"}


# --- the server -------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: dict) -> _Response:
        return cls(status, (json.dumps(payload, indent=2) + "\n").encode())

    @classmethod
    def html(cls, status: int, text: str, headers: dict[str, str] | None = None) -> _Response:
        return cls(status, text.encode(), "text/html; charset=utf-8", headers or {})


@dataclass
class _Stored:
    endpoint: str
    fingerprint: str
    response: _Response


class StripeAPIServer:
    """One base URL: our Prices/Checkout/Portal endpoints, everything else forwarded to localstripe."""

    def __init__(self, localstripe_url: str) -> None:
        self.localstripe_url = localstripe_url.rstrip("/")
        parts = urlsplit(self.localstripe_url)
        if parts.scheme != "http" or not parts.netloc:
            raise ValueError(f"localstripe_url must be http://host:port, not {localstripe_url!r}")
        self._ls_netloc = parts.netloc
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._prices: dict[str, dict] = {}
        self._sessions: dict[str, dict] = {}
        self._line_items: dict[str, list[dict]] = {}
        self._payment_metadata: dict[str, dict] = {}  # the PaymentIntent's or subscription's, per session
        self._portal_sessions: dict[str, dict] = {}
        self._idempotent: dict[str, _Stored] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._published: dict[str, dict] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> StripeAPIServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="stripe-api-fake").start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reset(self) -> None:
        """Forget our prices, sessions, portal sessions, idempotency keys and published objects;
        empty localstripe."""
        with self._lock:
            for store in (
                self._prices,
                self._sessions,
                self._line_items,
                self._payment_metadata,
                self._portal_sessions,
                self._idempotent,
                self._key_locks,
                self._published,
            ):
                store.clear()
        status, body = self._localstripe("DELETE", "/_config/data")
        if status >= 400:
            raise LocalstripeError(status, body, "DELETE", "/_config/data")

    # -- objects in Stripe's full published shapes -----------------------------------------------

    def put(self, *objects: dict) -> None:
        """Hold objects as live Stripe would answer them (built by tests/fakes/stripe_shapes.py):
        `GET /v1/<resource>/<id>` answers them as they are, before localstripe is asked, and
        disputes and invoice payments are listed from them. Putting an id again replaces it (the
        state moved on at Stripe)."""
        with self._lock:
            for obj in objects:
                self._published[obj["id"]] = copy.deepcopy(obj)

    def unpublish_all(self) -> None:
        with self._lock:
            self._published.clear()

    def _published_get(self, path: str) -> dict | None:
        match = _PUBLISHED_PATH.fullmatch(path)
        if not match:
            return None
        with self._lock:
            found = self._published.get(match["id"])
        kind = _PUBLISHED_KINDS[match["resource"]]
        return copy.deepcopy(found) if found and found.get("object") == kind else None

    def _published_list(self, kind: str, accept: Callable[[dict], bool]) -> list[dict]:
        with self._lock:
            found = [copy.deepcopy(o) for o in self._published.values() if o.get("object") == kind and accept(o)]
        return sorted(found, key=lambda o: o.get("created") or 0, reverse=True)

    # -- test-side views -----------------------------------------------------------------------

    def session(self, session_id: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._get_session(session_id))

    @property
    def sessions(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._sessions.values()))

    @property
    def prices(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._prices.values()))

    @property
    def portal_sessions(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(list(self._portal_sessions.values()))

    def event(self, type: str, obj, *, event_id: str | None = None, created: int | None = None) -> dict:
        """A Stripe Event (snapshot, v1) carrying `obj` (a dict or a stripe object), as JSON-safe as
        Stripe's own (decimal fields are strings on the wire)."""
        if hasattr(obj, "to_dict"):
            obj = obj.to_dict(for_json=True)
        return {
            "id": event_id or f"evt_{_rand()}",
            "object": "event",
            "api_version": API_VERSION,
            "created": _now() if created is None else created,
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    # -- test-side actions ---------------------------------------------------------------------

    def expire_checkout(self, session_id: str) -> dict:
        """The session lapses unpaid; return it."""
        with self._lock:
            session = self._get_session(session_id)
            if session["status"] != "open":
                raise RuntimeError(f"checkout session {session_id} is {session['status']}, not open")
            session["status"] = "expired"
            return copy.deepcopy(session)

    def complete_checkout(self, session_id: str, *, payment_method: str = "pm_card_visa") -> dict:
        """Play the customer paying on the hosted page; return the updated session.

        `payment_method` is a PaymentMethod id (e.g. the test ids `pm_card_visa`,
        `pm_card_chargeCustomerFail`) or a 16-digit test card number (e.g. "4000000000000341",
        declined at charge). A decline raises `CheckoutDeclined` and leaves the session open and unpaid.
        """
        with self._lock:
            session = copy.deepcopy(self._get_session(session_id))
            items = copy.deepcopy(self._line_items[session_id])
            metadata = copy.deepcopy(self._payment_metadata[session_id])
        if session["status"] != "open":
            raise RuntimeError(f"checkout session {session_id} is {session['status']}, not open")
        pm_id = self._resolve_payment_method(payment_method)
        if session["mode"] == "payment":
            updates = self._pay_one_time(session, pm_id, metadata)
        else:
            updates = self._start_subscription(session, items[0], pm_id, metadata)
        updates.update(status="complete", payment_status="paid")
        with self._lock:
            stored = self._sessions[session_id]
            if stored["status"] != "open":
                raise RuntimeError(f"checkout session {session_id} became {stored['status']} meanwhile")
            stored.update(updates)
            return copy.deepcopy(stored)

    def _resolve_payment_method(self, payment_method: str) -> str:
        if re.fullmatch(r"\d{16}", payment_method):
            card = {"number": payment_method, "exp_month": 12, "exp_year": 2030, "cvc": "123"}
            return self._ls_ok("POST", "/v1/payment_methods", {"type": "card", "card": card})["id"]
        # The test ids (pm_card_visa, ...) become a real pm_... object in localstripe on lookup.
        return self._ls_ok("GET", f"/v1/payment_methods/{payment_method}")["id"]

    def _declined(self, session: dict, body: dict, payment_intent: str | None) -> CheckoutDeclined:
        error = body.get("error") or {}
        with self._lock:
            stored = self._sessions[session["id"]]
            if payment_intent and session["mode"] == "payment":
                stored["payment_intent"] = payment_intent
            snapshot = copy.deepcopy(stored)
        return CheckoutDeclined(
            error.get("message") or "Your card was declined.",
            session=snapshot,
            code=error.get("code") or "card_declined",
            payment_intent=payment_intent,
        )

    def _pay_one_time(self, session: dict, pm_id: str, metadata: dict) -> dict:
        params = {
            "amount": session["amount_total"],
            "currency": session["currency"],
            "payment_method": pm_id,
            "metadata": metadata,
        }
        if session["customer"]:
            params["customer"] = session["customer"]
        intent = self._ls_ok("POST", "/v1/payment_intents", params)
        status, body = self._localstripe("POST", f"/v1/payment_intents/{intent['id']}/confirm")
        if status == 402:
            raise self._declined(session, body, intent["id"])
        if status >= 400:
            raise LocalstripeError(status, body, "POST", "/v1/payment_intents/{id}/confirm")
        if body.get("status") != "succeeded":
            raise self._declined(
                session,
                {"error": {"message": f"payment intent is {body.get('status')}", "code": body.get("status")}},
                intent["id"],
            )
        return {"payment_intent": intent["id"]}

    def _start_subscription(self, session: dict, item: dict, pm_id: str, metadata: dict) -> dict:
        customer_id = session["customer"]
        status, body = self._localstripe("POST", f"/v1/payment_methods/{pm_id}/attach", {"customer": customer_id})
        if status == 402:
            raise self._declined(session, body, None)
        if status >= 400:
            raise LocalstripeError(status, body, "POST", "/v1/payment_methods/{id}/attach")
        # localstripe charges the customer's default payment method (subscriptions take none).
        self._ls_ok("POST", f"/v1/customers/{customer_id}", {"invoice_settings": {"default_payment_method": pm_id}})
        subscription = self._ls_ok(
            "POST",
            "/v1/subscriptions",
            {
                "customer": customer_id,
                "items": [{"plan": item["price"]["id"], "quantity": item["quantity"]}],
                "metadata": metadata,
            },
        )
        invoice = subscription.get("latest_invoice")
        if subscription.get("status") != "active":
            if invoice:  # as Stripe lets an unpaid first invoice lapse: subscription incomplete_expired
                self._localstripe("POST", f"/v1/invoices/{invoice}/void")
            raise self._declined(
                session,
                {"error": {"message": "Your card was declined.", "code": "card_declined"}},
                None,
            )
        return {"subscription": subscription["id"], "invoice": invoice}

    # -- localstripe client ----------------------------------------------------------------------

    def _localstripe(self, method: str, path: str, params: dict | None = None) -> tuple[int, dict]:
        body = None
        headers = {"Authorization": f"Bearer {INTERNAL_API_KEY}"}
        if params:
            if method == "GET":
                path = f"{path}?{encode_form(params)}"
            else:
                body = encode_form(params).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self._ls_netloc, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            payload = {"error": {"type": "api_error", "message": raw.decode("utf-8", "replace")[:500]}}
        return status, payload

    def _ls_ok(self, method: str, path: str, params: dict | None = None) -> dict:
        status, body = self._localstripe(method, path, params)
        if status >= 400:
            raise LocalstripeError(status, body, method, path)
        return body

    def _exists(self, path: str) -> dict | None:
        status, body = self._localstripe("GET", path)
        return body if status == 200 else None

    # -- HTTP dispatch ---------------------------------------------------------------------------

    _ROUTES: list[tuple[str, re.Pattern, str]] = [
        ("POST", re.compile(r"/v1/prices"), "_create_price"),
        ("GET", re.compile(r"/v1/prices"), "_list_prices"),
        ("POST", re.compile(r"/v1/checkout/sessions"), "_create_session"),
        ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), "_retrieve_session"),
        ("POST", re.compile(r"/v1/billing_portal/sessions"), "_create_portal_session"),
        ("GET", re.compile(r"/v1/invoice_payments"), "_list_invoice_payments"),
        ("GET", re.compile(r"/v1/disputes"), "_list_disputes"),
        ("GET", re.compile(r"/v1/disputes/(?P<id>[^/]+)"), "_retrieve_dispute"),
    ]
    _OWN_PREFIXES = ("/v1/prices", "/v1/checkout/", "/v1/billing_portal/", "/v1/invoice_payments", "/v1/disputes")

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> _Response:
        target = urlsplit(handler.path)
        path = target.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""

        if path.startswith("/pay/") or path.startswith("/portal/"):
            return self._page(method, path, body)
        if method == "GET" and (published := self._published_get(path)) is not None:
            return _Response.json(200, published)

        def compute() -> _Response:
            if path.startswith(self._OWN_PREFIXES):
                return self._serve(handler, method, path, target.query, body)
            return self._forward(handler, method, body)

        key = handler.headers.get("Idempotency-Key")
        if method == "POST" and key and path.startswith("/v1/"):
            return self._idempotently(key, f"{method} {path}", body, compute)
        return compute()

    def _idempotently(self, key: str, endpoint: str, body: bytes, compute: Callable[[], _Response]) -> _Response:
        fingerprint = hashlib.sha256(
            repr(sorted(parse_qsl(body.decode(), keep_blank_values=True))).encode()
        ).hexdigest()
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                stored = self._idempotent.get(key)
            if stored is not None:
                if stored.endpoint != endpoint:
                    return self._error(
                        StripeFakeError(
                            400,
                            f"Keys for idempotent requests can only be used for the same endpoint they were first "
                            f"used for ('{stored.endpoint}' vs '{endpoint}'). Try using a key other than '{key}' "
                            "if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                    )
                if stored.fingerprint != fingerprint:
                    return self._error(
                        StripeFakeError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were first "
                            f"used with. Try using a key other than '{key}' if you meant to execute a different "
                            "request.",
                            type="idempotency_error",
                        )
                    )
                replay = stored.response
                return _Response(
                    replay.status,
                    replay.body,
                    replay.content_type,
                    {**replay.headers, "Idempotent-Replayed": "true"},
                )
            response = compute()
            if 200 <= response.status < 300 or response.status == 402:
                with self._lock:
                    self._idempotent[key] = _Stored(endpoint, fingerprint, response)
            return response

    @staticmethod
    def _error(exc: StripeFakeError) -> _Response:
        return _Response.json(exc.status, exc.body())

    def _serve(self, handler, method: str, path: str, query: str, body: bytes) -> _Response:
        try:
            scheme, _, credential = handler.headers.get("Authorization", "").partition(" ")
            if scheme != "Bearer" or not credential.startswith(("sk_", "rk_")) or len(credential) <= 5:
                raise StripeFakeError(
                    401,
                    "You did not provide an API key. You need to provide your API key in the Authorization header, "
                    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                )
            for route_method, pattern, name in self._ROUTES:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    raw = query if method == "GET" else body.decode()
                    params = parse_form(parse_qsl(raw, keep_blank_values=True))
                    status, payload = getattr(self, name)(params, **match.groupdict())
                    return _Response.json(status, payload)
            raise StripeFakeError(404, f"Unrecognized request URL ({method}: {path}).")
        except StripeFakeError as exc:
            return self._error(exc)

    def _forward(self, handler, method: str, body: bytes) -> _Response:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(self._ls_netloc, timeout=60)
        try:
            conn.request(method, handler.path, body=body or None, headers=headers)
            upstream = conn.getresponse()
            raw = upstream.read()
            content_type = upstream.getheader("Content-Type") or "application/octet-stream"
            status = upstream.status
        except OSError as exc:
            return self._error(StripeFakeError(502, f"localstripe unreachable: {exc}", type="api_error"))
        finally:
            conn.close()
        extra = {"Stripe-Should-Retry": "false"} if status >= 500 else {}
        if status == 200 and content_type.startswith("application/json"):
            raw = json.dumps(_modernize(urlsplit(handler.path).path, json.loads(raw))).encode()
        return _Response(status, raw, content_type, extra)

    # -- invoice payments (API 2025-03-31+: how an invoice is linked to its PaymentIntent) ---------

    def _list_invoice_payments(self, params: dict) -> tuple[int, dict]:
        invoice_id = params.get("invoice")
        payment = params.get("payment") or {}
        published = self._published_list(
            "invoice_payment",
            lambda p: (
                (not invoice_id or _ref(p.get("invoice")) == invoice_id)
                and (
                    not payment.get("payment_intent")
                    or (p.get("payment") or {}).get("payment_intent") == payment["payment_intent"]
                )
            ),
        )
        if published:
            return 200, {"object": "list", "data": published, "has_more": False, "url": "/v1/invoice_payments"}
        if invoice_id:
            invoices = [self._ls_ok("GET", f"/v1/invoices/{invoice_id}")]
        elif payment.get("payment_intent"):
            invoices = self._ls_ok("GET", "/v1/invoices").get("data") or []
        else:
            raise _missing("invoice")
        data = []
        for invoice in invoices:
            intent = invoice.get("payment_intent")
            if not intent or (payment.get("payment_intent") and intent != payment["payment_intent"]):
                continue
            data.append(
                {
                    "id": f"inpay_{invoice['id'][3:]}",
                    "object": "invoice_payment",
                    "invoice": invoice["id"],
                    "is_default": True,
                    "amount_paid": invoice.get("amount_paid"),
                    "currency": invoice.get("currency"),
                    "status": "paid" if invoice.get("status") == "paid" else "open",
                    "payment": {"type": "payment_intent", "payment_intent": intent},
                }
            )
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/invoice_payments"}

    # -- disputes (localstripe has none: only the published ones exist) ----------------------------

    def _list_disputes(self, params: dict) -> tuple[int, dict]:
        charge = params.get("charge")
        data = self._published_list("dispute", lambda d: not charge or _ref(d.get("charge")) == charge)
        limit = int(params.get("limit") or 10)
        return 200, {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": "/v1/disputes"}

    def _retrieve_dispute(self, params: dict, id: str) -> tuple[int, dict]:
        raise _no_such("dispute", id, "dispute", 404)

    # -- prices ----------------------------------------------------------------------------------

    def _get_price(self, price_id: str, *, param: str, status: int) -> dict:
        with self._lock:
            price = self._prices.get(price_id)
        if price is None:
            raise _no_such("price", price_id, param, status)
        return price

    def _create_price(self, params: dict) -> tuple[int, dict]:
        _check_known(params, PRICE_CREATE_PARAMS)
        currency = params.get("currency")
        if not currency:
            raise _missing("currency")
        unit_amount = _int(params, "unit_amount")
        if unit_amount is None:
            raise _missing("unit_amount")
        product, product_data = params.get("product"), params.get("product_data")
        if product and product_data:
            raise StripeFakeError(400, "You may only specify one of these parameters: product, product_data.")
        if product_data:
            if not isinstance(product_data, dict) or not product_data.get("name"):
                raise _missing("product_data[name]")
            product = self._ls_ok("POST", "/v1/products", {"name": product_data["name"]})["id"]
        elif not product:
            raise _missing("product")
        elif self._exists(f"/v1/products/{product}") is None:
            raise _no_such("product", product, "product")

        recurring = params.get("recurring")
        if recurring is not None:
            if not isinstance(recurring, dict) or "interval" not in recurring:
                raise _missing("recurring[interval]")
            if recurring["interval"] not in ("day", "week", "month", "year"):
                raise _invalid("recurring[interval]", f"Invalid recurring[interval]: {recurring['interval']}")
            recurring = {
                "interval": recurring["interval"],
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }

        lookup_key = params.get("lookup_key") or None
        price = {
            "id": f"price_{_rand()}",
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": _now(),
            "currency": currency.lower(),
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": _metadata(params.get("metadata")),
            "nickname": params.get("nickname") or None,
            "product": product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
        if recurring:  # so localstripe subscriptions can use it: a Plan with the same id
            plan = {
                "id": price["id"],
                "amount": unit_amount,
                "currency": price["currency"],
                "interval": recurring["interval"],
                "interval_count": 1,
                "product": product,
                "metadata": price["metadata"],
            }
            if price["nickname"]:
                plan["nickname"] = price["nickname"]
            self._ls_ok("POST", "/v1/plans", plan)
        transfer = _bool(params, "transfer_lookup_key")
        with self._lock:
            for other in self._prices.values():
                if lookup_key and other["lookup_key"] == lookup_key:
                    if not transfer:
                        raise StripeFakeError(
                            400,
                            f"A price (`{other['id']}`) already uses that lookup key. Set transfer_lookup_key=true "
                            "to move it to this price.",
                            param="lookup_key",
                        )
                    other["lookup_key"] = None
            self._prices[price["id"]] = price
        return 200, copy.deepcopy(price)

    def _list_prices(self, params: dict) -> tuple[int, dict]:
        _check_known(params, PRICE_LIST_PARAMS)
        active = _bool(params, "active")
        lookup_keys = params.get("lookup_keys")
        if isinstance(lookup_keys, str):
            lookup_keys = [lookup_keys]
        limit = _int(params, "limit", minimum=1) or 10
        with self._lock:
            selected = [
                copy.deepcopy(price)
                for price in reversed(list(self._prices.values()))  # newest first, as Stripe lists
                if (active is None or price["active"] == active)
                and (lookup_keys is None or price["lookup_key"] in lookup_keys)
            ]
        return 200, {"object": "list", "data": selected[:limit], "has_more": len(selected) > limit, "url": "/v1/prices"}

    # -- checkout sessions ------------------------------------------------------------------------

    def _get_session(self, session_id: str) -> dict:
        session = self._sessions.get(session_id)
        if session is None:
            raise _no_such("checkout.session", session_id, "session", 404)
        return session

    def _create_session(self, params: dict) -> tuple[int, dict]:
        _check_known(params, SESSION_CREATE_PARAMS)
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode not in ("payment", "subscription"):
            raise _invalid("mode", f"Invalid mode: {mode} (the fake serves payment and subscription)")
        subscription_data = params.get("subscription_data") or {}
        payment_intent_data = params.get("payment_intent_data") or {}
        if mode != "subscription" and subscription_data:
            raise StripeFakeError(
                400, "You can not pass `subscription_data` in `payment` mode.", param="subscription_data"
            )
        if mode != "payment" and payment_intent_data:
            raise StripeFakeError(
                400, "You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data"
            )
        data, data_param = (
            (payment_intent_data, "payment_intent_data")
            if mode == "payment"
            else (subscription_data, "subscription_data")
        )
        if not isinstance(data, dict):
            raise _invalid(data_param, "Invalid object")
        payment_metadata = _metadata(data.get("metadata"), f"{data_param}[metadata]")
        metadata = _metadata(params.get("metadata"))

        customer = params.get("customer") or None
        if customer and self._exists(f"/v1/customers/{customer}") is None:
            raise _no_such("customer", customer, "customer")
        line_items = self._session_line_items(params.get("line_items"), mode)
        if mode == "subscription" and not customer:
            raise StripeFakeError(400, "subscription mode needs `customer` in the fake", param="customer")

        created = _now()
        session_id = f"cs_test_{_rand(40)}"
        amount = sum(item["amount_total"] for item in line_items)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id") or None,
            "created": created,
            "currency": line_items[0]["price"]["currency"],
            "customer": customer,
            "expires_at": created + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "metadata": metadata,
            "mode": mode,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": params.get("success_url"),
            "url": f"{self.url}/pay/{session_id}",
        }
        with self._lock:
            self._sessions[session_id] = session
            self._line_items[session_id] = line_items
            self._payment_metadata[session_id] = payment_metadata
        return 200, copy.deepcopy(session)

    def _session_line_items(self, raw, mode: str) -> list[dict]:
        if not raw:
            raise _missing("line_items")
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise _invalid("line_items", "Invalid array")
        items = []
        for i, entry in enumerate(raw):
            param = f"line_items[{i}]"
            if not entry.get("price"):
                raise _missing(f"{param}[price]")
            price = copy.deepcopy(self._get_price(entry["price"], param=f"{param}[price]", status=400))
            quantity = _int(entry, "quantity", minimum=1, param=f"{param}[quantity]")
            if quantity is None:
                raise StripeFakeError(
                    400, f"Quantity is required. Add `quantity` to `{param}`", param=f"{param}[quantity]"
                )
            items.append({"price": price, "quantity": quantity, "amount_total": price["unit_amount"] * quantity})
        if len({item["price"]["currency"] for item in items}) > 1:
            raise StripeFakeError(400, "All line items must use the same currency.", param="line_items")
        recurring = [item for item in items if item["price"]["type"] == "recurring"]
        if mode == "payment" and recurring:
            raise StripeFakeError(
                400,
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param="line_items",
            )
        if mode == "subscription" and (len(items) != 1 or not recurring):
            raise StripeFakeError(
                400, "subscription mode takes exactly one recurring price in the fake", param="line_items"
            )
        return items

    def _retrieve_session(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, set())
        with self._lock:
            return 200, copy.deepcopy(self._get_session(id))

    # -- billing portal ---------------------------------------------------------------------------

    def _create_portal_session(self, params: dict) -> tuple[int, dict]:
        _check_known(params, PORTAL_CREATE_PARAMS)
        customer = params.get("customer")
        if not customer:
            raise _missing("customer")
        if self._exists(f"/v1/customers/{customer}") is None:
            raise _no_such("customer", customer, "customer")
        portal_id = f"bps_{_rand()}"
        portal = {
            "id": portal_id,
            "object": "billing_portal.session",
            "created": _now(),
            "customer": customer,
            "livemode": False,
            "return_url": params.get("return_url"),
            "url": f"{self.url}/portal/{portal_id}",
        }
        with self._lock:
            self._portal_sessions[portal_id] = portal
        return 200, copy.deepcopy(portal)

    # -- the pages behind the urls -------------------------------------------------------------------

    def _page(self, method: str, path: str, body: bytes) -> _Response:
        kind, _, object_id = path.strip("/").partition("/")
        if kind == "portal":
            with self._lock:
                portal = copy.deepcopy(self._portal_sessions.get(object_id))
            if portal is None or method != "GET":
                return _Response.html(404, "<h1>Not found</h1>")
            back = escape(portal["return_url"] or "/")
            return _Response.html(
                200,
                f"<!doctype html><title>Billing portal</title><h1>Billing portal</h1>"
                f"<p id='customer'>{escape(portal['customer'])}</p><a id='return' href='{back}'>Return</a>",
            )

        with self._lock:
            session = copy.deepcopy(self._sessions.get(object_id))
        if session is None:
            return _Response.html(404, "<h1>Checkout session not found</h1>")
        error = ""
        if method == "POST" and session["status"] == "open":
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            card = (form.get("card") or "4242424242424242").replace(" ", "")
            try:
                session = self.complete_checkout(object_id, payment_method=card)
            except CheckoutDeclined as exc:
                error = exc.message
            if not error and session["success_url"]:
                target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", object_id)
                return _Response.html(303, "", {"Location": target})
        if session["status"] == "complete":
            done = escape((session["success_url"] or "/").replace("{CHECKOUT_SESSION_ID}", object_id))
            return _Response.html(200, f"<!doctype html><h1>Paid</h1><a id='continue' href='{done}'>Continue</a>")
        if session["status"] == "expired":
            return _Response.html(410, "<!doctype html><h1>This checkout session has expired</h1>")
        cancel = escape(session["cancel_url"] or "/")
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        return _Response.html(
            402 if error else 200,
            "<!doctype html><title>Checkout</title><h1>Checkout</h1>"
            f"<p id='amount'>{escape(amount)}</p>"
            + (f"<p id='error' role='alert'>{escape(error)}</p>" if error else "")
            + f"<form method='post' action='/pay/{escape(object_id)}'>"
            "<label>Card number <input id='card' name='card' value='4242424242424242'></label>"
            "<button id='pay' type='submit'>Pay</button></form>"
            f"<a id='cancel' href='{cancel}'>Cancel</a>",
        )


class _Handler(BaseHTTPRequestHandler):
    """Routes every request through `fake._handle`; replies with Content-Length (HTTP/1.1)."""

    fake: StripeAPIServer
    protocol_version = "HTTP/1.1"
    # One write per response, no Nagle: otherwise every answer waits ~40 ms for a delayed ACK.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _reply(self, method: str) -> None:
        try:
            response = self.fake._handle(self, method)
        except Exception as exc:  # a bug in the fake: answer it rather than hang the client
            response = _Response.json(500, {"error": {"type": "api_error", "message": f"stripe fake crashed: {exc!r}"}})
            response.headers["Stripe-Should-Retry"] = "false"
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Request-Id", f"req_{_rand(14)}")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._reply("GET")

    def do_POST(self) -> None:
        self._reply("POST")

    def do_DELETE(self) -> None:
        self._reply("DELETE")
