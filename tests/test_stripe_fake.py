"""The Stripe stand-in (localstripe + tests/fakes/stripe_api.py) answers the real `stripe` library.

No database: these tests only talk HTTP to localstripe and to the extension in front of it.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import stripe

from tests.fakes.stripe_api import CheckoutDeclined, sign_payload

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
WEBHOOK_SECRET = "whsec_test_atelier_stripe_fake"


@pytest.fixture
def fake(stripe_api_server):
    """The suite's localstripe with the extension in front (tests/fixtures.py), emptied."""
    stripe_api_server.reset()
    return stripe_api_server


@pytest.fixture
def client(fake):
    return stripe.StripeClient("sk_test_atelier", base_addresses={"api": fake.url}, max_network_retries=0)


@pytest.fixture
def catalog(client):
    product = client.v1.products.create(params={"name": "Atelier"})
    credits = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 500,
            "currency": "eur",
            "lookup_key": "credits_100",
            "nickname": "100 credits",
            "metadata": {"credits": "100"},
        }
    )
    pro = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 1200,
            "currency": "eur",
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
        }
    )
    return {"product": product, "credits": credits, "pro": pro}


def _customer(client, email="alice@example.com"):
    return client.v1.customers.create(params={"email": email})


def _payment_session(customer, price, **extra):
    params = {
        "mode": "payment",
        "customer": customer.id,
        "line_items": [{"price": price.id, "quantity": 2}],
        "success_url": "https://atelier.test/billing/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://atelier.test/billing",
        "client_reference_id": "user-1",
        "metadata": {"user": "1", "credits": "200"},
        "payment_intent_data": {"metadata": {"user": "1"}},
    }
    params.update(extra)
    return params


# --- prices ------------------------------------------------------------------------------------


def test_prices_are_created_listed_by_lookup_key_and_mirrored_as_plans(client, catalog, fake):
    credits, pro = catalog["credits"], catalog["pro"]
    assert (credits.object, credits.type, credits.unit_amount, credits.recurring) == ("price", "one_time", 500, None)
    assert credits.metadata.to_dict() == {"credits": "100"}
    assert (pro.type, pro.recurring.interval, pro.recurring.interval_count) == ("recurring", "month", 1)

    listed = client.v1.prices.list(params={"lookup_keys": ["pro_monthly", "credits_100"], "active": True})
    assert [p.id for p in listed.data] == [pro.id, credits.id]  # newest first
    only = client.v1.prices.list(params={"lookup_keys": ["pro_monthly"], "active": True, "limit": 1})
    assert [p.lookup_key for p in only.data] == ["pro_monthly"]

    plan = client.v1.plans.retrieve(pro.id)  # forwarded to localstripe: same id, same amount
    assert (plan.amount, plan.currency, plan.interval) == (1200, "eur", "month")

    with pytest.raises(stripe.InvalidRequestError) as taken:
        client.v1.prices.create(
            params={"product": catalog["product"].id, "unit_amount": 1, "currency": "eur", "lookup_key": "pro_monthly"}
        )
    assert taken.value.param == "lookup_key"
    moved = client.v1.prices.create(  # as `manage.py stripe_prices` publishes a new amount
        params={
            "product": catalog["product"].id,
            "unit_amount": 1500,
            "currency": "eur",
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
            "transfer_lookup_key": True,
        }
    )
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": ["pro_monthly"]}).data] == [moved.id]
    assert {p["id"]: p["lookup_key"] for p in fake.prices}[pro.id] is None
    assert len(fake.prices) == 3

    with pytest.raises(stripe.InvalidRequestError) as no_amount:
        client.v1.prices.create(params={"product": catalog["product"].id, "currency": "eur"})
    assert no_amount.value.param == "unit_amount"


# --- payment mode ------------------------------------------------------------------------------


def test_payment_checkout_is_idempotent_completes_and_its_charge_refunds(client, catalog, fake):
    customer = _customer(client)
    params = _payment_session(customer, catalog["credits"])

    session = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "buy-credits-1"})
    again = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "buy-credits-1"})
    other = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "buy-credits-2"})
    assert again.id == session.id and other.id != session.id
    assert len(fake.sessions) == 2
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params={**params, "client_reference_id": "user-2"}, options={"idempotency_key": "buy-credits-1"}
        )

    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_total, session.currency, session.customer) == (1000, "eur", customer.id)
    assert session.payment_intent is None and session.subscription is None
    assert session.client_reference_id == "user-1"
    assert session.metadata.to_dict() == {"user": "1", "credits": "200"}
    assert session.url == f"{fake.url}/pay/{session.id}"
    assert "line_items" not in session  # only when expanded, as in Stripe

    done = fake.complete_checkout(session.id)
    assert (done["status"], done["payment_status"]) == ("complete", "paid")

    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status, paid.payment_intent) == ("complete", "paid", done["payment_intent"])

    intent = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert (intent.status, intent.amount, intent.currency, intent.customer) == ("succeeded", 1000, "eur", customer.id)
    assert intent.metadata.to_dict() == {"user": "1"}  # payment_intent_data[metadata], as Stripe does
    charge_id = intent.latest_charge  # an id, as in today's API (localstripe embeds the Charge; we reshape)

    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 400})
    assert (refund.status, refund.amount, refund.charge) == ("succeeded", 400, charge_id)
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.payment_intent, charge.amount_refunded, charge.refunded) == (intent.id, 400, False)
    client.v1.refunds.create(params={"charge": charge_id, "amount": 600})
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (1000, True)
    assert [c.id for c in client.v1.charges.list(params={"customer": customer.id}).data] == [charge_id]


