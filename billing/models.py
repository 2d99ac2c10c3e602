"""Credits: one wallet per person and an append-only ledger of every change.

The balance is guarded by the database (check constraint ≥ 0, conditional updates under a
row lock); the ledger is the history and always sums to the balance.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Wallet(models.Model):
    # Kept when the person erases their account (the ledger is a money record, kept for tax law):
    # `user` goes null and `subject` (the erasure receipt's pseudonymous id) is written instead.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="wallet"
    )
    subject = models.UUIDField(null=True, blank=True, unique=True, help_text="Pseudonymous id after erasure.")
    balance = models.BigIntegerField(default=0)
    # Credits owed after a refund or dispute took back credits that were already spent. The balance
    # never goes below zero; while a debt is open, new generations are refused.
    debt = models.BigIntegerField(default=0)
    disputed_at = models.DateTimeField(null=True, blank=True, help_text="A card dispute was opened (staff review).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="wallet_debt_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user or f'erased {self.subject}'} · {self.balance} credits"


class LedgerReason(models.TextChoices):
    SIGNUP_BONUS = "signup_bonus", "Welcome credits"
    PURCHASE = "purchase", "Credit pack purchase"
    SUBSCRIPTION = "subscription", "Monthly Pro credits"
    GENERATION = "generation", "Generation"
    GENERATION_REFUND = "generation_refund", "Refund for a generation that did not finish"
    ADMIN_GRANT = "admin_grant", "Added by support"
    ADMIN_REVOKE = "admin_revoke", "Removed by support"
    PAYMENT_REVERSAL = "payment_reversal", "Payment refunded or disputed"
    DEBT_SETTLEMENT = "debt_settlement", "Settles credits owed from a refunded payment"
    PAYMENT_REINSTATED = "payment_reinstated", "Dispute closed in your favour: credits restored"


class LedgerEntry(models.Model):
    """One change of a wallet's balance. Never updated or deleted (kept, anonymized, for tax law)."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Signed: positive adds credits, negative spends them.")
    balance_after = models.BigIntegerField()
    reason = models.CharField(max_length=32, choices=LedgerReason.choices)
    reference = models.CharField(max_length=200, blank=True, help_text="What this is about, e.g. generation:<uuid>.")
    memo = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_after_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.amount:+d} {self.get_reason_display()}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Ledger entries are append-only")


class ReservationStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    CAPTURED = "captured", "Captured"
    RELEASED = "released", "Released"


class CreditReservation(models.Model):
    """Credits held for one job: debited at reserve, kept at capture, given back at release."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="reservations")
    amount = models.PositiveIntegerField()
    reference = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.RESERVED)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.reference} · {self.amount} · {self.status}"


# --- what we sell ---------------------------------------------------------------------------------


class CreditPack(models.Model):
    """A one-time purchase of credits (Stripe Checkout, mode=payment)."""

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=80)
    credits = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    stripe_price_id = models.CharField(max_length=100, blank=True, help_text="Filled by `manage.py stripe_prices`.")
    active = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "credits"]

    def __str__(self) -> str:
        return self.title

    @property
    def lookup_key(self) -> str:
        return f"atelier-pack-{self.slug}"


class Plan(models.Model):
    """A subscription (Stripe Checkout, mode=subscription); each paid invoice grants the credits."""

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=80)
    monthly_credits = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=10, default="month")
    features = models.TextField(blank=True, help_text="One line per feature, shown on the pricing page.")
    stripe_price_id = models.CharField(max_length=100, blank=True, help_text="Filled by `manage.py stripe_prices`.")
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title

    @property
    def lookup_key(self) -> str:
        return f"atelier-plan-{self.slug}"

    @property
    def feature_list(self) -> list[str]:
        return [line.strip() for line in self.features.splitlines() if line.strip()]


# --- Stripe state, mirrored -------------------------------------------------------------------------


class Customer(models.Model):
    """The one Stripe Customer of a person, created lazily on their first checkout."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stripe_customer")
    stripe_customer_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.stripe_customer_id


class SubscriptionStatus(models.TextChoices):
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Payment overdue"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Canceled"
    PAUSED = "paused", "Paused"


PRO_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)
# Stripe never brings these back: a later, stale read of the subscription must not revive it.
FINAL_SUBSCRIPTION_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
# Stripe moves the period forward when it renews (the invoice is paid up to about an hour later, and
# our webhook may lag): a short grace keeps a renewing subscriber Pro in between. After it, a
# subscription whose period ended without renewal is not Pro, whatever its last known status.
PRO_PERIOD_GRACE = timedelta(hours=2)


