"""Stripe webhooks with objects in the full shapes live Stripe sends (tests/fakes/stripe_shapes.py,
built from Stripe's published fixtures: decimal strings, nulls, fields we never read).

The Stripe API stand-in answers read-backs with the same full objects (`payments.put`), through
the real `stripe` library, so the handlers see what they would see in production: `Decimal`s from
the SDK, invoices without `payment_intent`, disputes with their real lifecycle statuses.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import (
    Customer,
    DisputeStatus,
    EventStatus,
    LedgerEntry,
    Payment,
    Plan,
    StripeEvent,
    Subscription,
    Wallet,
)
from billing.selectors import is_pro
from billing.services import payments as payment_services
from billing.tests.webhooks import send
from tests.fakes import stripe_shapes as shapes

pytestmark = pytest.mark.django_db

DAY = 86400


@dataclass
class World:
    """What Stripe holds about one person, in live shapes, as a timeline of steps: each step
    changes some objects at Stripe and emits the events about it (each carrying the snapshot of
    its moment). Live (the default), every step is published to the stand-in as it is built, so
    read-backs see the final state; otherwise `steps` is replayed by the ordering property."""

    server: object
    user: object
    live: bool = True
    customer: str = field(default_factory=lambda: shapes.new_id("cus"))
    objects: list = field(default_factory=list)
    steps: list = field(default_factory=list)

    def __post_init__(self):
        Customer.objects.get_or_create(user=self.user, defaults={"stripe_customer_id": self.customer})
        self.customer = Customer.objects.get(user=self.user).stripe_customer_id

    def publish(self, *objs):
        self.objects.extend(objs)
        self.server.put(*objs)

    def step(self, objs: list[dict], events: list[dict]) -> list[dict]:
        self.steps.append((copy.deepcopy(objs), list(events)))
        if self.live:
            self.publish(*objs)
        else:
            self.objects.extend(objs)
        return list(events)

    def pack(self, slug: str, *, credits: int, cents: int, refunded: int = 0, dispute: str | None = None):
        """A pack paid through Checkout; then optionally refunded in part, then optionally disputed."""
        intent_id, charge_id = shapes.new_id("pi"), shapes.new_id("ch")
        metadata = {"user": str(self.user.public_id), "kind": "pack", "offer": slug}
        intent = shapes.payment_intent(
            id=intent_id,
            customer=self.customer,
            amount=cents,
            latest_charge=charge_id,
            metadata={**metadata, "credits": str(credits)},
        )
        charge = shapes.charge(id=charge_id, customer=self.customer, payment_intent=intent_id, amount=cents)
        session = shapes.checkout_session(
            id=shapes.new_id("cs_test"),
            customer=self.customer,
            mode="payment",
            amount=cents,
            metadata=metadata,
            payment_intent=intent_id,
        )
        events = self.step(
            [intent, charge, session],
            [
                shapes.event("checkout.session.completed", session),
                shapes.event("payment_intent.succeeded", intent),
                shapes.event("charge.succeeded", charge),
            ],
        )
        if refunded:
            refund = shapes.refund(charge_id=charge_id, payment_intent=intent_id, amount=refunded)
            charge = shapes.charge(
                id=charge_id, customer=self.customer, payment_intent=intent_id, amount=cents, refunds=[refund]
            )
            events += self.step(
                [charge, refund],
                [shapes.event("charge.refunded", charge), shapes.event("charge.refund.updated", refund)],
            )
        if dispute:
            events += self.dispute(charge, final=dispute)
        return events

    def dispute(self, charge: dict, *, final: str) -> list[dict]:
        """A dispute (or inquiry) on a charge, opened, reviewed, then (unless still open) closed as `final`."""
        inquiry = final.startswith("warning_")
        opened = DisputeStatus.WARNING_NEEDS_RESPONSE if inquiry else DisputeStatus.NEEDS_RESPONSE
        reviewed = DisputeStatus.WARNING_UNDER_REVIEW if inquiry else DisputeStatus.UNDER_REVIEW
        dispute = shapes.dispute(
            charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=charge["amount"], status=opened
        )
        disputed_charge = {**charge, "disputed": True}  # and it stays true after a win
        events = self.step(
            [dispute, disputed_charge],
            [shapes.event("charge.dispute.created", dispute)]
            + ([] if inquiry else [shapes.event("charge.dispute.funds_withdrawn", dispute)]),
        )
        under_review = {**dispute, "status": reviewed}
        events += self.step([under_review], [shapes.event("charge.dispute.updated", under_review)])
        if final not in (opened, reviewed):
            closed = {**dispute, "status": final}
            events += self.step(
                [closed],
                [shapes.event("charge.dispute.closed", closed)]
                + ([shapes.event("charge.dispute.funds_reinstated", closed)] if final == DisputeStatus.WON else []),
            )
        return events

    def pro(self, *, renewals: int = 1, canceled: bool = True, disputed_renewal: str | None = None):
        """Pro bought through Checkout, renewed `renewals` times, a plan change billed as a
        proration invoice, optionally a dispute on the last renewal, then canceled."""
        plan = Plan.objects.get(slug="pro")
        sub_id = shapes.new_id("sub")
        now = int(time.time())
        start = now - (renewals * 30 + 1) * DAY
        meta = {"user": str(self.user.public_id), "kind": "plan", "offer": "pro"}

        def sub(status, period_start, **kw):
            return shapes.subscription(
                id=sub_id,
                customer=self.customer,
                price_id=plan.stripe_price_id,
                amount=plan.price_cents,
                status=status,
                period_start=period_start,
                period_end=period_start + 30 * DAY,
                metadata=meta,
                **kw,
            )

        def paid_invoice(reason, period_start, amount):
            invoice_id, intent_id, charge_id = shapes.new_id("in"), shapes.new_id("pi"), shapes.new_id("ch")
            invoice = shapes.invoice(
                id=invoice_id,
                customer=self.customer,
                subscription_id=sub_id,
                price_id=plan.stripe_price_id,
                amount=amount,
                billing_reason=reason,
                period_start=period_start,
                period_end=period_start + 30 * DAY,
            )
            intent = shapes.payment_intent(id=intent_id, customer=self.customer, amount=amount, latest_charge=charge_id)
            charge = shapes.charge(id=charge_id, customer=self.customer, payment_intent=intent_id, amount=amount)
            paid = shapes.invoice_payment(invoice_id=invoice_id, payment_intent=intent_id, amount=amount)
            return invoice, [invoice, intent, charge, paid], charge

        invoice, objs, _ = paid_invoice("subscription_create", start, plan.price_cents)
        session = shapes.checkout_session(
            id=shapes.new_id("cs_test"),
            customer=self.customer,
            mode="subscription",
            amount=plan.price_cents,
            metadata=meta,
            subscription_id=sub_id,
            invoice_id=invoice["id"],
        )
        created, active = sub("incomplete", start), sub("active", start)
        events = self.step([created, *objs], [shapes.event("customer.subscription.created", created)])
        events += self.step(
            [active, session],
            [
                shapes.event("invoice.paid", invoice),
                shapes.event("invoice.payment_succeeded", invoice),
                shapes.event("customer.subscription.updated", active),
                shapes.event("checkout.session.completed", session),
            ],
        )
        period_start, renewal_charge = start, None
        for _ in range(renewals):
            period_start += 30 * DAY
            renewed = sub("active", period_start)
            invoice, objs, renewal_charge = paid_invoice("subscription_cycle", period_start, plan.price_cents)
            events += self.step(
                [renewed, *objs],
                [
                    shapes.event("customer.subscription.updated", renewed),
                    shapes.event("invoice.paid", invoice),
                    shapes.event("invoice.payment_succeeded", invoice),
                ],
            )
        proration, objs, _ = paid_invoice("subscription_update", period_start, 250)
        events += self.step(objs, [shapes.event("invoice.paid", proration)])
        if disputed_renewal and renewal_charge:
            events += self.dispute(renewal_charge, final=disputed_renewal)
        ending = sub("active", period_start, cancel_at_period_end=True)
        events += self.step([ending], [shapes.event("customer.subscription.updated", ending)])
        if canceled:
            gone = shapes.subscription(
                id=sub_id,
                customer=self.customer,
                price_id=plan.stripe_price_id,
                amount=plan.price_cents,
                status="canceled",
                period_start=now - 30 * DAY,
                period_end=now - 60,
                canceled_at=now - 60,
                metadata=meta,
            )
            events += self.step([gone], [shapes.event("customer.subscription.deleted", gone)])
        return events


@pytest.fixture
def world(payments, alice):
    return World(server=payments, user=alice)


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def outcome(user) -> dict:
    wallet = Wallet.objects.filter(user=user).first()
    ledger = LedgerEntry.objects.filter(wallet__user=user).aggregate(s=Sum("amount"))["s"] or 0
    return {
        "balance": wallet.balance if wallet else 0,
        "ledger_sum": ledger,
        "debt": wallet.debt if wallet else 0,
        "flagged": bool(wallet and wallet.disputed_at),
        "payments": sorted(
            Payment.objects.filter(user=user).values_list(
                "kind", "stripe_charge_id", "credits", "credits_reversed", "dispute_status"
            )
        ),
        "subscriptions": sorted(Subscription.objects.filter(user=user).values_list("stripe_subscription_id", "status")),
        "is_pro": is_pro(user=user),
    }


# --- the crash this issue started from -------------------------------------------------------------


def test_every_subscribed_event_in_live_shape_is_stored_as_plain_json_and_processed(
    signed_in, alice, world, django_capture_on_commit_callbacks
):
    events = world.pack("500", credits=500, cents=2000, refunded=500) + world.pro(renewals=1, canceled=False)
    for event in events:
        response = send(signed_in, event, django_capture_on_commit_callbacks)
        assert response.status_code == 200, (event["type"], response.content)
    stored = StripeEvent.objects.all()
    assert stored.count() == len(events)
    failed = list(stored.filter(status=EventStatus.FAILED).values_list("type", "error"))
    assert failed == []
    invoice_paid = stored.filter(type="invoice.paid", payload__data__object__billing_reason="subscription_create").get()
    line = invoice_paid.payload["data"]["object"]["lines"]["data"][0]
    assert line["pricing"]["unit_amount_decimal"] == "1500" and line["quantity_decimal"] == "1"
    session = stored.filter(type="checkout.session.completed").first().payload["data"]["object"]
    assert session["currency_conversion"]["fx_rate"] == "0.94210000000000"
    created = stored.get(type="customer.subscription.created").payload["data"]["object"]
    assert created["items"]["data"][0]["price"]["unit_amount_decimal"] == "1500"

    result = outcome(alice)
    # 500 - 125 (a quarter refunded) + 600 (first invoice) + 600 (renewal); the proration grants nothing
    assert (result["balance"], result["debt"], result["flagged"]) == (375 + 1200, 0, False)
    assert result["is_pro"] and result["subscriptions"][0][1] == "active"
    assert Payment.objects.filter(user=alice, kind="subscription").count() == 2


def test_failed_and_expired_payments_in_live_shape_are_processed(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    from django.core import mail

    plan = Plan.objects.get(slug="pro")
    now = int(time.time())
    sub = shapes.subscription(
        id=shapes.new_id("sub"),
        customer=world.customer,
        price_id=plan.stripe_price_id,
        amount=plan.price_cents,
        status="past_due",
        period_start=now - DAY,
        period_end=now + 29 * DAY,
    )
    failed = shapes.invoice(
        id=shapes.new_id("in"),
        customer=world.customer,
        subscription_id=sub["id"],
        price_id=plan.stripe_price_id,
        amount=plan.price_cents,
        status="open",
        period_start=now - DAY,
        period_end=now + 29 * DAY,
    )
    expired = shapes.checkout_session(
        id=shapes.new_id("cs_test"),
        customer=world.customer,
        mode="payment",
        amount=500,
        metadata={"user": str(alice.public_id), "kind": "pack", "offer": "100"},
        status="expired",
        payment_status="unpaid",
    )
    async_failed = {**expired, "id": shapes.new_id("cs_test"), "status": "complete"}
    payments.put(sub, failed, expired, async_failed)
    for event in [
        shapes.event("invoice.payment_failed", failed),
        shapes.event("checkout.session.expired", expired),
        shapes.event("checkout.session.async_payment_failed", async_failed),
    ]:
        assert send(signed_in, event, django_capture_on_commit_callbacks).status_code == 200
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert [m.subject for m in mail.outbox] == ["[Atelier] We could not take your payment"]
    assert Subscription.objects.get(user=alice).status == "past_due"
    assert Wallet.objects.filter(user=alice, balance__gt=0).count() == 0


def test_a_subscription_event_in_live_shape_no_longer_answers_500(signed_in, world, django_capture_on_commit_callbacks):
    """On main before this fix: json.dumps of the SDK's Decimal in the stored payload -> 500, nothing stored."""
    event = world.pro(renewals=0, canceled=False)[-1]
    assert event["type"] == "customer.subscription.updated"
    response = send(signed_in, event, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED


# --- disputes follow Stripe's lifecycle --------------------------------------------------------------


def test_an_inquiry_opened_and_closed_takes_nothing_and_flags_nothing(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    events = world.pack("100", credits=100, cents=500)
    for event in events:
        send(signed_in, event, django_capture_on_commit_callbacks)
    charge = next(o for o in world.objects if o["object"] == "charge")
    inquiry = shapes.dispute(
        charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=500, status="warning_needs_response"
    )
    payments.put(inquiry)
    send(signed_in, shapes.event("charge.dispute.created", inquiry), django_capture_on_commit_callbacks)
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt, wallet.disputed_at) == (100, 0, None)
    assert Payment.objects.get(user=alice).state == "Bank inquiry (nothing held)"

    closed = {**inquiry, "status": "warning_closed"}
    payments.put(closed)
    send(signed_in, shapes.event("charge.dispute.closed", closed), django_capture_on_commit_callbacks)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.debt, wallet.disputed_at) == (100, 0, None)
    assert Payment.objects.get(user=alice).state == "Paid"