def test_declined_card_leaves_the_session_open_and_a_good_card_then_pays(client, catalog, fake):
    customer = _customer(client)
    session = client.v1.checkout.sessions.create(params=_payment_session(customer, catalog["credits"]))

    with pytest.raises(CheckoutDeclined) as declined:
        fake.complete_checkout(session.id, payment_method="4000000000000341")
    assert declined.value.code == "card_declined"
    still = client.v1.checkout.sessions.retrieve(session.id)
    assert (still.status, still.payment_status) == ("open", "unpaid")
    failed = client.v1.payment_intents.retrieve(declined.value.payment_intent)
    assert failed.status == "requires_payment_method"

    done = fake.complete_checkout(session.id, payment_method="pm_card_visa")
    assert done["payment_status"] == "paid" and done["payment_intent"] != declined.value.payment_intent


def test_hosted_page_pays_and_redirects_to_success_url(client, catalog, fake):
    customer = _customer(client)
    session = client.v1.checkout.sessions.create(params=_payment_session(customer, catalog["credits"]))
    target = urlsplit(session.url)

    conn = http.client.HTTPConnection(target.netloc, timeout=10)
    conn.request("GET", target.path)
    page = conn.getresponse()
    assert page.status == 200 and b"Pay" in page.read()
    conn.request(
        "POST", target.path, body="card=4242424242424242", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    redirect = conn.getresponse()
    redirect.read()
    conn.close()
    assert redirect.status == 303
    assert redirect.getheader("Location") == f"https://atelier.test/billing/done?session={session.id}"
    assert fake.session(session.id)["payment_status"] == "paid"


def test_checkout_session_errors_are_stripe_errors(client, catalog):
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert unknown.value.http_status == 404 and unknown.value.code == "resource_missing"

    with pytest.raises(stripe.InvalidRequestError) as no_mode:
        client.v1.checkout.sessions.create(params={"line_items": [{"price": catalog["credits"].id, "quantity": 1}]})
    assert no_mode.value.param == "mode" and no_mode.value.http_status == 400

    with pytest.raises(stripe.InvalidRequestError) as recurring_in_payment:
        client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": catalog["pro"].id, "quantity": 1}]}
        )
    assert recurring_in_payment.value.param == "line_items"

    with pytest.raises(stripe.InvalidRequestError) as no_price:
        client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": "price_nope", "quantity": 1}]}
        )
    assert no_price.value.param == "line_items[0][price]"

    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        client.v1.checkout.sessions.create(
            params={**_payment_session(customer, catalog["credits"]), "customer": "cus_nope"}
        )
    assert no_customer.value.param == "customer"

    with pytest.raises(stripe.InvalidRequestError) as unknown_param:  # only what the app sends is served
        client.v1.checkout.sessions.create(
            params={**_payment_session(customer, catalog["credits"]), "allow_promotion_codes": True}
        )
    assert (unknown_param.value.param, unknown_param.value.code) == ("allow_promotion_codes", "parameter_unknown")