class Subscription(models.Model):
    """A person's subscription as Stripe last told us (always read back from the API)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions")
    stripe_subscription_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancel_at = models.DateTimeField(null=True, blank=True, help_text="A cancellation scheduled for this time.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.stripe_subscription_id} · {self.status}"

    @property
    def is_pro(self) -> bool:
        if self.status not in PRO_STATUSES:
            return False
        return self.current_period_end is None or self.current_period_end + PRO_PERIOD_GRACE > timezone.now()

    @property
    def ends_at(self):
        """When Pro stops, if a cancellation is scheduled (at period end, or at a set time)."""
        if self.cancel_at:
            return self.cancel_at
        return self.current_period_end if self.cancel_at_period_end else None


class CheckoutKind(models.TextChoices):
    PACK = "pack", "Credit pack"
    PLAN = "plan", "Subscription"


class CheckoutSession(models.Model):
    """A Stripe Checkout we sent someone to; `fulfilled_at` is set when its credits were granted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkout_sessions")
    stripe_session_id = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=8, choices=CheckoutKind.choices)
    pack = models.ForeignKey(CreditPack, on_delete=models.PROTECT, null=True, blank=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True)
    status = models.CharField(max_length=20, default="open")
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_price_id = models.CharField(max_length=100, blank=True, help_text="The Price this session sells.")
    url = models.URLField(max_length=1000, blank=True, help_text="Stripe's hosted page (reused by a double click).")
    created_at = models.DateTimeField(auto_now_add=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.stripe_session_id


class PaymentKind(models.TextChoices):
    PACK = "pack", "Credit pack"
    SUBSCRIPTION = "subscription", "Subscription invoice"


class DisputeStatus(models.TextChoices):
    """Stripe's dispute lifecycle. Inquiries (`warning_*`) withdraw no funds; disputes do."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: response needed"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry under review"
    WARNING_CLOSED = "warning_closed", "Inquiry closed"
    NEEDS_RESPONSE = "needs_response", "Disputed: response needed"
    UNDER_REVIEW = "under_review", "Dispute under review"
    APPEAL_NEEDS_RESPONSE = "appeal_needs_response", "Lost, appeal: response needed"
    APPEAL_UNDER_REVIEW = "appeal_under_review", "Lost, appeal under review"
    WON = "won", "Dispute won"
    LOST = "lost", "Dispute lost"
    PREVENTED = "prevented", "Dispute prevented (refunded instead)"


# The funds are withdrawn while these last (credits held back), during an appeal of a lost dispute,
# and for good once lost. A status we don't know yet holds too: giving credits back is never a guess.
DISPUTE_HOLDS = (
    DisputeStatus.NEEDS_RESPONSE,
    DisputeStatus.UNDER_REVIEW,
    DisputeStatus.APPEAL_NEEDS_RESPONSE,
    DisputeStatus.APPEAL_UNDER_REVIEW,
    DisputeStatus.LOST,
)
DISPUTE_RELEASES = (
    DisputeStatus.WARNING_NEEDS_RESPONSE,
    DisputeStatus.WARNING_UNDER_REVIEW,
    DisputeStatus.WARNING_CLOSED,
    DisputeStatus.WON,
    DisputeStatus.PREVENTED,  # Stripe refunded the charge instead: the refund takes its share
)
# Several disputes on one charge: the payment shows the most serious one.
DISPUTE_SEVERITY = [
    DisputeStatus.LOST,
    DisputeStatus.APPEAL_UNDER_REVIEW,
    DisputeStatus.APPEAL_NEEDS_RESPONSE,
    DisputeStatus.UNDER_REVIEW,
    DisputeStatus.NEEDS_RESPONSE,
    DisputeStatus.WARNING_UNDER_REVIEW,
    DisputeStatus.WARNING_NEEDS_RESPONSE,
    DisputeStatus.PREVENTED,
    DisputeStatus.WARNING_CLOSED,
    DisputeStatus.WON,
]
# Staff look at accounts with an open, appealed or lost dispute (an inquiry alone is no fraud signal):
# every status but the releases.
# A person has a subscription while one is in these states: a second Pro checkout is refused.
SUBSCRIPTION_HELD_STATUSES = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


class Payment(models.Model):
    """A paid Stripe payment that granted credits; refunds and disputes take them back from here.

    Kept for tax law when the person erases their account: `user` goes null and `subject` holds
    the erasure's pseudonymous id."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="payments"
    )
    subject = models.UUIDField(null=True, blank=True, db_index=True, help_text="Pseudonymous id after erasure.")
    kind = models.CharField(max_length=16, choices=PaymentKind.choices)
    stripe_payment_intent_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_invoice_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    credits = models.PositiveIntegerField()
    credits_reversed = models.PositiveIntegerField(default=0)
    dispute_status = models.CharField(
        max_length=24, choices=DisputeStatus.choices, blank=True, help_text="The charge's dispute as Stripe reports it."
    )
    receipt_url = models.URLField(max_length=500, blank=True, help_text="Stripe's receipt or hosted invoice page.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(credits_reversed__lte=models.F("credits")), name="payment_reversal_cap")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.credits} credits"

    @property
    def disputed(self) -> bool:
        return self.dispute_status in DISPUTE_HOLDS

    @property
    def state(self) -> str:
        if self.dispute_status == DisputeStatus.LOST:
            return "Charged back"
        if self.dispute_status in (DisputeStatus.APPEAL_NEEDS_RESPONSE, DisputeStatus.APPEAL_UNDER_REVIEW):
            return "Charged back (under appeal)"
        if self.disputed:
            return "Disputed: credits on hold"
        if self.dispute_status in (DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.WARNING_UNDER_REVIEW):
            return "Bank inquiry (nothing held)"
        if self.credits_reversed >= self.credits:
            return "Refunded"
        if self.credits_reversed:
            return "Partly refunded"
        return "Paid"


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (not a type we act on)"
    FAILED = "failed", "Failed"


class StripeEvent(models.Model):
    """Every verified Stripe webhook event, stored by id before anything else happens."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=EventStatus.choices, default=EventStatus.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class CreditAdjustment(models.Model):
    """Staff granting or taking credits by hand; the reason is required and kept (audit)."""

    # Kept with its ledger entry when the person erases their account (`subject` instead of `user`).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="credit_adjustments"
    )
    subject = models.UUIDField(null=True, blank=True, db_index=True, help_text="Pseudonymous id after erasure.")
    amount = models.IntegerField(help_text="Positive adds credits, negative takes them away.")
    reason = models.CharField(max_length=300)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ledger_entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="adjustment_not_zero")]

    def __str__(self) -> str:
        return f"{self.amount:+d} for {self.user or f'erased {self.subject}'}: {self.reason}"
