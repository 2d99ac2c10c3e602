"""Stripe billing end to end with the real `stripe` library against localstripe and our extension
(tests/fakes/stripe_api.py: Prices, Checkout Sessions, Billing Portal). Webhook events carry the
objects those servers hold and are signed exactly as Stripe signs them; every handler reads the
object back from that API, so order and repetition of events are really exercised."""

from __future__ import annotations

import html
import json
import time

import pytest
from django.core import mail
from django.db.models import Sum

from billing import services
from billing.models import (
    CheckoutSession,
    Customer,
    EventStatus,
    LedgerEntry,
    LedgerReason,
    Payment,
    StripeEvent,
    Subscription,
    Wallet,
)
from billing.tests.webhooks import send
from generation.models import Generation
from tests.factories import UserFactory
from tests.fakes.stripe_api import sign_payload
from tests.fixtures import STRIPE_WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return Wallet.objects.filter(user=user).values_list("balance", flat=True).first() or 0


def ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(wallet__user=user).aggregate(s=Sum("amount"))["s"] or 0


def page(client, url: str) -> str:
    return html.unescape(client.get(url).content.decode())


def buy(client, payments, slug: str) -> dict:
    """The person clicks Buy, pays on Stripe's page; returns the completed session."""
    response = client.post(f"/billing/checkout/pack/{slug}/")
    assert response.status_code == 303, response.content
    session = payments.sessions[-1]
    assert response["Location"] == session["url"]
    return payments.complete_checkout(session["id"])


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


# --- credit packs -----------------------------------------------------------------------------------


