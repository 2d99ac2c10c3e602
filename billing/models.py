"""Credits: one wallet per person and an append-only ledger of every change.

The balance is guarded by the database (check constraint ≥ 0, conditional updates under a
row lock); the ledger is the history and always sums to the balance.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Wallet(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallet")
    balance = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_not_negative")]

    def __str__(self) -> str:
        return f"{self.user} · {self.balance} credits"


class LedgerReason(models.TextChoices):
    SIGNUP_BONUS = "signup_bonus", "Welcome credits"
    PURCHASE = "purchase", "Credit pack purchase"
    SUBSCRIPTION = "subscription", "Monthly Pro credits"
    GENERATION = "generation", "Generation"
    GENERATION_REFUND = "generation_refund", "Refund for a generation that did not finish"
    ADMIN_GRANT = "admin_grant", "Added by support"
    ADMIN_REVOKE = "admin_revoke", "Removed by support"
    PAYMENT_REVERSAL = "payment_reversal", "Payment refunded or disputed"


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
