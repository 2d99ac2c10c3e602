"""The back office for money: credit adjustments with a reason, Stripe events and reprocessing."""

from __future__ import annotations

import pytest

from billing.models import CreditAdjustment, EventStatus, LedgerEntry, LedgerReason, StripeEvent, Wallet
from billing.services import credits_grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_staff_grant_credits_with_a_reason_through_the_ledger(staff, alice):
    response = staff.post(
        "/admin/billing/creditadjustment/add/", {"user": alice.pk, "amount": 40, "reason": "Apology for an outage"}
    )
    assert response.status_code == 302
    assert Wallet.objects.get(user=alice).balance == 40
    entry = LedgerEntry.objects.get(wallet__user=alice)
    assert entry.reason == LedgerReason.ADMIN_GRANT and entry.memo.startswith("Apology for an outage")
    assert CreditAdjustment.objects.get().ledger_entry == entry


def test_a_reason_is_required_and_a_revoke_cannot_go_below_zero(staff, alice):
    credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="five")
    no_reason = staff.post("/admin/billing/creditadjustment/add/", {"user": alice.pk, "amount": 3, "reason": "  "})
    assert no_reason.status_code == 200 and "This field is required." in no_reason.content.decode()
    too_much = staff.post("/admin/billing/creditadjustment/add/", {"user": alice.pk, "amount": -9, "reason": "abuse"})
    assert "has only 5 credits" in too_much.content.decode()
    revoke = staff.post("/admin/billing/creditadjustment/add/", {"user": alice.pk, "amount": -2, "reason": "abuse"})
    assert revoke.status_code == 302
    assert Wallet.objects.get(user=alice).balance == 3
    assert CreditAdjustment.objects.count() == 1


def test_stripe_events_can_be_read_and_reprocessed(staff, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_atelier"
    event = StripeEvent.objects.create(
        event_id="evt_1", type="customer.tax_id.created", payload={"data": {"object": {}}}, status=EventStatus.FAILED
    )
    assert staff.get(f"/admin/billing/stripeevent/{event.pk}/change/").status_code == 200
    response = staff.post("/admin/billing/stripeevent/", {"action": "reprocess", "_selected_action": [event.pk]})
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == EventStatus.IGNORED and event.attempts == 1


def test_money_records_are_read_only_in_the_admin(staff):
    for model in ("wallet", "ledgerentry", "payment", "subscription", "customer", "stripeevent"):
        assert staff.get(f"/admin/billing/{model}/").status_code == 200, model
        assert staff.get(f"/admin/billing/{model}/add/").status_code == 403, model
