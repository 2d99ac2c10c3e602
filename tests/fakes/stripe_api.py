"""Stripe API stand-in: localstripe, plus Prices, Checkout Sessions and Billing Portal sessions.

localstripe (a stateful fake of Stripe's v1 API) has no Price, Checkout Session or Billing
Portal API. `StripeAPIServer` listens on one base URL, serves those itself in Stripe's HTTP
shapes (form-encoded requests, JSON answers, Stripe-style errors) and forwards every other
request to localstripe unchanged, so the real `stripe` library works against one URL:

    server = StripeAPIServer("http://127.0.0.1:8420").start()
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})
    # or, module-level: stripe.api_key = "sk_test_x"; stripe.api_base = server.url

Served by this module (state kept in memory here):
  POST /v1/prices                              create (product or product_data, unit_amount, currency,
                                               recurring[interval|interval_count], nickname, lookup_key,
                                               transfer_lookup_key, metadata, active, tax_behavior).
                                               A recurring price is also created in localstripe as a Plan
                                               with the SAME id, so subscriptions on it work there.
  GET  /v1/prices                              list (active, currency, product, type, lookup_keys[],
                                               recurring[interval], limit, starting_after, ending_before)
  GET  /v1/prices/{id}                         retrieve (expand: product)
  POST /v1/prices/{id}                         update (active, metadata, nickname, lookup_key, ...)
  POST /v1/checkout/sessions                   create (mode payment|subscription; line_items with price
                                               or price_data; customer or customer_email; success_url,
                                               cancel_url, client_reference_id, metadata,
                                               subscription_data[metadata], payment_intent_data[metadata],
                                               allow_promotion_codes, ...)
  GET  /v1/checkout/sessions                   list (customer, payment_intent, subscription, status)
  GET  /v1/checkout/sessions/{id}              retrieve (expand: line_items, customer, payment_intent,
                                               subscription, invoice, and one level below those)
  POST /v1/checkout/sessions/{id}              update (metadata)
  GET  /v1/checkout/sessions/{id}/line_items   list the line items
  POST /v1/checkout/sessions/{id}/expire       open -> expired
  POST /v1/billing_portal/sessions             create (customer must exist in localstripe, return_url)
  GET/POST /pay/{id}                           the "hosted checkout page" a session's url points at: a
                                               form that pays (card number field) and redirects to
                                               success_url ({CHECKOUT_SESSION_ID} substituted)
  GET  /portal/{id}                            the billing portal page: a link back to return_url

Forwarded to localstripe unchanged (method, path, query, body, Authorization, Idempotency-Key,
Stripe-Version...; status, body and content type relayed back): everything else, i.e. customers,
products, plans, subscriptions, subscription_items, payment_intents, payment_methods, refunds,
invoices, invoiceitems, charges, coupons, tax_rates, events, balance, `/_config/...`.

Both served and forwarded:
  - An `Idempotency-Key` on a POST is honoured as Stripe does: the same key again answers the
    stored response (with `Idempotent-Replayed: true`) instead of doing the work twice; the same key
    on another endpoint or with other parameters is a 400 `idempotency_error`. Only 2xx and 402
    answers are stored. (The stripe library sends a fresh key with every POST unless you pass one.)
  - Our own endpoints require an `Authorization` with an `sk_`/`rk_` key (401 otherwise), like
    localstripe does for the forwarded ones.
  - A 5xx from localstripe is relayed with `Stripe-Should-Retry: false`, so the library does not
    retry a deterministic crash (it raises `stripe.APIError: Invalid response body from API: 500`).
  - Every answer carries a `Request-Id: req_...` header (the library quotes it in error messages).

Test-side helpers (plain Python, not HTTP): `complete_checkout` (plays the customer paying),
`expire_checkout`, `session`, `line_items`, `sessions`, `prices`, `portal_sessions`, `requests_log`,
`event` (a Stripe Event dict) and the module-level `sign_payload` (the `Stripe-Signature` header).

Deliberate choices that follow real Stripe rather than convenience:
  - mode=payment: the PaymentIntent gets `payment_intent_data[metadata]`, NOT the session's
    `metadata` (Stripe does not copy session metadata onto the PaymentIntent); likewise the
    subscription gets `subscription_data[metadata]`. Read the session's metadata from the session.
  - The session object has no `line_items` unless expanded (`expand=["line_items"]`), as in Stripe.
  - A line item needs `quantity`; an inactive price is refused; payment mode refuses recurring prices;
    subscription mode needs a recurring price; one currency per session; `customer` and
    `customer_email` are exclusive; unknown parameters are a 400 "Received unknown parameter".
  - Without `customer`, completing a subscription-mode session creates a localstripe customer (with
    `customer_email`); a payment-mode session creates one only with customer_creation=always.

Answers are reshaped to today's API (the library's version, e.g. 2026-10-28) by `_modernize`:
invoices carry no `payment_intent`/`charge` (use GET /v1/invoice_payments, served here, with
`invoice` or `payment[payment_intent]`), charges no `invoice`, subscriptions keep the period on
their items, and a PaymentIntent's `latest_charge` is an id. The notes below describe
localstripe itself, before that reshaping.

localstripe 1.15.10 quirks (read from its source and checked against it):
  - Subscriptions: `current_period_start`/`current_period_end` are on the SUBSCRIPTION only; the
    items (`items.data[i]`) have no `current_period_*` (Stripe API >= 2025-03-31, including the
    stripe 16 default `2026-10-28.endive`, has them ONLY on the items). Items carry `plan` (a full
    Plan object whose `amount` is the price) but no `price`, no `subscription` field, and an extra
    `invoice`. `sub.plan` and `sub.quantity` exist (legacy). Exactly one item is supported (more is a
    500 "Not implemented"). Status is `active` right away when the first invoice is paid; a declined
    first payment leaves `incomplete` (voiding its invoice makes it `incomplete_expired`); with
    `trial_period_days`/`trial_end` no invoice is made and the status stays `incomplete` (never
    `trialing`), so sessions with subscription_data[trial_*] are refused here.
    `default_payment_method` is not accepted on subscriptions ("Unexpected ..."): the customer's
    `invoice_settings.default_payment_method` is what gets charged. Update accepts only metadata,
    items, trial_end, default_tax_rates, tax_percent, prorate, proration_date,
    cancel_at_period_end, cancel_at; any other key (e.g. proration_behavior,
    default_payment_method) is a 500 (TypeError). An update's `metadata` is silently IGNORED (the
    subscription keeps the metadata it was created with). Cancel (DELETE) sets status `canceled` and
    `ended_at`; the object stays retrievable, and `Subscription.list` leaves it out unless
    status=all|canceled. `SubscriptionItem.list(subscription=...)` is a 400 "Unexpected subscription".
  - Invoices: `Invoice.list(customer=...)` after a paid subscription returns that one invoice
    (newest first; filters: customer, subscription only; `status=` or anything else is a 500).
    Fields: id, status (draft/open/paid/void), amount_due, amount_paid, total, subtotal, tax,
    currency, customer, customer_email, subscription, parent.subscription_details.subscription,
    payment_intent (id), charge (a FULL Charge object, not an id), lines (line_item objects with
    amount, period{start,end}, plan, quantity, type), period_start/period_end, status_transitions,
    date, created, billing_reason (always null). NO number, hosted_invoice_url, invoice_pdf,
    amount_remaining, payments.
  - PaymentIntents: accept only amount, currency, customer, payment_method, metadata,
    payment_method_types, capture_method, payment_method_options, confirm, off_session (anything else,
    e.g. description, automatic_payment_methods, receipt_email: 400 "Unexpected ..."); confirm with a
    `payment_method` is a 500 "Not implemented" (give it at create). `latest_charge` is a FULL Charge
    object, not an id (there is also the deprecated `charges` list). A declined card answers 402
    (`stripe.CardError`, code card_declined) and leaves status requires_payment_method.
  - Charges: amount, amount_refunded, refunded, refunds (list), paid, captured, status,
    payment_intent, payment_method, customer, currency, balance_transaction, failure_code,
    failure_message, invoice (always null, even for subscription charges). NO receipt_url,
    payment_method_details, billing_details, outcome. `Charge.list` filters: customer, created[gt]
    only (`payment_intent=` is a 500).
  - Refunds: create with charge or payment_intent (+ amount); status succeeded at once. A refund
    without amount refunds the FULL charge amount even after partial refunds, and the total is not
    capped: amount_refunded can exceed amount (refunded = amount_refunded >= amount).
  - PaymentMethods: `pm_card_visa`, `pm_card_visa_chargeDeclined` (declined at attach) and
    `pm_card_chargeCustomerFail` (declined at charge) are materialised as a NEW pm_... object on every
    lookup (a PaymentIntent created with `pm_card_visa` keeps that literal in `payment_method`, its
    charge has the real id). Declines by number: 4000000000000341 at charge; 4000000000000002 (and a
    few others) at attach; 3-D Secure cards (4000002500003155, ...) leave requires_action.
  - No search endpoints (`/v1/*/search` is a 404 "Not Found").
  - Customers: no `invoice_settings.default_payment_method` unless set; `currency` is always "eur"
    unless a Source says otherwise; `subscriptions` and `sources` are embedded lists.
  - Plans: no `unit_amount`/`type`/`recurring` (it is `amount`, `interval`, `interval_count`).
  - Errors: `{"error": {"type": "invalid_request_error", "message": "Not Found"}}` with 404 for unknown
    ids (no `code`/`param`), 400 "Bad request" for invalid values, 400 "Unexpected <name>" for unknown
    parameters (except the 500s above).
  - Events it would send (only to webhooks registered via POST /_config/webhooks/{id}) carry
    api_version "2017-08-15"; nothing is registered by this module.
  - State lives in one process and is also pickled to /tmp/localstripe.pickle on every write;
    `--from-scratch` ignores that file at start-up; `DELETE /_config/data` empties it.
"""

