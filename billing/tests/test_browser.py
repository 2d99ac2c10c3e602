"""Pricing and billing pages in Chromium: the offer, the credit history, a purchase coming in
while the page waits, and the state when payments are not configured."""

from __future__ import annotations

import json

import pytest

from billing import services
from billing.models import LedgerReason
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory
from tests.fakes.stripe_api import sign_payload
from tests.fixtures import STRIPE_WEBHOOK_SECRET

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def buyer(db):
    user = UserFactory(email="buyer@example.com", display_name="Buyer")
    for index in range(23):  # more than one page of history
        services.credits_grant(
            user=user, amount=1, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"b{index}", memo=f"Gift {index}"
        )
    return user


def test_pricing_page_lists_the_free_tier_packs_and_pro(page, payments, buyer):
    sign_in(page, buyer)
    page.goto("/pricing/")
    for text in ("Free", "Pro", "100 credits", "500 credits", "2,000 credits", "$60.00"):
        assert page.get_by_text(text, exact=True).first.is_visible(), text
    assert page.get_by_text("$15.00 / month").is_visible()
    assert page.get_by_role("button", name="Subscribe to Pro").is_enabled()
    screenshot(page, "pricing")


def test_buying_a_pack_from_the_pricing_page_lands_on_billing_which_updates_itself(
    page, payments, buyer, live_server, settings
):
    settings.SITE_URL = live_server.url  # Stripe sends people back to SITE_URL
    sign_in(page, buyer)
    page.goto("/pricing/")
    page.get_by_role("button", name="Buy 500 credits").click()
    page.wait_for_url(f"{payments.url}/pay/**")  # Stripe's hosted page (the stand-in's)
    session = payments.sessions[-1]
    page.get_by_label("Card number").fill("4242424242424242")
    page.get_by_role("button", name="Pay").click()  # pays, then Stripe sends the person back to us
    page.wait_for_url(f"**/billing/?checkout={session['id']}")
    page.get_by_text("Payment processing…").wait_for()
    screenshot(page, "billing-processing")
    paid = payments.session(session["id"])
    assert paid["payment_status"] == "paid"

    body = json.dumps(payments.event("checkout.session.completed", paid))
    response = page.request.post(
        f"{live_server.url}/webhooks/stripe/",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign_payload(body, STRIPE_WEBHOOK_SECRET)},
    )
    assert response.status == 200
    page.get_by_text("Payment received. 500 credits were added").wait_for(timeout=10_000)
    page.reload()
    assert page.locator("#balance").inner_text() == "523 credits"
    assert page.get_by_role("cell", name="Credit pack purchase — 500 credits").is_visible()
    assert page.get_by_text("Page 1 of 2").is_visible()
    screenshot(page, "billing")
    page.get_by_role("link", name="Older →").click()
    assert page.get_by_text("Page 2 of 2").is_visible()


def test_without_payments_the_pages_say_so(page, buyer, settings):
    settings.STRIPE_SECRET_KEY = ""
    sign_in(page, buyer)
    page.goto("/pricing/")
    assert page.locator("#payments-off").is_visible()
    assert page.get_by_role("button", name="Buy 100 credits").is_disabled()
    screenshot(page, "pricing-not-configured")
    page.goto("/billing/")
    assert page.get_by_text("Payments are not set up on this server yet.").is_visible()
    assert page.locator("#balance").inner_text() == "23 credits"
    assert page.get_by_role("cell", name="Added by support — Gift 22").is_visible()


def test_payments_show_their_refund_and_dispute_state_on_desktop_and_phone(page, buyer):
    from billing.models import Payment

    states = [("", 0), ("needs_response", 100), ("lost", 100), ("warning_needs_response", 0), ("won", 0), ("", 25)]
    for index, (dispute, reversed_) in enumerate(states):
        Payment.objects.create(
            user=buyer,
            kind="pack",
            stripe_payment_intent_id=f"pi_{index}",
            amount_cents=500,
            currency="usd",
            credits=100,
            credits_reversed=reversed_,
            dispute_status=dispute,
            idempotency_key=f"purchase:pi_{index}",
            receipt_url="https://pay.stripe.com/receipts/x",
        )
    sign_in(page, buyer)
    page.goto("/billing/")
    table = page.locator("#purchases")
    for text in ("Disputed: credits on hold", "Charged back", "Bank inquiry (nothing held)", "Partly refunded"):
        assert table.get_by_text(text, exact=True).is_visible(), text
    assert table.get_by_text("Paid", exact=True).count() == 2  # never bought, and the won dispute
    screenshot(page, "billing-payment-states")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/billing/")
    overflow = page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    screenshot(page, "billing-payment-states-phone")
    assert not overflow, "the billing page scrolls sideways on a phone"
