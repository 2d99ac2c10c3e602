"""Every change to credits goes through here, and every change is a ledger entry.

Concurrency: each change locks the wallet row (`select_for_update`), then applies a
conditional update (`balance >= amount` for debits), so two requests can never spend the
same credits; the check constraint is the last line of defence. Every change carries an
idempotency key, unique in the ledger, so a retried task or a redelivered webhook changes
nothing the second time.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import InsufficientCredits
from billing.models import CreditReservation, LedgerEntry, LedgerReason, ReservationStatus, Wallet

logger = logging.getLogger(__name__)


def wallet_get(*, user) -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(user=user)
    return wallet


def _apply(
    *, wallet: Wallet, amount: int, reason: str, reference: str, idempotency_key: str, memo: str = ""
) -> LedgerEntry:
    """Change the balance of a wallet whose row the caller has locked, and record it."""
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    if amount < 0:
        changed = Wallet.objects.filter(pk=wallet.pk, balance__gte=-amount).update(
            balance=F("balance") + amount, updated_at=timezone.now()
        )
        if not changed:
            raise InsufficientCredits(needed=-amount, balance=Wallet.objects.get(pk=wallet.pk).balance)
    else:
        Wallet.objects.filter(pk=wallet.pk).update(balance=F("balance") + amount, updated_at=timezone.now())
    balance = Wallet.objects.values_list("balance", flat=True).get(pk=wallet.pk)
    return LedgerEntry.objects.create(
        wallet=wallet,
        amount=amount,
        balance_after=balance,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
        memo=memo[:300],
    )


def _locked_wallet(user) -> Wallet:
    wallet_get(user=user)  # outside the lock: creating the row is itself race-safe (unique user)
    return Wallet.objects.select_for_update().get(user=user)


@transaction.atomic
def credits_grant(
    *, user, amount: int, reason: str, reference: str = "", idempotency_key: str, memo: str = ""
) -> LedgerEntry:
    """Add credits (amount > 0). Granting twice with the same key adds them once."""
    if amount <= 0:
        raise ValueError("grant amount must be positive")
    return _apply(
        wallet=_locked_wallet(user),
        amount=amount,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
        memo=memo,
    )


@transaction.atomic
def credits_revoke(
    *, user, amount: int, reason: str, reference: str = "", idempotency_key: str, memo: str = ""
) -> LedgerEntry:
    """Take credits away (amount > 0); refuses to go below zero."""
    if amount <= 0:
        raise ValueError("revoke amount must be positive")
    return _apply(
        wallet=_locked_wallet(user),
        amount=-amount,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
        memo=memo,
    )


def credits_grant_signup_bonus(*, user) -> LedgerEntry | None:
    """The free credits a new verified person gets, once."""
    amount = settings.FREE_CREDITS_ON_SIGNUP
    if amount <= 0:
        return None
    return credits_grant(
        user=user,
        amount=amount,
        reason=LedgerReason.SIGNUP_BONUS,
        reference=f"user:{user.public_id}",
        idempotency_key=f"signup-bonus:{user.public_id}",
    )


@transaction.atomic
def credits_reserve(*, user, amount: int, reference: str) -> CreditReservation:
    """Hold `amount` credits for a job. Raises InsufficientCredits, leaving nothing behind."""
    wallet = _locked_wallet(user)
    existing = CreditReservation.objects.filter(reference=reference).first()
    if existing is not None:
        return existing
    if amount > 0:
        _apply(
            wallet=wallet,
            amount=-amount,
            reason=LedgerReason.GENERATION,
            reference=reference,
            idempotency_key=f"reserve:{reference}",
        )
    return CreditReservation.objects.create(wallet=wallet, amount=amount, reference=reference)


def credits_capture(*, reference: str) -> bool:
    """The job finished: the held credits are spent for good. True if this call captured them."""
    return bool(
        CreditReservation.objects.filter(reference=reference, status=ReservationStatus.RESERVED).update(
            status=ReservationStatus.CAPTURED, settled_at=timezone.now()
        )
    )


@transaction.atomic
def credits_release(*, reference: str, include_captured: bool = False, memo: str = "") -> bool:
    """Give held credits back (failure, cancel; or a staff refund when `include_captured`).

    True if this call gave them back; a second call for the same job changes nothing.
    """
    states = [ReservationStatus.RESERVED]
    if include_captured:
        states.append(ReservationStatus.CAPTURED)
    reservation = CreditReservation.objects.select_related("wallet").filter(reference=reference).first()
    if reservation is None:
        return False
    Wallet.objects.select_for_update().get(pk=reservation.wallet_id)
    changed = CreditReservation.objects.filter(pk=reservation.pk, status__in=states).update(
        status=ReservationStatus.RELEASED, settled_at=timezone.now()
    )
    if not changed:
        return False
    if reservation.amount > 0:
        _apply(
            wallet=reservation.wallet,
            amount=reservation.amount,
            reason=LedgerReason.GENERATION_REFUND,
            reference=reference,
            idempotency_key=f"release:{reference}",
            memo=memo,
        )
    return True
