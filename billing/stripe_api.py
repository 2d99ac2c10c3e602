"""Stripe, through the official `stripe` library. Nothing else in Atelier imports the SDK.

Every create call carries an idempotency key, so a retried request never makes a second
Customer, Checkout Session or Price. Objects come back as plain JSON-safe dicts
(`to_dict(for_json=True)`: the SDK turns Stripe's decimal strings such as
`price.unit_amount_decimal` into `Decimal`, which JSON cannot hold), so the rest of the code
never depends on the SDK's object types. Errors become `PaymentsError`
(with `retryable` for network trouble, rate limits and 5xx) or `PaymentsUnavailable`.
"""

from __future__ import annotations

import json

import stripe
from django.conf import settings

from billing.errors import PaymentsError, PaymentsUnavailable


def _client(*, timeout: float | None = None, retries: int = 2) -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentsUnavailable()
    options: dict = {"max_network_retries": retries}
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    http_client = stripe.RequestsClient(timeout=timeout or settings.STRIPE_TIMEOUT)
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, http_client=http_client, **options)


def _call(fn, *args, **kwargs) -> dict:
    try:
        result = fn(*args, **kwargs)
    except stripe.InvalidRequestError as exc:
        raise PaymentsError(
            "Stripe refused the request.", retryable=False, detail=str(exc), code=getattr(exc, "code", None) or ""
        ) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise PaymentsError("We could not reach Stripe.", retryable=True, detail=str(exc)) from exc
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None) or 0
        raise PaymentsError("Stripe had a problem.", retryable=status >= 500 or status == 0, detail=str(exc)) from exc
    return result.to_dict(for_json=True) if hasattr(result, "to_dict") else result


def _options(idempotency_key: str | None) -> dict:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --- objects we create ----------------------------------------------------------------------------


def customer_create(*, email: str, name: str, user_public_id: str) -> dict:
    params = {"email": email, "name": name or email, "metadata": {"user": user_public_id}}
    return _call(_client().v1.customers.create, params=params, options=_options(f"customer:{user_public_id}"))


def product_create(*, name: str, key: str) -> dict:
    params = {"name": name, "metadata": {"atelier": key}}
    return _call(_client().v1.products.create, params=params, options=_options(f"product:{key}"))


def price_find(*, lookup_key: str) -> dict | None:
    found = _call(_client().v1.prices.list, params={"lookup_keys": [lookup_key], "active": True, "limit": 1})
    data = found.get("data") or []
    return data[0] if data else None


def price_create(
    *, product: str, unit_amount: int, currency: str, lookup_key: str, interval: str | None, nickname: str
) -> dict:
    params: dict = {
        "product": product,
        "unit_amount": unit_amount,
        "currency": currency,
        "lookup_key": lookup_key,
        "nickname": nickname,
    }
    if interval:
        params["recurring"] = {"interval": interval}
    params["transfer_lookup_key"] = True  # a new price for the same offer takes the key over
    key = f"price:{lookup_key}:{unit_amount}:{currency}:{interval or 'once'}"
    return _call(_client().v1.prices.create, params=params, options=_options(key))


def checkout_session_create(*, params: dict, idempotency_key: str) -> dict:
    return _call(_client().v1.checkout.sessions.create, params=params, options=_options(idempotency_key))


def portal_session_create(*, customer: str, return_url: str, idempotency_key: str) -> dict:
    params = {"customer": customer, "return_url": return_url}
    return _call(_client().v1.billing_portal.sessions.create, params=params, options=_options(idempotency_key))


# --- account erasure ---------------------------------------------------------------------------------


def subscription_cancel(subscription_id: str, *, idempotency_key: str) -> dict:
    """Cancel a subscription now, not at period end (Stripe's defaults: no final invoice, no
    proration)."""
    return _call(_client().v1.subscriptions.cancel, subscription_id, options=_options(idempotency_key))


def customer_delete(customer_id: str) -> dict:
    """Delete a Customer for good (Stripe also cancels any subscription it still has)."""
    return _call(_client().v1.customers.delete, customer_id)


# --- reading state back (webhook payloads are hints; the API is the truth) -------------------------


def checkout_session_get(session_id: str) -> dict:
    return _call(_client().v1.checkout.sessions.retrieve, session_id)


def payment_intent_get(payment_intent_id: str) -> dict:
    return _call(_client().v1.payment_intents.retrieve, payment_intent_id)


def subscription_get(subscription_id: str) -> dict:
    return _call(_client().v1.subscriptions.retrieve, subscription_id)


def invoice_get(invoice_id: str) -> dict:
    return _call(_client().v1.invoices.retrieve, invoice_id)


def charge_get(charge_id: str) -> dict:
    return _call(_client().v1.charges.retrieve, charge_id)


def disputes_for_charge(charge_id: str) -> list[dict]:
    """Every dispute of a charge (inquiries included), as Stripe reports them now."""
    found = _call(_client().v1.disputes.list, params={"charge": charge_id, "limit": 100})
    return list(found.get("data") or [])


def invoices_list(*, customer: str, limit: int = 12) -> list[dict]:
    """For a page: a short timeout and no retries, so a Stripe outage doesn't stall it."""
    client = _client(timeout=4.0, retries=0)
    found = _call(client.v1.invoices.list, params={"customer": customer, "limit": limit})
    return list(found.get("data") or [])


def invoice_payment_intent(invoice_id: str) -> str:
    """The PaymentIntent that paid an invoice (API 2025-03-31+: through its invoice payments)."""
    found = _call(_client().v1.invoice_payments.list, params={"invoice": invoice_id, "limit": 10})
    for item in found.get("data") or []:
        payment = item.get("payment") or {}
        if item.get("status") == "paid" and payment.get("payment_intent"):
            return (
                payment["payment_intent"]
                if isinstance(payment["payment_intent"], str)
                else payment["payment_intent"]["id"]
            )
    return ""


def invoice_for_payment_intent(payment_intent_id: str) -> str:
    """The invoice a PaymentIntent paid, if any (to find a refunded subscription payment)."""
    params = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}, "limit": 1}
    found = _call(_client().v1.invoice_payments.list, params=params)
    data = found.get("data") or []
    invoice = data[0].get("invoice") if data else ""
    return (invoice if isinstance(invoice, str) else invoice.get("id", "")) if invoice else ""


def webhook_event(*, payload: bytes, signature: str) -> dict:
    """Verify a webhook's signature and timestamp; returns the event exactly as Stripe sent it,
    as plain JSON (not through the SDK's objects, which hold `Decimal`s JSON cannot store).

    Raises `stripe.SignatureVerificationError`, or `ValueError` for a body that is not a JSON
    object, for the view to refuse. NUL characters (which PostgreSQL cannot keep in JSON) are
    replaced by U+FFFD: processing reads every object back from the API anyway.
    """
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    stripe.WebhookSignature.verify_header(
        text, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE
    )
    try:
        event = _without_nul(json.loads(text))
    except RecursionError as exc:
        raise ValueError("the body nests too deeply") from exc
    if not isinstance(event, dict):
        raise ValueError("the body is not a JSON object")
    return event


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


WebhookSignatureError = stripe.SignatureVerificationError