def test_an_open_dispute_holds_the_credits_and_a_lost_one_keeps_them(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    for event in world.pack("500", credits=500, cents=2000):
        send(signed_in, event, django_capture_on_commit_callbacks)
    charge = next(o for o in world.objects if o["object"] == "charge")
    dispute = shapes.dispute(
        charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=2000, status="needs_response"
    )
    payments.put(dispute)
    send(signed_in, shapes.event("charge.dispute.created", dispute), django_capture_on_commit_callbacks)
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.disputed_at is not None) == (0, True)
    assert Payment.objects.get(user=alice).state == "Disputed: credits on hold"

    lost = {**dispute, "status": "lost"}
    payments.put(lost)
    send(signed_in, shapes.event("charge.dispute.closed", lost), django_capture_on_commit_callbacks)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.debt, wallet.disputed_at is not None) == (0, 0, True)
    payment = Payment.objects.get(user=alice)
    assert (payment.credits_reversed, payment.state) == (500, "Charged back")


@pytest.mark.parametrize("grant_first", [True, False], ids=["won-after-grant", "won-before-grant"])
def test_a_won_dispute_gives_everything_back_whenever_the_grant_is_processed(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks, grant_first
):
    events = world.pack("500", credits=500, cents=2000, dispute="won")
    grants = [e for e in events if not e["type"].startswith("charge.dispute")]
    disputes = [e for e in events if e["type"].startswith("charge.dispute")]
    for event in (grants + disputes) if grant_first else (disputes + grants):
        send(signed_in, event, django_capture_on_commit_callbacks)
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt, wallet.disputed_at) == (500, 0, None)
    payment = Payment.objects.get(user=alice)
    assert (payment.credits_reversed, payment.dispute_status, payment.state) == (0, "won", "Paid")