from __future__ import annotations

import base64
import binascii
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
    r"/v1/(?P<resource>charges|disputes|invoices|subscriptions|payment_intents|checkout/sessions|refunds"
    r"|invoice_payments)/(?P<id>[^/]+)"
)
_PUBLISHED_KINDS = {
    "charges": "charge",
    "disputes": "dispute",
    "invoices": "invoice",
    "subscriptions": "subscription",
    "payment_intents": "payment_intent",
    "checkout/sessions": "checkout.session",
    "refunds": "refund",
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


def _check_known(params: dict, known: set[str], unsupported: dict[str, str] | None = None) -> None:
    for key in params:
        if unsupported and key in unsupported:
            raise StripeFakeError(
                400, f"{key}: {unsupported[key]} (not supported by tests/fakes/stripe_api.py)", param=key
            )
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
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _invalid(key, f"Invalid boolean: {value}")


def _metadata(value, param: str = "metadata") -> dict:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(param, "Invalid object")
    return dict(value)


def _merge_metadata(current: dict, update) -> dict:
    """Stripe's update semantics: keys merge, "" deletes a key, metadata="" clears them all."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in _metadata(update).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _expand_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise _invalid("expand", "Invalid array")


PRICE_CREATE_PARAMS = {
    "active",
    "currency",
    "expand",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "product_data",
    "recurring",
    "tax_behavior",
    "transfer_lookup_key",
    "unit_amount",
    "billing_scheme",
}
PRICE_UNSUPPORTED = {
    "currency_options": "multi-currency prices",
    "custom_unit_amount": "customer-chosen amounts",
    "tiers": "tiered prices",
    "tiers_mode": "tiered prices",
    "transform_quantity": "quantity transforms",
    "unit_amount_decimal": "decimal amounts",
}
PRICE_UPDATE_PARAMS = {"active", "expand", "lookup_key", "metadata", "nickname", "tax_behavior", "transfer_lookup_key"}
PRICE_LIST_PARAMS = {
    "active",
    "currency",
    "product",
    "type",
    "lookup_keys",
    "recurring",
    "limit",
    "starting_after",
    "ending_before",
    "expand",
    "created",
}
SESSION_CREATE_PARAMS = {
    "adaptive_pricing",
    "after_expiration",
    "allow_promotion_codes",
    "automatic_tax",
    "billing_address_collection",
    "branding_settings",
    "cancel_url",
    "client_reference_id",
    "consent_collection",
    "currency",
    "custom_fields",
    "custom_text",
    "customer",
    "customer_creation",
    "customer_email",
    "customer_update",
    "discounts",
    "expand",
    "expires_at",
    "invoice_creation",
    "line_items",
    "locale",
    "metadata",
    "mode",
    "name_collection",
    "optional_items",
    "origin_context",
    "payment_intent_data",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_options",
    "payment_method_types",
    "permissions",
    "phone_number_collection",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "shipping_address_collection",
    "shipping_options",
    "submit_type",
    "subscription_data",
    "success_url",
    "tax_id_collection",
    "ui_mode",
    "wallet_options",
}
SESSION_LIST_PARAMS = {
    "customer",
    "customer_details",
    "payment_intent",
    "payment_link",
    "status",
    "subscription",
    "created",
    "limit",
    "starting_after",
    "ending_before",
    "expand",
}
PORTAL_CREATE_PARAMS = {"configuration", "customer", "expand", "flow_data", "locale", "on_behalf_of", "return_url"}


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
        self.requests_log: list[tuple[str, str, str | None]] = []
        self._prices: dict[str, dict] = {}
        self._sessions: dict[str, dict] = {}
        self._line_items: dict[str, list[dict]] = {}
        self._session_extras: dict[str, dict] = {}
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
        """Forget our prices, sessions, portal sessions, idempotency keys and log; empty localstripe."""
        with self._lock:
            self._prices.clear()
            self._sessions.clear()
            self._line_items.clear()
            self._session_extras.clear()
            self._portal_sessions.clear()
            self._idempotent.clear()
            self._key_locks.clear()
            self._published.clear()
            self.requests_log.clear()
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
            if session_id not in self._sessions:
                raise KeyError(f"No such checkout session: {session_id!r}")
            return copy.deepcopy(self._sessions[session_id])

    def line_items(self, session_id: str) -> list[dict]:
        with self._lock:
            if session_id not in self._line_items:
                raise KeyError(f"No such checkout session: {session_id!r}")
            return copy.deepcopy(self._line_items[session_id])

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

    def event(
        self,
        type: str,
        obj,
        *,
        event_id: str | None = None,
        created: int | None = None,
        previous_attributes: dict | None = None,
    ) -> dict:
        """A Stripe Event (snapshot, v1) carrying `obj` (a dict or a stripe object), as JSON-safe as
        Stripe's own (decimal fields are strings on the wire)."""
        if hasattr(obj, "to_dict"):
            obj = obj.to_dict(for_json=True)
        data = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = copy.deepcopy(previous_attributes)
        return {
            "id": event_id or f"evt_{_rand()}",
            "object": "event",
            "api_version": API_VERSION,
            "created": _now() if created is None else created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }

    # -- test-side actions ---------------------------------------------------------------------

    def expire_checkout(self, session_id: str) -> dict:
        """The session lapses unpaid (as POST /v1/checkout/sessions/{id}/expire); return it."""
        with self._lock:
            if session_id not in self._sessions:
                raise KeyError(f"No such checkout session: {session_id!r}")
            session = self._sessions[session_id]
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
            if session_id not in self._sessions:
                raise KeyError(f"No such checkout session: {session_id!r}")
            session = copy.deepcopy(self._sessions[session_id])
            items = copy.deepcopy(self._line_items[session_id])
            extras = copy.deepcopy(self._session_extras[session_id])
        if session["status"] != "open":
            raise RuntimeError(f"checkout session {session_id} is {session['status']}, not open")

        customer_id = session["customer"]
        must_have_customer = session["mode"] == "subscription" or session.get("customer_creation") == "always"
        if customer_id is None and must_have_customer:
            customer_id = self._ls_ok("POST", "/v1/customers", {"email": session["customer_email"]})["id"]
        pm_id = self._resolve_payment_method(payment_method)

        if session["mode"] == "payment":
            metadata = _metadata(extras["payment_intent_data"].get("metadata"))
            updates = self._pay_one_time(session, customer_id, pm_id, metadata)
        else:
            metadata = _metadata(extras["subscription_data"].get("metadata"))
            updates = self._start_subscription(session, items, customer_id, pm_id, metadata)

        email = session["customer_email"]
        if customer_id:
            email = self._ls_ok("GET", f"/v1/customers/{customer_id}").get("email") or email
        updates.update(
            customer=customer_id,
            customer_details={
                "address": None,
                "email": email,
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
            status="complete",
            payment_status="paid",
        )
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

    def _pay_one_time(self, session: dict, customer_id: str | None, pm_id: str, metadata: dict) -> dict:
        params = {
            "amount": session["amount_total"],
            "currency": session["currency"],
            "payment_method": pm_id,
            "metadata": metadata,
        }
        if customer_id:
            params["customer"] = customer_id
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

    def _start_subscription(
        self, session: dict, items: list[dict], customer_id: str, pm_id: str, metadata: dict
    ) -> dict:
        status, body = self._localstripe("POST", f"/v1/payment_methods/{pm_id}/attach", {"customer": customer_id})
        if status == 402:
            raise self._declined(session, body, None)
        if status >= 400:
            raise LocalstripeError(status, body, "POST", "/v1/payment_methods/{id}/attach")
        self._ls_ok("POST", f"/v1/customers/{customer_id}", {"invoice_settings": {"default_payment_method": pm_id}})
        recurring = [item for item in items if item["price"]["type"] == "recurring"]
        for item in items:  # one-time items join the first invoice, as in Stripe
            if item["price"]["type"] == "one_time":
                self._ls_ok(
                    "POST",
                    "/v1/invoiceitems",
                    {
                        "customer": customer_id,
                        "amount": item["amount_total"],
                        "currency": item["currency"],
                        "description": item["description"] or "One-time item",
                    },
                )
        subscription = self._ls_ok(
            "POST",
            "/v1/subscriptions",
            {
                "customer": customer_id,
                "items": [{"plan": recurring[0]["price"]["id"], "quantity": recurring[0]["quantity"]}],
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
        ("GET", re.compile(r"/v1/prices/(?P<id>[^/]+)"), "_retrieve_price"),
        ("POST", re.compile(r"/v1/prices/(?P<id>[^/]+)"), "_update_price"),
        ("POST", re.compile(r"/v1/checkout/sessions"), "_create_session"),
        ("GET", re.compile(r"/v1/checkout/sessions"), "_list_sessions"),
        ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), "_retrieve_session"),
        ("POST", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)"), "_update_session"),
        ("GET", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/line_items"), "_list_session_line_items"),
        ("POST", re.compile(r"/v1/checkout/sessions/(?P<id>[^/]+)/expire"), "_expire_session"),
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
        key = handler.headers.get("Idempotency-Key")
        with self._lock:
            self.requests_log.append((method, path, key))

        if path.startswith("/pay/") or path.startswith("/portal/"):
            return self._page(method, path, body)
        if method == "GET" and (published := self._published_get(path)) is not None:
            return _Response.json(200, published)

        def compute() -> _Response:
            if path == "/v1/prices" or path.startswith(self._OWN_PREFIXES):
                return self._serve(handler, method, path, target.query, body)
            return self._forward(handler, method, body)

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
            if not _authorized(handler.headers.get("Authorization", "")):
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
        charge, intent = params.get("charge"), params.get("payment_intent")
        data = self._published_list(
            "dispute",
            lambda d: (
                (not charge or _ref(d.get("charge")) == charge)
                and (not intent or _ref(d.get("payment_intent")) == intent)
            ),
        )
        limit = int(params.get("limit") or 10)
        return 200, {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": "/v1/disputes"}

    def _retrieve_dispute(self, params: dict, id: str) -> tuple[int, dict]:
        raise _no_such("dispute", id, "dispute", 404)

    # -- prices ----------------------------------------------------------------------------------

    def _get_price(self, price_id: str, *, param: str = "id", status: int = 404) -> dict:
        with self._lock:
            price = self._prices.get(price_id)
        if price is None:
            raise _no_such("price", price_id, param, status)
        return price

    def _create_price(self, params: dict) -> tuple[int, dict]:
        _check_known(params, PRICE_CREATE_PARAMS, PRICE_UNSUPPORTED)
        return 200, self._expand_price(self._new_price(params), _expand_list(params.get("expand")))

    def _new_price(self, params: dict, *, param_prefix: str = "", inline: bool = False) -> dict:
        def p(name: str) -> str:
            return f"{param_prefix}[{name}]" if param_prefix else name

        currency = params.get("currency")
        if not currency:
            raise _missing(p("currency"))
        if params.get("billing_scheme") not in (None, "per_unit"):
            raise StripeFakeError(
                400, "billing_scheme: only per_unit is supported by the fake", param=p("billing_scheme")
            )
        unit_amount = _int(params, "unit_amount", param=p("unit_amount"))
        if unit_amount is None:
            raise _missing(p("unit_amount"))
        product, product_data = params.get("product"), params.get("product_data")
        if product and product_data:
            raise StripeFakeError(400, "You may only specify one of these parameters: product, product_data.")
        if product_data:
            if not isinstance(product_data, dict) or not product_data.get("name"):
                raise _missing(p("product_data[name]"))
            data = {"name": product_data["name"], "metadata": _metadata(product_data.get("metadata"))}
            if product_data.get("description"):
                data["description"] = product_data["description"]
            product = self._ls_ok("POST", "/v1/products", data)["id"]
        elif not product:
            raise _missing(p("product"))
        elif self._exists(f"/v1/products/{product}") is None:
            raise _no_such("product", product, p("product"))

        recurring = params.get("recurring")
        if recurring is not None:
            if not isinstance(recurring, dict) or "interval" not in recurring:
                raise _missing(p("recurring[interval]"))
            if recurring["interval"] not in ("day", "week", "month", "year"):
                raise _invalid(p("recurring[interval]"), f"Invalid recurring[interval]: {recurring['interval']}")
            interval_count = _int(recurring, "interval_count", minimum=1, param=p("recurring[interval_count]")) or 1
            usage_type = recurring.get("usage_type") or "licensed"
            if usage_type != "licensed":
                raise StripeFakeError(400, "metered prices are not supported by the fake", param=p("recurring"))
            recurring = {
                "interval": recurring["interval"],
                "interval_count": interval_count,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }

        active = _bool(params, "active")
        lookup_key = params.get("lookup_key") or None
        price = {
            "id": f"price_{_rand()}",
            "object": "price",
            "active": (not inline) if active is None else active,
            "billing_scheme": "per_unit",
            "created": _now(),
            "currency": currency.lower(),
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": _metadata(params.get("metadata")),
            "nickname": params.get("nickname") or None,
            "product": product,
            "recurring": recurring,
            "tax_behavior": params.get("tax_behavior") or "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
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
                "interval_count": recurring["interval_count"],
                "product": product,
                "active": price["active"],
                "metadata": price["metadata"],
            }
            if price["nickname"]:
                plan["nickname"] = price["nickname"]
            self._ls_ok("POST", "/v1/plans", plan)
        with self._lock:
            if lookup_key:
                self._claim_lookup_key(lookup_key, _bool(params, "transfer_lookup_key"))
            self._prices[price["id"]] = price
        return copy.deepcopy(price)

    def _claim_lookup_key(self, lookup_key: str, transfer: bool | None) -> None:
        for other in self._prices.values():
            if other["lookup_key"] == lookup_key:
                if not transfer:
                    raise StripeFakeError(
                        400,
                        f"A price (`{other['id']}`) already uses that lookup key. Set transfer_lookup_key=true "
                        "to move it to this price.",
                        param="lookup_key",
                    )
                other["lookup_key"] = None

    def _expand_price(self, price: dict, expand: list[str]) -> dict:
        price = copy.deepcopy(price)
        if "product" in expand:
            product = self._exists(f"/v1/products/{price['product']}")
            if product is not None:
                price["product"] = product
        return price

    def _retrieve_price(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, {"expand"})
        return 200, self._expand_price(self._get_price(id), _expand_list(params.get("expand")))

    def _update_price(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, PRICE_UPDATE_PARAMS)
        active = _bool(params, "active")
        with self._lock:
            price = self._get_price(id)
            if "lookup_key" in params:
                new_key = params["lookup_key"] or None
                if new_key and new_key != price["lookup_key"]:
                    self._claim_lookup_key(new_key, _bool(params, "transfer_lookup_key"))
                price["lookup_key"] = new_key
            if active is not None:
                price["active"] = active
            if "metadata" in params:
                price["metadata"] = _merge_metadata(price["metadata"], params["metadata"])
            if "nickname" in params:
                price["nickname"] = params["nickname"] or None
            if params.get("tax_behavior"):
                price["tax_behavior"] = params["tax_behavior"]
            snapshot = copy.deepcopy(price)
        if snapshot["type"] == "recurring" and active is not None:
            self._ls_ok("POST", f"/v1/plans/{id}", {"active": active})
        return 200, self._expand_price(snapshot, _expand_list(params.get("expand")))

    def _list_prices(self, params: dict) -> tuple[int, dict]:
        _check_known(params, PRICE_LIST_PARAMS)
        active = _bool(params, "active")
        lookup_keys = params.get("lookup_keys")
        if isinstance(lookup_keys, str):
            lookup_keys = [lookup_keys]
        recurring = params.get("recurring") if isinstance(params.get("recurring"), dict) else {}
        with self._lock:
            prices = list(self._prices.values())
        selected = [
            price
            for price in reversed(prices)  # newest first, as Stripe lists
            if (active is None or price["active"] == active)
            and (not params.get("currency") or price["currency"] == params["currency"].lower())
            and (not params.get("product") or price["product"] == params["product"])
            and (not params.get("type") or price["type"] == params["type"])
            and (lookup_keys is None or price["lookup_key"] in lookup_keys)
            and (not recurring.get("interval") or (price["recurring"] or {}).get("interval") == recurring["interval"])
        ]
        expand = [e.removeprefix("data.") for e in _expand_list(params.get("expand")) if e.startswith("data.")]
        page = _paginate("/v1/prices", selected, params)
        page["data"] = [self._expand_price(price, expand) for price in page["data"]]
        return 200, page

    # -- checkout sessions ------------------------------------------------------------------------

    def _get_session(self, session_id: str, *, status: int = 404) -> dict:
        session = self._sessions.get(session_id)
        if session is None:
            raise _no_such("checkout.session", session_id, "session", status)
        return session

    def _create_session(self, params: dict) -> tuple[int, dict]:
        _check_known(params, SESSION_CREATE_PARAMS)
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode == "setup":
            raise StripeFakeError(400, "mode=setup is not supported by tests/fakes/stripe_api.py", param="mode")
        if mode not in ("payment", "subscription"):
            raise _invalid("mode", f"Invalid mode: must be one of payment, setup, or subscription ({mode})")
        if params.get("customer") and params.get("customer_email"):
            raise StripeFakeError(400, "You may only specify one of these parameters: customer, customer_email.")
        if params.get("allow_promotion_codes") and params.get("discounts"):
            raise StripeFakeError(
                400, "You may only specify one of these parameters: allow_promotion_codes, discounts."
            )
        ui_mode = params.get("ui_mode") or "hosted"
        if ui_mode not in ("hosted", "embedded", "custom"):
            raise _invalid("ui_mode", f"Invalid ui_mode: {ui_mode}")
        if ui_mode != "hosted" and not params.get("return_url") and params.get("redirect_on_completion") != "never":
            raise _missing("return_url")
        if ui_mode == "hosted" and params.get("return_url"):
            raise StripeFakeError(
                400, "return_url can only be used with ui_mode embedded or custom.", param="return_url"
            )

        subscription_data = params.get("subscription_data") or {}
        payment_intent_data = params.get("payment_intent_data") or {}
        if not isinstance(subscription_data, dict) or not isinstance(payment_intent_data, dict):
            raise _invalid("subscription_data", "Invalid object")
        if mode != "subscription" and subscription_data:
            raise StripeFakeError(
                400, "You can not pass `subscription_data` in `payment` mode.", param="subscription_data"
            )
        if mode != "payment" and payment_intent_data:
            raise StripeFakeError(
                400, "You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data"
            )
        for trial in ("trial_period_days", "trial_end"):
            if trial in subscription_data:
                raise StripeFakeError(
                    400,
                    f"subscription_data[{trial}] is not supported: localstripe leaves trial subscriptions 'incomplete'",
                    param=f"subscription_data[{trial}]",
                )
        _metadata(subscription_data.get("metadata"), "subscription_data[metadata]")
        _metadata(payment_intent_data.get("metadata"), "payment_intent_data[metadata]")
        metadata = _metadata(params.get("metadata"))

        customer = params.get("customer") or None
        if customer and self._exists(f"/v1/customers/{customer}") is None:
            raise _no_such("customer", customer, "customer")

        line_items = self._session_line_items(params.get("line_items"), mode)
        currency = line_items[0]["currency"]
        amount = sum(item["amount_total"] for item in line_items)
        created = _now()
        expires_at = _int(params, "expires_at") or created + 24 * 3600
        if not created + 1800 <= expires_at <= created + 24 * 3600:
            raise _invalid("expires_at", "expires_at must be 30 minutes to 24 hours after creation")

        session_id = f"cs_test_{_rand(40)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": _bool(params, "allow_promotion_codes"),
            "amount_subtotal": amount,
            "amount_total": amount,
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_address_collection": params.get("billing_address_collection"),
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id") or None,
            "client_secret": f"{session_id}_secret_{_rand()}" if ui_mode != "hosted" else None,
            "consent": None,
            "consent_collection": None,
            "created": created,
            "currency": currency,
            "custom_fields": [],
            "customer": customer,
            "customer_creation": (params.get("customer_creation") or "if_required")
            if mode == "payment" and not customer
            else None,
            "customer_details": None,
            "customer_email": params.get("customer_email") or None,
            "discounts": [],
            "expires_at": expires_at,
            "invoice": None,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": metadata,
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": params.get("payment_method_collection") or "always",
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "payment_status": "unpaid",
            "recovered_from": None,
            "return_url": params.get("return_url"),
            "setup_intent": None,
            "shipping_address_collection": None,
            "status": "open",
            "submit_type": params.get("submit_type"),
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": ui_mode,
            "url": f"{self.url}/pay/{session_id}" if ui_mode == "hosted" else None,
        }
        if params.get("automatic_tax"):
            session["automatic_tax"]["enabled"] = _bool(params["automatic_tax"], "enabled") or False
        with self._lock:
            self._sessions[session_id] = session
            self._line_items[session_id] = line_items
            # kept aside (not part of Stripe's session object) for complete_checkout():
            self._session_extras[session_id] = {
                "subscription_data": copy.deepcopy(subscription_data),
                "payment_intent_data": copy.deepcopy(payment_intent_data),
            }
        return 200, self._render_session(session_id, _expand_list(params.get("expand")))

    def _session_line_items(self, raw, mode: str) -> list[dict]:
        if not raw:
            raise _missing("line_items")
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise _invalid("line_items", "Invalid array")
        items = []
        for i, entry in enumerate(raw):
            param = f"line_items[{i}]"
            if entry.get("price") and entry.get("price_data"):
                raise StripeFakeError(400, f"You may only specify one of these parameters: {param}[price], price_data.")
            if entry.get("price"):
                price = copy.deepcopy(self._get_price(entry["price"], param=f"{param}[price]", status=400))
                if not price["active"]:
                    raise StripeFakeError(
                        400,
                        f"The price specified ({price['id']}) is inactive. This field only accepts active prices.",
                        param=f"{param}[price]",
                    )
            elif entry.get("price_data"):
                data = entry["price_data"]
                if not isinstance(data, dict):
                    raise _invalid(f"{param}[price_data]", "Invalid object")
                price = self._new_price(data, param_prefix=f"{param}[price_data]", inline=True)
            else:
                raise _missing(f"{param}[price]")
            quantity = _int(entry, "quantity", minimum=1, param=f"{param}[quantity]")
            if quantity is None:
                raise StripeFakeError(
                    400, f"Quantity is required. Add `quantity` to `{param}`", param=f"{param}[quantity]"
                )
            product = self._exists(f"/v1/products/{price['product']}") or {}
            amount = price["unit_amount"] * quantity
            items.append(
                {
                    "id": f"li_{_rand()}",
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": price["currency"],
                    "description": product.get("name"),
                    "price": price,
                    "quantity": quantity,
                }
            )
        if len({item["currency"] for item in items}) > 1:
            raise StripeFakeError(400, "All line items must use the same currency.", param="line_items")
        recurring = [item for item in items if item["price"]["type"] == "recurring"]
        if mode == "payment" and recurring:
            raise StripeFakeError(
                400,
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param="line_items",
            )
        if mode == "subscription":
            if not recurring:
                raise StripeFakeError(
                    400,
                    "You must provide at least one recurring price in `subscription` mode when using prices.",
                    param="line_items",
                )
            if len(recurring) > 1:
                raise StripeFakeError(
                    400,
                    "localstripe supports exactly one recurring line item per subscription.",
                    param="line_items",
                )
        return items

    def _render_session(self, session_id: str, expand: list[str]) -> dict:
        with self._lock:
            session = copy.deepcopy(self._get_session(session_id))
            items = copy.deepcopy(self._line_items[session_id])
        for path in expand:
            head, _, rest = path.partition(".")
            if head == "line_items":
                session["line_items"] = _paginate(f"/v1/checkout/sessions/{session_id}/line_items", items, {})
            elif head in ("customer", "payment_intent", "subscription", "invoice") and isinstance(session[head], str):
                collection = {"customer": "customers", "payment_intent": "payment_intents"}.get(head, head + "s")
                query = {"expand": [rest]} if rest else None
                status, body = self._localstripe("GET", f"/v1/{collection}/{session[head]}", query)
                if status == 200:
                    session[head] = body
        return session

    def _retrieve_session(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, {"expand"})
        return 200, self._render_session(id, _expand_list(params.get("expand")))

    def _update_session(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, {"expand", "metadata", "collected_information", "shipping_options"})
        with self._lock:
            session = self._get_session(id)
            if "metadata" in params:
                session["metadata"] = _merge_metadata(session["metadata"], params["metadata"])
        return 200, self._render_session(id, _expand_list(params.get("expand")))

    def _list_session_line_items(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, {"expand", "limit", "starting_after", "ending_before"})
        with self._lock:
            self._get_session(id)
            items = copy.deepcopy(self._line_items[id])
        return 200, _paginate(f"/v1/checkout/sessions/{id}/line_items", items, params)

    def _expire_session(self, params: dict, id: str) -> tuple[int, dict]:
        _check_known(params, {"expand"})
        with self._lock:
            session = self._get_session(id)
            if session["status"] != "open":
                raise StripeFakeError(
                    400,
                    f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has '
                    f'a status of "{session["status"]}".',
                )
            session["status"] = "expired"
        return 200, self._render_session(id, _expand_list(params.get("expand")))

    def _list_sessions(self, params: dict) -> tuple[int, dict]:
        _check_known(params, SESSION_LIST_PARAMS)
        with self._lock:
            sessions = [copy.deepcopy(s) for s in reversed(list(self._sessions.values()))]
        for key in ("customer", "payment_intent", "subscription", "status", "payment_link"):
            if params.get(key):
                sessions = [s for s in sessions if s.get(key) == params[key]]
        return 200, _paginate("/v1/checkout/sessions", sessions, params)

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
            "configuration": params.get("configuration") or "bpc_stripe_fake_default",
            "created": _now(),
            "customer": customer,
            "flow": None,
            "livemode": False,
            "locale": params.get("locale"),
            "on_behalf_of": params.get("on_behalf_of"),
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


def _authorized(header: str) -> bool:
    scheme, _, credential = header.partition(" ")
    if scheme == "Basic":
        try:
            credential = base64.b64decode(credential).decode().split(":")[0]
        except (ValueError, binascii.Error):
            return False
    elif scheme != "Bearer":
        return False
    return credential.startswith(("sk_", "rk_")) and len(credential) > 5


def _paginate(url: str, items: list[dict], params: dict) -> dict:
    limit = _int(params, "limit", minimum=1) or 10
    if limit > 100:
        raise _invalid("limit", "This value must be less than or equal to 100.")
    ids = [item.get("id") for item in items]
    start, end = 0, len(items)
    if params.get("starting_after"):
        if params["starting_after"] not in ids:
            raise _no_such("object", params["starting_after"], "starting_after")
        start = ids.index(params["starting_after"]) + 1
        end = min(len(items), start + limit)
    elif params.get("ending_before"):
        if params["ending_before"] not in ids:
            raise _no_such("object", params["ending_before"], "ending_before")
        end = ids.index(params["ending_before"])
        start = max(0, end - limit)
    else:
        end = min(len(items), limit)
    has_more = end < len(items) if not params.get("ending_before") else start > 0
    return {"object": "list", "data": items[start:end], "has_more": has_more, "url": url}


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
        if method != "HEAD":
            self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._reply("GET")

    def do_POST(self) -> None:
        self._reply("POST")

    def do_DELETE(self) -> None:
        self._reply("DELETE")