def test_own_endpoints_require_a_secret_key(fake):
    anonymous = stripe.StripeClient("pk_test_public", base_addresses={"api": fake.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        anonymous.v1.prices.list()


# --- subscription mode -------------------------------------------------------------------------


def test_subscription_checkout_gives_an_active_subscription_with_an_invoice(client, catalog, fake):
    customer = _customer(client, "bob@example.com")
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": catalog["pro"].id, "quantity": 1}],
            "success_url": "https://atelier.test/billing/done",
            "subscription_data": {"metadata": {"user": "2", "plan": "pro"}},
        }
    )
    assert (session.mode, session.amount_total) == ("subscription", 1200)

    done = fake.complete_checkout(session.id)
    assert (done["status"], done["payment_status"]) == ("complete", "paid")
    assert done["subscription"].startswith("sub_") and done["invoice"].startswith("in_")
    assert done["payment_intent"] is None

    subscription = client.v1.subscriptions.retrieve(done["subscription"], params={"expand": ["latest_invoice"]})
    assert (subscription.status, subscription.customer) == ("active", customer.id)
    assert subscription.metadata.to_dict() == {"user": "2", "plan": "pro"}
    assert subscription.latest_invoice.id == done["invoice"]
    item = subscription["items"].data[0]
    assert (item.plan.id, item.plan.amount, item.quantity) == (catalog["pro"].id, 1200, 1)
    # the period is on the items (API >= 2025-03-31); localstripe puts it on the subscription, we move it
    assert item.current_period_end > item.current_period_start >= session.created
    assert "current_period_end" not in subscription
    # live Stripe's decimal-string fields, which the SDK turns into Decimal
    from decimal import Decimal

    assert (item.price.id, item.price.unit_amount_decimal, item.plan.amount_decimal) == (
        catalog["pro"].id,
        Decimal("1200"),
        Decimal("1200"),
    )

    invoices = client.v1.invoices.list(params={"customer": customer.id})
    assert len(invoices.data) == 1
    invoice = invoices.data[0]
    assert (invoice.id, invoice.status, invoice.amount_paid, invoice.subscription) == (
        done["invoice"],
        "paid",
        1200,
        subscription.id,
    )
    assert "hosted_invoice_url" not in invoice and "number" not in invoice and "invoice_pdf" not in invoice

    ending = client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    assert ending.cancel_at_period_end is True
    assert client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is True
    assert client.v1.subscriptions.cancel(subscription.id).status == "canceled"


def test_subscription_checkout_with_a_declined_card_starts_nothing(client, catalog, fake):
    customer = _customer(client)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": catalog["pro"].id, "quantity": 1}],
        }
    )
    with pytest.raises(CheckoutDeclined):
        fake.complete_checkout(session.id, payment_method="4000000000000341")
    assert fake.session(session.id)["status"] == "open"
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []


# --- billing portal ----------------------------------------------------------------------------


def test_portal_session_returns_a_url(client, fake):
    customer = _customer(client)
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://atelier.test/account"}
    )
    assert portal.id.startswith("bps_") and portal.object == "billing_portal.session"
    assert portal.url == f"{fake.url}/portal/{portal.id}"
    assert (portal.customer, portal.return_url) == (customer.id, "https://atelier.test/account")
    assert fake.portal_sessions[0]["id"] == portal.id

    target = urlsplit(portal.url)
    conn = http.client.HTTPConnection(target.netloc, timeout=10)
    conn.request("GET", target.path)
    page = conn.getresponse()
    assert page.status == 200 and b"https://atelier.test/account" in page.read()
    conn.close()

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.billing_portal.sessions.create(params={"customer": "cus_nope"})
    assert unknown.value.param == "customer" and unknown.value.http_status == 400


# --- the module-level API ------------------------------------------------------------------------


def test_module_level_api_works_against_the_same_url(fake, catalog, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", "sk_test_atelier")
    monkeypatch.setattr(stripe, "api_base", fake.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    customer = stripe.Customer.create(email="carol@example.com")
    session = stripe.checkout.Session.create(
        mode="payment",
        customer=customer.id,
        line_items=[{"price": catalog["credits"].id, "quantity": 1}],
        success_url="https://atelier.test/done",
    )
    fake.complete_checkout(session.id)
    assert stripe.checkout.Session.retrieve(session.id).payment_status == "paid"
    assert stripe.Price.list(lookup_keys=["pro_monthly"]).data[0].id == catalog["pro"].id
    portal = stripe.billing_portal.Session.create(customer=customer.id, return_url="https://atelier.test/")
    assert portal.url.startswith(fake.url)


# --- webhooks ----------------------------------------------------------------------------------


def test_signed_payload_is_accepted_and_a_tampered_one_rejected(fake):
    session = {"id": "cs_test_123", "object": "checkout.session", "metadata": {"user": "1"}}
    event = fake.event("checkout.session.completed", session, event_id="evt_fixed", created=1_700_000_000)
    assert event["data"]["object"] == session and event["type"] == "checkout.session.completed"
    assert (event["object"], event["livemode"], event["request"]) == (
        "event",
        False,
        {"id": None, "idempotency_key": None},
    )
    payload = json.dumps(event)
    header = sign_payload(payload, WEBHOOK_SECRET)

    parsed = stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET)
    assert (parsed.id, parsed.type, parsed.data.object.id) == ("evt_fixed", "checkout.session.completed", "cs_test_123")
    assert parsed.data.object.metadata.user == "1"

    now = int(time.time())
    assert sign_payload(payload, WEBHOOK_SECRET, now) == stripe.WebhookSignature.generate_signature_header(
        payload, WEBHOOK_SECRET, now
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace('"1"', '"2"'), header, WEBHOOK_SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):  # older than the 300 s tolerance
        stripe.Webhook.construct_event(payload, sign_payload(payload, WEBHOOK_SECRET, now - 600), WEBHOOK_SECRET)
