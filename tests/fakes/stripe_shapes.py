"""Stripe objects in the full shapes live Stripe sends at the pinned API version.

localstripe and our extension answer trimmed, 2017-era objects; live Stripe sends many more
fields, among them decimal strings (`price.unit_amount_decimal`, `plan.amount_decimal`, invoice
line `pricing.unit_amount_decimal` / `quantity_decimal`, a Checkout Session's
`currency_conversion.fx_rate`) that stripe-python turns into `Decimal`. Every builder here starts
from Stripe's own published fixture of the resource (`stripe_fixtures3.json`, copied unchanged
from stripe/openapi's `openapi/fixtures3.json`), so every field the API sends is present (nulls,
nested objects, fields Atelier never reads), then sets the values a story needs. Fixture
placeholders in fields Atelier reads (`"currency": "currency"`, a 2009 `cancel_at`) are replaced
by realistic values; the rest stays as Stripe published it.

Hand them to `StripeAPIServer.put(...)` to make them what the API answers on read-back, and to
`event(...)` to deliver them in a webhook.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from pathlib import Path

FIXTURES = json.loads((Path(__file__).with_name("stripe_fixtures3.json")).read_text())["resources"]
DAY = 86400


def _base(kind: str) -> dict:
    return copy.deepcopy(FIXTURES[kind])


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


def price(*, id: str, amount: int, currency: str = "usd", interval: str | None = "month", product: str = "") -> dict:
    obj = _base("price")
    obj.update(
        id=id,
        currency=currency,
        unit_amount=amount,
        unit_amount_decimal=str(amount),
        product=product or new_id("prod"),
        created=int(time.time()) - 30 * DAY,
        lookup_key=None,
        type="recurring" if interval else "one_time",
        recurring=(
            {
                "interval": interval,
                "interval_count": 1,
                "meter": None,
                "usage_type": "licensed",
                "trial_period_days": None,
            }
            if interval
            else None
        ),
        transform_quantity=None,
    )
    return obj


def plan(*, id: str, amount: int, currency: str = "usd", interval: str = "month", product: str = "") -> dict:
    """The legacy Plan view of a recurring price (same id), as items still carry it."""
    obj = _base("plan")
    obj.update(
        id=id,
        active=True,
        amount=amount,
        amount_decimal=str(amount),
        billing_scheme="per_unit",
        currency=currency,
        interval=interval,
        interval_count=1,
        livemode=False,
        metadata={},
        product=product or new_id("prod"),
        transform_usage=None,
        created=int(time.time()) - 30 * DAY,
    )
    return obj


def subscription(
    *,
    id: str,
    customer: str,
    price_id: str,
    amount: int,
    status: str = "active",
    period_start: int,
    period_end: int,
    cancel_at_period_end: bool = False,
    canceled_at: int | None = None,
    latest_invoice: str | None = None,
    metadata: dict | None = None,
) -> dict:
    obj = _base("subscription")
    product = new_id("prod")
    item = obj["items"]["data"][0]
    item.update(
        id=f"si_{id[4:]}",
        subscription=id,
        price=price(id=price_id, amount=amount, product=product),
        plan=plan(id=price_id, amount=amount, product=product),
        current_period_start=period_start,
        current_period_end=period_end,
        created=period_start,
        billing_thresholds=None,
    )
    obj["items"]["url"] = f"/v1/subscription_items?subscription={id}"
    obj.update(
        id=id,
        customer=customer,
        status=status,
        currency="usd",
        created=period_start,
        start_date=period_start,
        billing_cycle_anchor=period_start,
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=period_end if cancel_at_period_end else None,
        canceled_at=canceled_at,
        ended_at=canceled_at if status == "canceled" else None,
        trial_start=None,
        trial_end=None,
        latest_invoice=latest_invoice,
        metadata=metadata or {},
        next_pending_invoice_item_invoice=None,
        pause_collection=None,
        pending_update=None,
        pending_invoice_item_interval=None,
        transfer_data=None,
        billing_thresholds=None,
    )
    obj["cancellation_details"]["reason"] = "cancellation_requested" if status == "canceled" else None
    return obj


def invoice(
    *,
    id: str,
    customer: str,
    subscription_id: str | None,
    price_id: str,
    amount: int,
    billing_reason: str = "subscription_cycle",
    status: str = "paid",
    period_start: int,
    period_end: int,
    number: str = "",
) -> dict:
    obj = _base("invoice")
    paid = status == "paid"
    line = obj["lines"]["data"][0]
    line.update(
        id=new_id("il"),
        invoice=id,
        amount=amount,
        subtotal=amount,
        currency="usd",
        description=f"1 × Atelier Pro (at ${amount / 100:.2f} / month)",
        period={"start": period_start, "end": period_end},
        quantity=1,
        quantity_decimal="1",
        subscription=subscription_id,
        pricing={
            "type": "price_details",
            "price_details": {"price": price_id, "product": new_id("prod")},
            "unit_amount_decimal": str(amount),
        },
        parent={
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": billing_reason == "subscription_update",
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": f"si_{(subscription_id or 'sub_none')[4:]}",
            },
        },
    )
    obj["lines"]["url"] = f"/v1/invoices/{id}/lines"
    obj.update(
        id=id,
        customer=customer,
        customer_email="alice@example.com",
        amount_due=amount,
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid else amount,
        amount_overpaid=0,
        attempt_count=1,
        attempted=True,
        billing_reason=billing_reason,
        created=period_start,
        currency="usd",
        due_date=None,
        effective_at=period_start,
        from_invoice=None,
        hosted_invoice_url=f"https://invoice.stripe.com/i/acct_test/{id}",
        invoice_pdf=f"https://pay.stripe.com/invoice/acct_test/{id}/pdf",
        last_finalization_error=None,
        next_payment_attempt=None,
        number=number or f"ATL-{secrets.token_hex(2).upper()}-0001",
        period_start=period_start,
        period_end=period_end,
        shipping_cost=None,
        status=status,
        subscription=None,  # since API 2025-03-31: under parent.subscription_details
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        webhooks_delivered_at=period_start,
        parent=(
            {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription_id},
            }
            if subscription_id
            else None
        ),
    )
    obj["status_transitions"].update(finalized_at=period_start, paid_at=period_start + 60 if paid else None)
    return obj


def invoice_payment(*, invoice_id: str, payment_intent: str, amount: int, paid: bool = True) -> dict:
    obj = _base("invoice_payment")
    obj.update(
        id=f"inpay_{invoice_id[3:]}",
        invoice=invoice_id,
        amount_paid=amount if paid else None,
        amount_requested=amount,
        currency="usd",
        created=int(time.time()),
        livemode=False,
        status="paid" if paid else "open",
        payment={"type": "payment_intent", "payment_intent": payment_intent},
    )
    obj["status_transitions"]["paid_at"] = int(time.time()) if paid else None
    return obj


def payment_intent(
    *, id: str, customer: str, amount: int, latest_charge: str, metadata: dict | None = None, status: str = "succeeded"
) -> dict:
    obj = _base("payment_intent")
    obj.update(
        id=id,
        client_secret=f"{id}_secret_{secrets.token_hex(8)}",
        customer=customer,
        amount=amount,
        amount_received=amount if status == "succeeded" else 0,
        canceled_at=None,
        created=int(time.time()),
        last_payment_error=None,
        latest_charge=latest_charge,
        metadata=metadata or {},
        next_action=None,
        payment_method=new_id("pm"),
        processing=None,
        status=status,
        transfer_data=None,
    )
    return obj


def charge(
    *,
    id: str,
    customer: str,
    payment_intent: str,
    amount: int,
    refunds: list[dict] | None = None,
    disputed: bool = False,
) -> dict:
    obj = _base("charge")
    refunds = refunds or []
    refunded = sum(r["amount"] for r in refunds)
    obj.update(
        id=id,
        customer=customer,
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=refunded,
        refunded=refunded >= amount,
        captured=True,
        created=int(time.time()),
        description=None,
        disputed=disputed,
        receipt_url=f"https://pay.stripe.com/receipts/payment/{id}",
        refunds={"object": "list", "data": refunds, "has_more": False, "url": f"/v1/charges/{id}/refunds"},
        transfer_data=None,
        source=None,
    )
    obj["outcome"].update(network_status="approved_by_network", type="authorized", seller_message="Payment complete.")
    return obj


def refund(*, charge_id: str, payment_intent: str, amount: int) -> dict:
    obj = _base("refund")
    obj.update(
        id=new_id("re"), charge=charge_id, payment_intent=payment_intent, amount=amount, created=int(time.time())
    )
    return obj


def dispute(*, charge_id: str, payment_intent: str, amount: int, status: str, id: str | None = None) -> dict:
    """An inquiry when `status` starts with `warning_`, else a chargeback."""
    obj = _base("dispute")
    obj.update(
        id=id or new_id("dp"),
        charge=charge_id,
        payment_intent=payment_intent,
        amount=amount,
        status=status,
        created=int(time.time()),
        reason="fraudulent",
        is_charge_refundable=status.startswith("warning_"),
    )
    obj["payment_method_details"]["card"]["case_type"] = "inquiry" if status.startswith("warning_") else "chargeback"
    return obj


def checkout_session(
    *,
    id: str,
    customer: str,
    mode: str,
    amount: int,
    metadata: dict,
    payment_intent: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    status: str = "complete",
    payment_status: str = "paid",
) -> dict:
    obj = _base("checkout.session")
    now = int(time.time())
    obj.update(
        id=id,
        customer=customer,
        client_reference_id=metadata.get("user"),
        mode=mode,
        amount_subtotal=amount,
        amount_total=amount,
        currency="usd",
        # Adaptive pricing: the customer paid in their own currency at this (decimal string) rate.
        currency_conversion={
            "amount_subtotal": round(amount * 0.9421),
            "amount_total": round(amount * 0.9421),
            "fx_rate": "0.94210000000000",
            "source_currency": "usd",
        },
        metadata=metadata,
        payment_intent=payment_intent,
        subscription=subscription_id,
        invoice=invoice_id,
        status=status,
        payment_status=payment_status,
        created=now - 120,
        expires_at=now + DAY,
        url=None if status != "open" else f"https://checkout.stripe.com/c/pay/{id}",
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        success_url="https://atelier.example/billing/?checkout={CHECKOUT_SESSION_ID}",
        cancel_url="https://atelier.example/pricing/?canceled=1",
    )
    return obj


def customer(*, id: str, email: str, name: str = "", deleted: bool = False) -> dict:
    """A Customer as the API sends it (`customer.deleted` carries the whole object as it was),
    with the personal fields a real one has filled."""
    obj = _base("customer")
    obj.update(
        id=id,
        email=email,
        name=name or None,
        phone="+44 20 7946 0958",
        address={**obj["address"], "city": "London", "country": "GB", "line1": "1 Example Street"},
        created=int(time.time()) - 30 * DAY,
        discount=None,
    )
    if deleted:
        obj["deleted"] = True
    return obj


def event(type: str, obj: dict, *, id: str | None = None, created: int | None = None) -> dict:
    evt = _base("event")
    evt.update(
        id=id or new_id("evt"),
        type=type,
        api_version="2026-10-28.endive",
        created=created or int(time.time()),
        data={"object": copy.deepcopy(obj)},
        livemode=False,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
    )
    return evt