def test_pack_purchase_is_credited_once_whatever_the_order_and_repetition_of_events(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    response = signed_in.post("/billing/checkout/pack/500/")
    session = payments.sessions[-1]
    assert response.status_code == 303 and response["Location"] == session["url"]
    assert session["mode"] == "payment" and session["client_reference_id"] == str(alice.public_id)
    assert (
        session["amount_total"] == 2000 and session["customer"] == Customer.objects.get(user=alice).stripe_customer_id
    )
    assert "Payment processing" in page(signed_in, f"/billing/?checkout={session['id']}")

    paid = payments.complete_checkout(session["id"])
    intent = stripe_sdk.v1.payment_intents.retrieve(paid["payment_intent"])
    completed = payments.event("checkout.session.completed", paid)
    deliveries = [
        payments.event("payment_intent.succeeded", intent),  # before the checkout event
        completed,
        completed,  # Stripe redelivers the same event
        payments.event("checkout.session.completed", paid),  # a second event about the same session
        completed,
    ]
    assert [send(signed_in, e, django_capture_on_commit_callbacks).status_code for e in deliveries] == [200] * 5

    assert balance(alice) == 500 == ledger_sum(alice)
    assert LedgerEntry.objects.filter(wallet__user=alice, reason=LedgerReason.PURCHASE).count() == 1
    assert Payment.objects.get(user=alice).credits == 500
    assert StripeEvent.objects.count() == 3
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    status = page(signed_in, f"/billing/status/?checkout={session['id']}")
    assert "Payment received. 500 credits were added" in status and "hx-get" not in status
    billing_page = page(signed_in, "/billing/")
    assert "Credit pack purchase — 500 credits" in billing_page and "+500" in billing_page
    assert '<td class="hide-phone">Credit pack</td>' in billing_page and "$20.00" in billing_page
    assert [m.subject for m in mail.outbox] == ["[Atelier] Your credits are in"]
    assert "$20.00" in mail.outbox[0].body


def test_double_click_on_buy_opens_one_checkout_and_one_customer(signed_in, alice, payments):
    first = signed_in.post("/billing/checkout/pack/100/")
    second = signed_in.post("/billing/checkout/pack/100/")
    assert first["Location"] == second["Location"]
    assert len(payments.sessions) == 1
    assert Customer.objects.filter(user=alice).count() == 1
    assert CheckoutSession.objects.filter(user=alice).count() == 1


def test_a_session_that_is_not_paid_yet_grants_nothing(signed_in, alice, payments, django_capture_on_commit_callbacks):
    signed_in.post("/billing/checkout/pack/100/")
    open_session = payments.sessions[-1]
    send(signed_in, payments.event("checkout.session.completed", open_session), django_capture_on_commit_callbacks)
    assert balance(alice) == 0
    assert not Payment.objects.exists()


# --- subscription -----------------------------------------------------------------------------------


def test_subscription_lifecycle_is_visible_on_the_billing_page(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    response = signed_in.post("/billing/checkout/plan/pro/")
    assert response.status_code == 303
    session = payments.complete_checkout(payments.sessions[-1]["id"])
    assert session["mode"] == "subscription"
    subscription = stripe_sdk.v1.subscriptions.retrieve(session["subscription"])
    first_invoice = stripe_sdk.v1.invoices.retrieve(session["invoice"])

    for event in (
        payments.event("customer.subscription.created", subscription),
        payments.event("checkout.session.completed", session),
        payments.event("invoice.paid", first_invoice),
    ):
        assert send(signed_in, event, django_capture_on_commit_callbacks).status_code == 200
    mirrored = Subscription.objects.get(user=alice)
    assert mirrored.status == "active" and mirrored.plan.slug == "pro" and mirrored.current_period_end
    assert balance(alice) == 600
    billing_page = page(signed_in, "/billing/")
    assert "Pro" in billing_page and "Renews on" in billing_page and "Monthly Pro credits" in billing_page
    assert "Manage subscription" in billing_page
    assert "You have Pro." in page(signed_in, "/pricing/")

    # Renewal: Stripe bills the next period.
    renewal = stripe_sdk.v1.invoices.create(params={"customer": subscription.customer, "subscription": subscription.id})
    renewal = stripe_sdk.v1.invoices.pay(renewal.id)
    paid_renewal = payments.event("invoice.paid", renewal)
    send(signed_in, paid_renewal, django_capture_on_commit_callbacks)
    send(signed_in, paid_renewal, django_capture_on_commit_callbacks)
    assert balance(alice) == 1200
    assert LedgerEntry.objects.filter(wallet__user=alice, reason=LedgerReason.SUBSCRIPTION).count() == 2
    assert "[Atelier] Your Pro credits for this month" in [m.subject for m in mail.outbox]

    # Cancel at period end: Pro stays until then.
    updated = stripe_sdk.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    send(signed_in, payments.event("customer.subscription.updated", updated), django_capture_on_commit_callbacks)
    billing_page = page(signed_in, "/billing/")
    assert "Ends on" in billing_page and "you keep Pro until then" in billing_page

    # The period ends: Stripe deletes the subscription, Pro is off, the credits stay.
    canceled = stripe_sdk.v1.subscriptions.cancel(subscription.id)
    send(signed_in, payments.event("customer.subscription.deleted", canceled), django_capture_on_commit_callbacks)
    assert Subscription.objects.get(user=alice).status == "canceled"
    billing_page = page(signed_in, "/billing/")
    assert "Renews on" not in billing_page and "<strong>Free</strong>" in billing_page
    assert balance(alice) == 1200

    # Invoices from Stripe are listed.
    assert billing_page.count("Paid") >= 2


def test_out_of_order_subscription_events_end_in_the_state_stripe_reports(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    signed_in.post("/billing/checkout/plan/pro/")
    session = payments.complete_checkout(payments.sessions[-1]["id"])
    created = stripe_sdk.v1.subscriptions.retrieve(session["subscription"])
    stripe_sdk.v1.subscriptions.update(created.id, params={"cancel_at_period_end": True})
    # "created" (stale: cancel flag off) arrives after the update was made: the API is believed.
    send(signed_in, payments.event("customer.subscription.created", created), django_capture_on_commit_callbacks)
    assert Subscription.objects.get(user=alice).cancel_at_period_end is True


def test_failed_renewal_payment_is_emailed(signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks):
    signed_in.post("/billing/checkout/plan/pro/")
    session = payments.complete_checkout(payments.sessions[-1]["id"])
    invoice = stripe_sdk.v1.invoices.retrieve(session["invoice"])
    send(signed_in, payments.event("invoice.payment_failed", invoice), django_capture_on_commit_callbacks)
    assert "[Atelier] We could not take your payment" in [m.subject for m in mail.outbox]


def test_manage_subscription_opens_the_customer_portal(signed_in, alice, payments):
    signed_in.post("/billing/checkout/plan/pro/")
    response = signed_in.post("/billing/portal/")
    assert response.status_code == 303
    portal = payments.portal_sessions[-1]
    assert response["Location"] == portal["url"]
    assert portal["customer"] == Customer.objects.get(user=alice).stripe_customer_id
    assert portal["return_url"].endswith("/billing/")


# --- refunds and disputes -------------------------------------------------------------------------------


def spend(user, amount: int) -> None:
    services.credits_reserve(user=user, amount=amount, reference=f"generation:spent-{amount}")
    services.credits_capture(reference=f"generation:spent-{amount}")


def test_refund_after_spending_records_a_debt_that_blocks_generations_until_settled(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    paid = buy(signed_in, payments, "100")
    send(signed_in, payments.event("checkout.session.completed", paid), django_capture_on_commit_callbacks)
    spend(alice, 95)
    assert balance(alice) == 5

    stripe_sdk.v1.refunds.create(params={"payment_intent": paid["payment_intent"]})
    intent = stripe_sdk.v1.payment_intents.retrieve(paid["payment_intent"])
    charge = stripe_sdk.v1.charges.retrieve(
        intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    )
    refunded = payments.event("charge.refunded", charge)
    send(signed_in, refunded, django_capture_on_commit_callbacks)
    send(signed_in, payments.event("charge.refunded", charge), django_capture_on_commit_callbacks)  # again

    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt) == (0, 95)
    assert ledger_sum(alice) == 0
    billing_page = page(signed_in, "/billing/")
    assert "<td>Refunded</td>" in billing_page
    assert "you owe <strong>95</strong> credits" in billing_page
    response = signed_in.post("/create/?tab=image", {"model": "local-canvas", "prompt": "a fox"})
    assert "owes 95 credits after a refunded payment" in html.unescape(response.content.decode())
    assert not Generation.objects.exists()

    # Buying again settles the debt first.
    again = buy(signed_in, payments, "500")
    send(signed_in, payments.event("checkout.session.completed", again), django_capture_on_commit_callbacks)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.debt) == (405, 0)
    assert ledger_sum(alice) == 405


def test_partial_refund_takes_back_the_refunded_share(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    paid = buy(signed_in, payments, "500")
    send(signed_in, payments.event("checkout.session.completed", paid), django_capture_on_commit_callbacks)
    stripe_sdk.v1.refunds.create(params={"payment_intent": paid["payment_intent"], "amount": 500})  # $5 of $20
    charge_id = Payment.objects.get(user=alice).stripe_charge_id
    send(
        signed_in,
        payments.event("charge.refunded", stripe_sdk.v1.charges.retrieve(charge_id)),
        django_capture_on_commit_callbacks,
    )
    assert balance(alice) == 375
    assert Payment.objects.get(user=alice).credits_reversed == 125


# Disputes (inquiries, open, won, lost, in any order) are tested with Stripe's live object shapes in
# test_stripe_live_shapes.py: localstripe has no disputes.


# --- the webhook endpoint ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["forged", "wrong_secret", "stale", "unsigned", "not_json"])
def test_webhooks_that_fail_verification_are_refused_and_change_nothing(
    signed_in, alice, payments, django_capture_on_commit_callbacks, case
):
    paid = buy(signed_in, payments, "100")
    event = payments.event("checkout.session.completed", paid)
    body = json.dumps(event)
    headers = {"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)}
    if case == "forged":
        body = body.replace('"paid"', '"paid" ', 1)  # the signature no longer matches the body
    elif case == "wrong_secret":
        headers = {"Stripe-Signature": sign_payload(body, "whsec_someone_else")}
    elif case == "stale":
        headers = {"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET, int(time.time()) - 3600)}
    elif case == "unsigned":
        headers = {}
    else:
        body = "not json"
        headers = {"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/webhooks/stripe/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(alice) == 0


def test_unknown_event_types_are_stored_and_acknowledged(client, payments, django_capture_on_commit_callbacks):
    response = send(
        client, payments.event("customer.tax_id.created", {"id": "txi_1"}), django_capture_on_commit_callbacks
    )
    assert response.status_code == 200
    assert StripeEvent.objects.get().status == EventStatus.IGNORED


def test_an_event_about_someone_we_do_not_know_is_kept_as_failed_for_staff(
    client, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    customer = stripe_sdk.v1.customers.create(params={"email": "stranger@example.com"})
    plan_price = stripe_sdk.v1.prices.create(
        params={
            "product_data": {"name": "x"},
            "unit_amount": 100,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    sub = {"id": "sub_unknown", "customer": customer.id, "items": {"data": [{"price": {"id": plan_price.id}}]}}
    response = send(client, payments.event("customer.subscription.created", sub), django_capture_on_commit_callbacks)
    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == EventStatus.FAILED and event.error


# --- payments not configured -------------------------------------------------------------------------------


def test_without_stripe_keys_the_pages_say_so_and_nothing_breaks(client, alice, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(alice)
    pricing = page(client, "/pricing/")
    assert "Payments are not set up on this server yet" in pricing
    assert "disabled" in pricing
    response = client.post("/billing/checkout/pack/100/", follow=True)
    assert "Payments are not set up on this server yet" in html.unescape(response.content.decode())
    assert "Payments are not set up on this server yet" in page(client, "/billing/")
    assert client.post("/billing/portal/").status_code == 302
    assert client.post("/webhooks/stripe/", data="{}", content_type="application/json").status_code == 400
    assert not Customer.objects.exists()


def test_stripe_outage_at_checkout_is_a_message_not_an_error_page(client, alice, settings):
    from billing.models import CreditPack

    CreditPack.objects.filter(slug="100").update(stripe_price_id="price_published_earlier")
    settings.STRIPE_SECRET_KEY = "sk_test_atelier"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    settings.STRIPE_TIMEOUT = 2
    client.force_login(alice)
    response = client.post("/billing/checkout/pack/100/", follow=True)
    assert response.status_code == 200
    assert "We could not reach Stripe." in html.unescape(response.content.decode())
    assert not Customer.objects.exists()


def test_stripe_prices_command_creates_prices_once_and_stores_their_ids(payments):
    from io import StringIO

    from django.core.management import call_command

    from billing.models import CreditPack, Plan

    out = StringIO()
    call_command("stripe_prices", stdout=out)
    pro = Plan.objects.get(slug="pro")
    assert pro.stripe_price_id and pro.stripe_price_id in out.getvalue()
    assert all(CreditPack.objects.values_list("stripe_price_id", flat=True))
    prices = {p["lookup_key"]: p for p in payments.prices}
    assert prices["atelier-plan-pro"]["recurring"]["interval"] == "month"
    assert prices["atelier-pack-2000"]["unit_amount"] == 6000
    CreditPack.objects.update(stripe_price_id="")
    Plan.objects.update(stripe_price_id="")
    call_command("stripe_prices", stdout=StringIO())  # found again by lookup key, not created twice
    assert len(payments.prices) == 4


def test_stripe_prices_command_explains_when_payments_are_off(settings):
    from django.core.management import CommandError, call_command

    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="Payments are not set up"):
        call_command("stripe_prices")


# --- from the billing review: today's API shapes, outages, races ------------------------------------------


def test_refund_of_a_pro_invoice_is_found_through_its_invoice_payment_and_taken_back(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    signed_in.post("/billing/checkout/plan/pro/")
    session = payments.complete_checkout(payments.sessions[-1]["id"])
    invoice = stripe_sdk.v1.invoices.retrieve(session["invoice"])
    assert "payment_intent" not in invoice and "charge" not in invoice  # as in today's API
    send(signed_in, payments.event("invoice.paid", invoice), django_capture_on_commit_callbacks)
    assert balance(alice) == 600

    payment = Payment.objects.get(user=alice)
    assert payment.stripe_payment_intent_id and payment.stripe_charge_id
    refund = stripe_sdk.v1.refunds.create(params={"payment_intent": payment.stripe_payment_intent_id})
    charge = stripe_sdk.v1.charges.retrieve(refund.charge)
    send(signed_in, payments.event("charge.refunded", charge), django_capture_on_commit_callbacks)
    assert balance(alice) == 0
    assert Payment.objects.get(user=alice).state == "Refunded"


def test_a_refund_processed_before_the_grant_still_leaves_the_purchase_uncredited(
    signed_in, alice, payments, stripe_sdk, django_capture_on_commit_callbacks
):
    paid = buy(signed_in, payments, "100")
    stripe_sdk.v1.refunds.create(params={"payment_intent": paid["payment_intent"]})
    charge = stripe_sdk.v1.charges.retrieve(
        stripe_sdk.v1.payment_intents.retrieve(paid["payment_intent"]).latest_charge
    )
    send(
        signed_in, payments.event("charge.refunded", charge), django_capture_on_commit_callbacks
    )  # nothing to undo yet
    send(signed_in, payments.event("checkout.session.completed", paid), django_capture_on_commit_callbacks)
    assert balance(alice) == 0
    assert ledger_sum(alice) == 0
    assert Payment.objects.get(user=alice).credits_reversed == 100


@pytest.mark.django_db(transaction=True)
def test_stripe_down_while_processing_inline_asks_for_redelivery_then_credits_once(
    signed_in, alice, payments, settings
):
    """Embedded default (no broker): the event is processed inside the webhook request, which
    commits as it goes, so an outage is answered 503 and Stripe's redelivery completes it."""
    paid = buy(signed_in, payments, "100")
    body = json.dumps(payments.event("checkout.session.completed", paid))
    headers = {"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)}

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable
    settings.STRIPE_TIMEOUT = 1
    response = signed_in.post("/webhooks/stripe/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 503
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.RECEIVED and "could not reach Stripe" in stored.error
    assert balance(alice) == 0

    settings.STRIPE_API_BASE = payments.url  # Stripe is back and delivers the event again
    response = signed_in.post("/webhooks/stripe/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert balance(alice) == 100
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED
    response = signed_in.post("/webhooks/stripe/", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 200 and balance(alice) == 100


def test_beat_requeues_events_left_unprocessed(alice, signed_in, payments, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from billing.tasks import requeue_stripe_events

    paid = buy(signed_in, payments, "100")
    event = StripeEvent.objects.create(
        event_id="evt_left",
        type="checkout.session.completed",
        payload=payments.event("checkout.session.completed", paid),
    )
    StripeEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stripe_events.apply().get() == 1
    assert balance(alice) == 100
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED


def test_an_expired_checkout_stops_the_waiting_page(signed_in, alice, payments, django_capture_on_commit_callbacks):
    signed_in.post("/billing/checkout/pack/100/")
    session = payments.expire_checkout(payments.sessions[-1]["id"])
    send(signed_in, payments.event("checkout.session.expired", session), django_capture_on_commit_callbacks)
    status = page(signed_in, f"/billing/status/?checkout={session['id']}")
    assert "That checkout expired before it was paid" in status and "hx-get" not in status
    assert balance(alice) == 0


def test_changing_a_price_in_the_admin_takes_effect_once_stripe_prices_publishes_it(client, alice, payments):
    """No Stripe catalogue object is created inside a web request: until `manage.py stripe_prices`
    runs, the repriced pack says payments are being set up; then checkout sells the new price."""
    from io import StringIO

    from django.core.management import call_command

    from billing.models import CreditPack

    old_price = CreditPack.objects.get(slug="100").stripe_price_id
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    pack = CreditPack.objects.get(slug="100")
    response = client.post(
        f"/admin/billing/creditpack/{pack.pk}/change/",
        {"slug": "100", "title": "100 credits", "credits": 100, "price_cents": 600, "currency": "usd",
         "stripe_price_id": old_price, "active": "on", "order": 10},
    )  # fmt: skip
    assert response.status_code == 302
    assert CreditPack.objects.get(slug="100").stripe_price_id == ""
    prices_before = len(payments.prices)

    client.force_login(alice)
    response = client.post("/billing/checkout/pack/100/", follow=True)
    assert "Payments are being set up" in html.unescape(response.content.decode())
    assert len(payments.prices) == prices_before and not payments.sessions

    call_command("stripe_prices", stdout=StringIO())
    response = client.post("/billing/checkout/pack/100/")
    assert response.status_code == 303
    assert payments.sessions[-1]["amount_total"] == 600
    assert CreditPack.objects.get(slug="100").stripe_price_id not in ("", old_price)


# --- Checkout sessions: one per purchase, whatever the clock says -----------------------------------


def test_a_double_click_across_a_minute_boundary_opens_one_checkout(signed_in, alice, payments):
    from datetime import timedelta
    from unittest import mock

    from django.utils import timezone

    just_before = timezone.now().replace(second=59, microsecond=900000)
    with mock.patch("django.utils.timezone.now", return_value=just_before):
        first = signed_in.post("/billing/checkout/pack/100/")
    with mock.patch("django.utils.timezone.now", return_value=just_before + timedelta(seconds=1)):
        second = signed_in.post("/billing/checkout/pack/100/")
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"]
    assert len(payments.sessions) == 1 and CheckoutSession.objects.filter(user=alice).count() == 1


def test_two_requests_at_once_open_one_checkout(signed_in, alice, payments):
    """The race a double click makes: both requests send the same idempotency key."""
    from billing.models import CreditPack

    pack = CreditPack.objects.get(slug="100")
    first = services.payments.checkout_start(user=alice, pack=pack)
    CheckoutSession.objects.filter(user=alice).delete()  # as if the second request ran before the first saved
    second = services.payments.checkout_start(user=alice, pack=pack)
    assert first == second and len(payments.sessions) == 1


def test_a_second_purchase_after_paying_opens_a_new_checkout(
    signed_in, alice, payments, django_capture_on_commit_callbacks
):
    paid = buy(signed_in, payments, "100")
    response = signed_in.post("/billing/checkout/pack/100/")  # paid, but the webhook is not here yet
    assert response.status_code == 303 and response["Location"] != paid["url"]
    assert len(payments.sessions) == 2
    send(signed_in, payments.event("checkout.session.completed", paid), django_capture_on_commit_callbacks)
    third = signed_in.post("/billing/checkout/pack/100/")
    assert third["Location"] == response["Location"]  # the second one is still open: reused
    assert len(payments.sessions) == 2


def test_an_expired_checkout_is_not_reused(signed_in, alice, payments):
    first = signed_in.post("/billing/checkout/pack/100/")
    payments.expire_checkout(payments.sessions[-1]["id"])
    second = signed_in.post("/billing/checkout/pack/100/")
    assert second.status_code == 303 and second["Location"] != first["Location"]
    assert len(payments.sessions) == 2


def test_a_pack_without_a_published_price_says_payments_are_being_set_up(signed_in, alice, payments):
    from billing.models import CreditPack

    CreditPack.objects.filter(slug="500").update(stripe_price_id="")
    prices_before = len(payments.prices)
    response = signed_in.post("/billing/checkout/pack/500/", follow=True)
    assert "Payments are being set up" in html.unescape(response.content.decode())
    assert len(payments.prices) == prices_before and not payments.sessions


# --- webhook bodies that are signed but odd -----------------------------------------------------------


@pytest.mark.parametrize("body", ["[1, 2]", '"evt"', "null", "12"])
def test_a_signed_body_that_is_not_a_json_object_is_refused_with_a_reason(client, payments, body):
    response = client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)},
    )
    assert response.status_code == 400
    assert "not a JSON object" in response.json()["error"]
    assert not StripeEvent.objects.exists()


def test_a_signed_event_with_nul_characters_is_stored_and_processed(
    signed_in, alice, payments, django_capture_on_commit_callbacks
):
    paid = buy(signed_in, payments, "100")
    event = payments.event("checkout.session.completed", paid)
    event["data"]["object"]["metadata"]["note"] = "a\x00b"
    body = json.dumps(event)
    assert "\\u0000" in body  # escaped in the JSON text, as Stripe sends it
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(
            "/webhooks/stripe/",
            data=body,
            content_type="application/json",
            headers={"Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)},
        )
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.payload["data"]["object"]["metadata"]["note"] == "a\ufffdb"
    assert stored.status == EventStatus.PROCESSED and balance(alice) == 100


def test_a_signed_event_is_acknowledged_when_the_broker_is_down_and_beat_queues_it_later(
    signed_in, alice, payments, django_capture_on_commit_callbacks
):
    from unittest import mock

    from kombu.exceptions import OperationalError

    paid = buy(signed_in, payments, "100")
    event = payments.event("checkout.session.completed", paid)
    with mock.patch("billing.tasks.process_stripe_event.delay", side_effect=OperationalError("broker down")):
        response = send(signed_in, event, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.RECEIVED and balance(alice) == 0

    from datetime import timedelta

    from django.utils import timezone

    from billing.tasks import requeue_stripe_events

    StripeEvent.objects.filter(pk=stored.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stripe_events.apply().get() == 1
    assert balance(alice) == 100


def test_after_a_stripe_error_the_next_click_sends_a_new_idempotency_key(signed_in, alice, payments):
    """Stripe answers a reused key with its first answer, errors included, for 24 hours."""
    from unittest import mock

    from billing import stripe_api
    from billing.errors import PaymentsError

    keys = []
    real = stripe_api.checkout_session_create

    def flaky(*, params, idempotency_key):
        keys.append(idempotency_key)
        if len(keys) == 1:
            raise PaymentsError("Stripe had a problem.", retryable=True, detail="500")
        return real(params=params, idempotency_key=idempotency_key)

    with mock.patch.object(stripe_api, "checkout_session_create", side_effect=flaky):
        failed = signed_in.post("/billing/checkout/pack/100/", follow=True)
        assert "Stripe had a problem." in html.unescape(failed.content.decode())
        response = signed_in.post("/billing/checkout/pack/100/")
    assert response.status_code == 303
    assert len(keys) == 2 and keys[0] != keys[1]


def test_a_late_renewal_webhook_does_not_open_a_second_pro_subscription(signed_in, alice, payments):
    from datetime import timedelta

    from django.utils import timezone

    Subscription.objects.create(
        user=alice,
        stripe_subscription_id="sub_late",
        status="active",
        current_period_end=timezone.now() - timedelta(hours=5),  # renewed at Stripe, webhook not here
    )
    response = signed_in.post("/billing/checkout/plan/pro/", follow=True)
    assert "You already have Pro" in html.unescape(response.content.decode())
    assert not payments.sessions