def test_a_won_dispute_settles_the_debt_it_caused(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    from billing import services

    for event in world.pack("100", credits=100, cents=500):
        send(signed_in, event, django_capture_on_commit_callbacks)
    services.credits_reserve(user=alice, amount=60, reference="generation:spent")
    services.credits_capture(reference="generation:spent")
    charge = next(o for o in world.objects if o["object"] == "charge")
    dispute = shapes.dispute(
        charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=500, status="under_review"
    )
    payments.put(dispute)
    send(signed_in, shapes.event("charge.dispute.created", dispute), django_capture_on_commit_callbacks)
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt) == (0, 60)

    payments.put({**dispute, "status": "won"})
    send(
        signed_in,
        shapes.event("charge.dispute.closed", {**dispute, "status": "won"}),
        django_capture_on_commit_callbacks,
    )
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.debt, wallet.disputed_at) == (40, 0, None)
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"] == 40


def test_staff_reprocessing_an_old_dispute_event_after_a_win_changes_nothing(
    signed_in, alice, world, django_capture_on_commit_callbacks
):
    for event in world.pack("500", credits=500, cents=2000, dispute="won"):
        send(signed_in, event, django_capture_on_commit_callbacks)
    before = outcome(alice)
    created = StripeEvent.objects.get(type="charge.dispute.created")
    assert created.payload["data"]["object"]["status"] == "needs_response"
    assert payment_services.stripe_event_process(event_pk=created.pk, force=True) == EventStatus.PROCESSED
    assert outcome(alice) == before and before["balance"] == 500


def test_an_appealed_lost_dispute_keeps_the_credits_held(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    for event in world.pack("500", credits=500, cents=2000, dispute="lost"):
        send(signed_in, event, django_capture_on_commit_callbacks)
    dispute = next(o for o in world.objects if o["object"] == "dispute")
    for status in ("appeal_needs_response", "appeal_under_review", "some_status_stripe_adds_later"):
        payments.put({**dispute, "status": status})
        send(
            signed_in,
            shapes.event("charge.dispute.updated", {**dispute, "status": status}),
            django_capture_on_commit_callbacks,
        )
        wallet = Wallet.objects.get(user=alice)
        assert (wallet.balance, wallet.disputed_at is not None) == (0, True), status
        assert Payment.objects.get(user=alice).credits_reversed == 500


def test_with_two_disputes_on_a_charge_the_most_serious_one_shows(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    for event in world.pack("500", credits=500, cents=2000):
        send(signed_in, event, django_capture_on_commit_callbacks)
    charge = next(o for o in world.objects if o["object"] == "charge")
    lost = shapes.dispute(charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=1000, status="lost")
    lost["created"] -= 100
    inquiry = shapes.dispute(
        charge_id=charge["id"], payment_intent=charge["payment_intent"], amount=1000, status="warning_closed"
    )
    payments.put(lost, inquiry)
    send(signed_in, shapes.event("charge.dispute.closed", inquiry), django_capture_on_commit_callbacks)
    payment = Payment.objects.get(user=alice)
    assert (payment.credits_reversed, payment.dispute_status, payment.state) == (250, "lost", "Charged back")
    assert Wallet.objects.get(user=alice).disputed_at is not None


def test_the_settle_command_repairs_payments_wrongly_reversed_before_the_fix(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    """Before the fix an inquiry took everything and flagged the wallet, and the closing event
    was ignored; migration 0006 turns that into `needs_response`. The command asks Stripe."""
    from io import StringIO

    from django.core.management import call_command

    from billing import services

    for event in world.pack("100", credits=100, cents=500, dispute="warning_closed"):
        send(signed_in, event, django_capture_on_commit_callbacks)
    payment = Payment.objects.get(user=alice)
    # what main did before: everything taken, flagged, marked disputed
    services.payment_credits_settle(payment=payment, target=100, dispute_status="needs_response", reason="old bug")
    assert Wallet.objects.get(user=alice).balance == 0

    out = StringIO()
    call_command("stripe_settle_payments", stdout=out)
    assert "1 payment(s) changed" in out.getvalue()
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt, wallet.disputed_at) == (100, 0, None)
    call_command("stripe_settle_payments", stdout=(again := StringIO()))
    assert "0 payment(s) changed" in again.getvalue()


# --- subscriptions --------------------------------------------------------------------------------------


def test_proration_invoices_grant_nothing(signed_in, alice, world, django_capture_on_commit_callbacks):
    events = world.pro(renewals=0, canceled=False)
    for event in events:
        send(signed_in, event, django_capture_on_commit_callbacks)
    assert Wallet.objects.get(user=alice).balance == 600
    assert Payment.objects.filter(user=alice).count() == 1
    proration = [e for e in events if e["type"] == "invoice.paid"][-1]
    assert proration["data"]["object"]["billing_reason"] == "subscription_update"
    assert StripeEvent.objects.get(event_id=proration["id"]).status == EventStatus.PROCESSED


def test_a_canceled_subscription_ends_pro_whatever_the_order(
    signed_in, alice, world, django_capture_on_commit_callbacks
):
    events = world.pro(renewals=1, canceled=True)
    deleted = next(e for e in events if e["type"] == "customer.subscription.deleted")
    for event in [deleted, *events]:  # the deletion first, then everything else (older) again
        send(signed_in, event, django_capture_on_commit_callbacks)
    assert Subscription.objects.get(user=alice).status == "canceled"
    assert not is_pro(user=alice)


def test_a_stale_read_never_revives_a_canceled_subscription(
    signed_in, alice, world, payments, django_capture_on_commit_callbacks
):
    events = world.pro(renewals=0, canceled=True)
    for event in events:
        send(signed_in, event, django_capture_on_commit_callbacks)
    assert Subscription.objects.get(user=alice).status == "canceled"
    active = next(e for e in events if e["type"] == "customer.subscription.updated")["data"]["object"]
    payments.put(active)  # an out-of-date answer (replica lag)
    send(signed_in, shapes.event("customer.subscription.updated", active), django_capture_on_commit_callbacks)
    assert Subscription.objects.get(user=alice).status == "canceled"
    assert not is_pro(user=alice)


def test_is_pro_ends_with_a_period_that_ended_without_renewal(alice):
    sub = Subscription.objects.create(
        user=alice, stripe_subscription_id="sub_lapsed", status="active", current_period_end=timezone.now()
    )
    assert is_pro(user=alice)  # within the renewal grace
    Subscription.objects.filter(pk=sub.pk).update(current_period_end=timezone.now() - timedelta(days=2))
    assert not is_pro(user=alice)
    Subscription.objects.filter(pk=sub.pk).update(current_period_end=timezone.now() + timedelta(days=20))
    assert is_pro(user=alice)


# --- failures and retries -------------------------------------------------------------------------------


def test_an_event_that_failed_while_stripe_was_down_is_retried_by_beat(
    signed_in, alice, world, payments, settings, django_capture_on_commit_callbacks
):
    from billing.tasks import requeue_stripe_events

    paid = world.pack("100", credits=100, cents=500)[0]
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable while the event is processed
    settings.STRIPE_TIMEOUT = 1
    send(signed_in, paid, django_capture_on_commit_callbacks)
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.RECEIVED and stored.attempts == 1
    assert Wallet.objects.filter(user=alice, balance__gt=0).count() == 0

    settings.STRIPE_API_BASE = payments.url
    StripeEvent.objects.filter(pk=stored.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stripe_events.apply().get() == 1
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (EventStatus.PROCESSED, 2)
    assert Wallet.objects.get(user=alice).balance == 100


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-task (nothing in the task can catch it)."""


def test_a_worker_crash_during_processing_is_finished_once_by_the_next_attempt(
    signed_in, alice, world, monkeypatch, django_capture_on_commit_callbacks
):
    from billing.tasks import requeue_stripe_events

    paid = world.pack("500", credits=500, cents=2000, refunded=500)
    real_settle = payment_services._payment_settle

    def crash(*args, **kwargs):
        raise WorkerKilled()

    monkeypatch.setattr(payment_services, "_payment_settle", crash)  # after the grant, before the refund share
    with pytest.raises(WorkerKilled):
        send(signed_in, paid[0], django_capture_on_commit_callbacks)
    stored = StripeEvent.objects.get()
    assert stored.status == EventStatus.RECEIVED  # stored, not processed: beat will queue it again
    assert Wallet.objects.get(user=alice).balance == 500  # the grant committed before the crash

    monkeypatch.setattr(payment_services, "_payment_settle", real_settle)
    StripeEvent.objects.filter(pk=stored.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        requeue_stripe_events.apply().get()
    with django_capture_on_commit_callbacks(execute=True):
        requeue_stripe_events.apply().get()  # nothing left to do
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED
    result = outcome(alice)
    assert (result["balance"], result["ledger_sum"]) == (375, 375)


# --- the ordering property ---------------------------------------------------------------------------------


class _Rollback(Exception):
    def __init__(self, result):
        self.result = result


def play(client, user, server, steps, schedule, capture, *, reprocess=()) -> dict:
    """Replay a story's timeline at Stripe and deliver its events on `schedule` (a list of
    (slot, tiebreak, step index, event)): an event is never delivered before the step that emitted
    it, so each read-back sees Stripe as it was then or later. Then staff reprocess some stored
    events. Returns the outcome and undoes it all (database and the stand-in's objects)."""
    server.unpublish_all()
    try:
        with transaction.atomic():
            last_slot = max([len(steps) - 1, *(slot for slot, *_ in schedule)])
            for slot in range(last_slot + 1):
                if slot < len(steps):
                    server.put(*steps[slot][0])
                for _, _, _, event in sorted((d for d in schedule if d[0] == slot), key=lambda d: d[1]):
                    response = send(client, event, capture)
                    assert response.status_code == 200, response.content
            for event_id in reprocess:
                stored = StripeEvent.objects.get(event_id=event_id)
                payment_services.stripe_event_process(event_pk=stored.pk, force=True)
            failed = list(StripeEvent.objects.filter(status=EventStatus.FAILED).values_list("type", "error"))
            assert failed == []
            raise _Rollback(outcome(user))
    except _Rollback as done:
        return done.result


@pytest.fixture
def story(payments, alice):
    """Pack bought and refunded in part; Pro created, renewed, its renewal disputed and lost, then
    canceled; an inquiry opened and closed; a dispute won. Returns the timeline and its events
    with the step that emitted each."""
    world = World(server=payments, user=alice, live=False)
    world.pack("500", credits=500, cents=2000, refunded=500)
    world.pro(renewals=1, canceled=True, disputed_renewal="lost")
    world.pack("100", credits=100, cents=500, dispute="warning_closed")
    world.pack("2000", credits=2000, cents=6000, dispute="won")
    emitted = [(index, event) for index, (_, events) in enumerate(world.steps) for event in events]
    return world.steps, emitted


@pytest.fixture
def natural(signed_in, alice, payments, story, django_capture_on_commit_callbacks):
    steps, emitted = story
    schedule = [(index, n, index, event) for n, (index, event) in enumerate(emitted)]
    result = play(signed_in, alice, payments, steps, schedule, django_capture_on_commit_callbacks)
    # 375 (pack, a quarter refunded) + 600 + 600 - 600 (renewal lost in dispute) + 100 + 2000
    assert (result["balance"], result["debt"], result["flagged"], result["is_pro"]) == (3075, 0, True, False)
    assert result["ledger_sum"] == result["balance"]
    assert result["subscriptions"][0][1] == "canceled"
    assert sorted(p[4] for p in result["payments"]) == ["", "", "lost", "warning_closed", "won"]
    return result


def test_the_natural_order_holds_then_gives_back_along_the_way(
    signed_in, alice, payments, story, django_capture_on_commit_callbacks
):
    """Delivered as they happen, the won dispute first holds its 2,000 credits, then gives them
    back: the property below compares every other order against a path that moved both ways."""
    steps, emitted = story
    won_at = next(i for i, e in emitted if e["type"] == "charge.dispute.funds_reinstated")
    schedule = [(index, n, index, event) for n, (index, event) in enumerate(emitted) if index < won_at]
    held = play(signed_in, alice, payments, steps[:won_at], schedule, django_capture_on_commit_callbacks)
    assert held["flagged"]
    assert [p[2:] for p in held["payments"] if p[2] == 2000] == [(2000, 2000, "under_review")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_delay_order_and_repetition_of_the_events_ends_in_the_natural_outcome(
    signed_in, alice, payments, story, natural, data, django_capture_on_commit_callbacks
):
    steps, emitted = story
    delays = data.draw(st.lists(st.integers(0, 6), min_size=len(emitted), max_size=len(emitted)), label="delays")
    ties = data.draw(st.permutations(range(len(emitted))), label="order within a moment")
    schedule = [
        (index + delay, tie, index, event) for (index, event), delay, tie in zip(emitted, delays, ties, strict=True)
    ]
    again = data.draw(
        st.lists(st.tuples(st.integers(0, len(emitted) - 1), st.integers(0, 8)), max_size=10), label="redelivered"
    )
    for n, extra in again:  # Stripe delivers again, some time after it first did
        slot, tie, index, event = schedule[n]
        schedule.append((slot + extra, tie + 0.5, index, event))
    reprocess = data.draw(st.lists(st.sampled_from([e["id"] for _, e in emitted]), max_size=4), label="staff reprocess")
    result = play(signed_in, alice, payments, steps, schedule, django_capture_on_commit_callbacks, reprocess=reprocess)
    assert result == natural
