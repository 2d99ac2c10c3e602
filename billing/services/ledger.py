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
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.errors import AccountBlocked, InsufficientCredits
from billing.models import (
    DISPUTE_RELEASES,
    CreditAdjustment,
    CreditReservation,
    LedgerEntry,
    LedgerReason,
    Payment,
    ReservationStatus,
    Wallet,
)
from billing.signals import account_flag_changed, credits_adjusted_by_staff

logger = logging.getLogger(__name__)


def wallet_get(*, user) -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(user=user)
    return wallet


def _apply(
    *,
    wallet: Wallet,
    amount: int,
    reason: str,
    reference: str,
    idempotency_key: str,
    memo: str = "",
    key_unused: bool = False,
) -> LedgerEntry:
    """Change the balance of a wallet whose row the caller has locked, and record it.

    `key_unused`: the caller has already proven, under the same lock, that no entry carries
    `idempotency_key` (so the lookup is skipped); the unique index still refuses a duplicate."""
    if not key_unused:
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    balance = _add_to_balance(wallet_id=wallet.pk, amount=amount)
    if balance is None:
        raise InsufficientCredits(needed=-amount, balance=Wallet.objects.get(pk=wallet.pk).balance)
    return LedgerEntry.objects.create(
        wallet=wallet,
        amount=amount,
        balance_after=balance,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
        memo=memo[:300],
    )


def _add_to_balance(*, wallet_id: int, amount: int) -> int | None:
    """Add `amount` (negative: take) to the balance and return the new balance, in one
    conditional UPDATE … RETURNING: a debit only applies while the balance covers it (None when
    it does not, and nothing changed); the check constraint stays the last line of defence.
    Django's update() cannot return the row, and reading it back costs a second round trip."""
    table = connection.ops.quote_name(Wallet._meta.db_table)  # the model's own name, not input
    condition = " AND balance >= %s" if amount < 0 else ""
    now = connection.ops.adapt_datetimefield_value(timezone.now())  # as the ORM writes it (SQLite: text)
    params = [amount, now, wallet_id] + ([-amount] if amount < 0 else [])
    # Values are bound parameters; only the model's table name and a fixed condition are spliced in.
    sql = f"UPDATE {table} SET balance = balance + %s, updated_at = %s WHERE id = %s{condition} RETURNING balance"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row is not None else None


def _locked_wallet(user) -> Wallet:
    """The person's wallet, its row locked until the transaction ends (created first if needed)."""
    wallet = Wallet.objects.select_for_update().filter(user=user).first()
    if wallet is not None:
        return wallet
    wallet_get(user=user)  # creating the row is itself race-safe (unique user)
    return Wallet.objects.select_for_update().get(user=user)


@transaction.atomic
def credits_grant(
    *, user, amount: int, reason: str, reference: str = "", idempotency_key: str, memo: str = ""
) -> LedgerEntry:
    """Add credits (amount > 0). Granting twice with the same key adds them once.

    Credits owed from a refunded payment are settled first, from the credits just added.
    """
    if amount <= 0:
        raise ValueError("grant amount must be positive")
    wallet = _locked_wallet(user)
    if LedgerEntry.objects.filter(idempotency_key=idempotency_key).exists():
        return LedgerEntry.objects.get(idempotency_key=idempotency_key)
    entry = _apply(
        wallet=wallet, amount=amount, reason=reason, reference=reference, idempotency_key=idempotency_key, memo=memo
    )
    _settle_debt(wallet=wallet, source_key=idempotency_key)
    return entry


def _settle_debt(*, wallet: Wallet, source_key: str) -> None:
    """Pay what is owed from the balance (caller holds the wallet lock)."""
    wallet.refresh_from_db(fields=["balance", "debt"])
    settle = min(wallet.debt, wallet.balance)
    if settle <= 0:
        return
    _apply(
        wallet=wallet,
        amount=-settle,
        reason=LedgerReason.DEBT_SETTLEMENT,
        reference="debt",
        idempotency_key=f"settle:{source_key}",
    )
    Wallet.objects.filter(pk=wallet.pk).update(debt=F("debt") - settle, updated_at=timezone.now())


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
def credits_reserve(*, user, amount: int, reference: str, memo: str = "") -> CreditReservation:
    """Hold `amount` credits for a job. Raises InsufficientCredits (or AccountBlocked while
    credits are owed), leaving nothing behind. `memo` names what it is for (never the prompt:
    the ledger outlives prompt retention)."""
    return credits_reserve_in_transaction(user=user, amount=amount, reference=reference, memo=memo)


def credits_reserve_in_transaction(
    *, user, amount: int, reference: str, memo: str = "", new_reference: bool = False
) -> CreditReservation:
    """`credits_reserve` as one step of the caller's own transaction (e.g. the submit that
    creates the job in the same one): no savepoint of its own, so a refusal dooms the caller's
    transaction, which must end (roll back) before anything else is done with the database.
    Called outside a transaction it is a mistake (nothing would hold the row lock).

    `new_reference`: the caller guarantees no reservation can carry `reference` yet (it names a
    row this transaction has just inserted under a unique key, e.g. a new generation's uuid), so
    there is nothing to replay: the debit is then one conditional UPDATE that takes the row lock
    itself (`_debit_new`), and the lock is held for three statements and the commit."""
    if not connection.in_atomic_block:
        raise RuntimeError("credits_reserve_in_transaction needs the caller's transaction.atomic()")
    if new_reference and amount > 0:
        return _debit_new(user=user, amount=amount, reference=reference, memo=memo)
    wallet = _locked_wallet(user)
    if wallet.debt > 0:
        raise AccountBlocked(debt=wallet.debt)
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
            memo=memo,
            # The reservation and its ledger entry are written together, under this lock: with
            # no reservation for `reference`, there is no `reserve:` entry either.
            key_unused=True,
        )
    return CreditReservation.objects.create(wallet=wallet, amount=amount, reference=reference)


def _debit_new(*, user, amount: int, reference: str, memo: str) -> CreditReservation:
    """Reserve for a reference nobody can have used: one `UPDATE … WHERE debt = 0 AND balance >=
    amount RETURNING` both locks the wallet row (until the caller's commit) and takes the credits,
    or changes nothing; the ledger entry (with the balance the UPDATE returned) and the
    reservation go with it. On PostgreSQL the three are one statement (data-modifying CTEs: one
    round trip, and the lock is held for that statement and the commit only); elsewhere three.
    Refusals are credits_reserve's own (AccountBlocked while credits are owed, else
    InsufficientCredits with the balance). The check constraints, the unique reference and
    ledger key stay the last line of defence."""
    now = timezone.now()
    memo = memo[:300]
    key = f"reserve:{reference}"
    if connection.vendor == "postgresql":
        row = _debit_new_in_one_statement(user=user, amount=amount, reference=reference, memo=memo, key=key, now=now)
        wallet_id = row[0] if row is not None else None
    else:
        wallet_id = None
        row = _debit_where_covered(user=user, amount=amount, now=now)
        if row is not None:
            wallet_id, balance = row
            LedgerEntry.objects.create(
                wallet_id=wallet_id,
                amount=-amount,
                balance_after=balance,
                reason=LedgerReason.GENERATION,
                reference=reference,
                idempotency_key=key,
                memo=memo,
            )
    if wallet_id is None:
        wallet = wallet_get(user=user)
        if wallet.debt > 0:
            raise AccountBlocked(debt=wallet.debt)
        raise InsufficientCredits(needed=amount, balance=wallet.balance)
    if connection.vendor == "postgresql":
        return CreditReservation(
            id=row[1], wallet_id=wallet_id, amount=amount, reference=reference, created_at=now
        )  # written by the statement above
    return CreditReservation.objects.create(wallet_id=wallet_id, amount=amount, reference=reference)


def _debit_where_covered(*, user, amount: int, now) -> tuple[int, int] | None:
    """(wallet id, new balance), or None when the wallet is in debt or short (nothing changed)."""
    table = connection.ops.quote_name(Wallet._meta.db_table)  # the model's own name, not input
    # Values are bound parameters; only the model's table name is spliced in.
    sql = f"UPDATE {table} SET balance = balance - %s, updated_at = %s WHERE user_id = %s AND debt = 0 AND balance >= %s RETURNING id, balance"  # noqa: S608, E501
    with connection.cursor() as cursor:
        cursor.execute(sql, [amount, connection.ops.adapt_datetimefield_value(now), user.pk, amount])
        return cursor.fetchone()


_DEBIT_NEW_SQL = """
WITH debit AS (
    UPDATE billing_wallet SET balance = balance - %(amount)s, updated_at = %(now)s
    WHERE user_id = %(user)s AND debt = 0 AND balance >= %(amount)s
    RETURNING id, balance
), entry AS (
    INSERT INTO billing_ledgerentry
        (wallet_id, amount, balance_after, reason, reference, memo, idempotency_key, created_at)
    SELECT id, -%(amount)s, balance, %(reason)s, %(reference)s, %(memo)s, %(key)s, %(now)s FROM debit
)
INSERT INTO billing_creditreservation (wallet_id, amount, reference, status, created_at, settled_at)
SELECT id, %(amount)s, %(reference)s, %(status)s, %(now)s, NULL FROM debit
RETURNING wallet_id, id
"""


def _debit_new_in_one_statement(*, user, amount: int, reference: str, memo: str, key: str, now):
    """(wallet id, reservation id), or None (debt or too few credits: nothing written)."""
    assert (Wallet._meta.db_table, LedgerEntry._meta.db_table, CreditReservation._meta.db_table) == (
        "billing_wallet",
        "billing_ledgerentry",
        "billing_creditreservation",
    )
    params = {
        "amount": amount,
        "now": now,
        "user": user.pk,
        "reason": LedgerReason.GENERATION.value,
        "reference": reference,
        "memo": memo,
        "key": key,
        "status": ReservationStatus.RESERVED.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_DEBIT_NEW_SQL, params)
        return cursor.fetchone()


@transaction.atomic
def credits_capture(*, reference: str, keep: int | None = None, memo: str = "") -> bool:
    """The job finished: the held credits are spent for good. True if this call captured them.

    With `keep` below the amount held (a job asked for four results and got three), only `keep`
    is spent and the rest goes back at once, in the same step (key `release-unused:<reference>`).
    """
    reservation = CreditReservation.objects.select_related("wallet__user").filter(reference=reference).first()
    if reservation is None:
        return False
    partial = keep is not None and 0 <= keep < reservation.amount
    if partial:
        # The wallet before the reservation row, in the order credits_release takes them.
        Wallet.objects.select_for_update().get(pk=reservation.wallet_id)
    captured = CreditReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.RESERVED).update(
        status=ReservationStatus.CAPTURED, settled_at=timezone.now()
    )
    if captured and partial:
        credits_grant(
            user=reservation.wallet.user,
            amount=reservation.amount - keep,
            reason=LedgerReason.GENERATION_REFUND,
            reference=reference,
            idempotency_key=f"release-unused:{reference}",
            memo=memo or "Fewer results than asked for: the unused credits are back",
        )
    return bool(captured)


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
        held_for = LedgerEntry.objects.filter(idempotency_key=f"reserve:{reference}").values_list("memo", flat=True)
        _apply(
            wallet=reservation.wallet,
            amount=reservation.amount,
            reason=LedgerReason.GENERATION_REFUND,
            reference=reference,
            idempotency_key=f"release:{reference}",
            memo=memo or (held_for.first() or ""),
        )
        _settle_debt(wallet=reservation.wallet, source_key=f"release:{reference}")
    return True


@transaction.atomic
def credits_adjust(*, user, amount: int, reason: str, staff=None) -> CreditAdjustment:
    """Staff add (amount > 0) or take (amount < 0) credits by hand, with a reason that is kept.

    Taking more than the balance raises InsufficientCredits and records nothing.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required")
    if amount == 0:
        raise ValueError("the amount must not be zero")
    adjustment = CreditAdjustment.objects.create(user=user, amount=amount, reason=reason, staff=staff)
    key = f"adjust:{adjustment.pk}"
    memo = f"{reason} ({staff.email})" if staff is not None else reason
    if amount > 0:
        entry = credits_grant(
            user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, reference=key, idempotency_key=key, memo=memo
        )
    else:
        entry = credits_revoke(
            user=user, amount=-amount, reason=LedgerReason.ADMIN_REVOKE, reference=key, idempotency_key=key, memo=memo
        )
    adjustment.ledger_entry = entry
    adjustment.save(update_fields=["ledger_entry"])
    if staff is not None:
        credits_adjusted_by_staff.send(sender=CreditAdjustment, adjustment=adjustment, staff=staff)
    return adjustment


@transaction.atomic
def payment_credits_settle(*, payment: Payment, target: int, dispute_status: str, reason: str) -> int:
    """Move the credits a payment has had taken back (refunds, disputes) to exactly `target`,
    in either direction, and record the charge's dispute status.

    `target` is computed by the caller from what Stripe says now (refunds, disputes), so calling
    this again, from any event, in any order, changes nothing once the state is reached.
    Taking back: what is still in the balance is removed, what was already spent becomes a debt
    (new generations are refused until a purchase settles it). Giving back (a dispute won, an
    inquiry closed): through `credits_grant`, so a debt is settled first.
    The wallet is flagged for staff while any of the person's payments has an open or lost
    dispute, and unflagged when none has. Returns the signed change in credits taken back.
    """
    if payment.user_id is None:
        # The person erased their account: the payment is kept for tax law, detached, with no
        # wallet left to move credits in. Record what Stripe says on the payment only.
        target = max(0, min(target, payment.credits))
        Payment.objects.filter(pk=payment.pk).update(dispute_status=dispute_status, credits_reversed=target)
        return 0
    wallet = _locked_wallet(payment.user)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    target = max(0, min(target, payment.credits))
    delta = target - payment.credits_reversed
    if payment.dispute_status != dispute_status:
        Payment.objects.filter(pk=payment.pk).update(dispute_status=dispute_status)
    _flag_disputes(wallet)
    if delta == 0:
        return 0
    reference = f"payment:{payment.pk}"
    # Movements can go both ways over a payment's life (disputed, then won): number them.
    step = LedgerEntry.objects.filter(reference=reference, reason__in=_SETTLE_REASONS).count() + 1
    key = f"payment:{payment.pk}:settle:{step}"
    if delta > 0:
        wallet.refresh_from_db(fields=["balance", "debt"])
        from_balance = min(delta, wallet.balance)
        owed = delta - from_balance
        if from_balance > 0:
            _apply(
                wallet=wallet,
                amount=-from_balance,
                reason=LedgerReason.PAYMENT_REVERSAL,
                reference=reference,
                idempotency_key=key,
                memo=reason + (f"; {owed} already spent, now owed" if owed else ""),
            )
        if owed > 0:
            Wallet.objects.filter(pk=wallet.pk).update(debt=F("debt") + owed, updated_at=timezone.now())
        logger.info("payment %s: %s credits taken back, %s owed (%s)", payment.pk, from_balance, owed, reason)
    else:
        credits_grant(
            user=payment.user,
            amount=-delta,
            reason=LedgerReason.PAYMENT_REINSTATED,
            reference=reference,
            idempotency_key=key,
            memo=reason,
        )
        logger.info("payment %s: %s credits given back (%s)", payment.pk, -delta, reason)
    Payment.objects.filter(pk=payment.pk).update(credits_reversed=target)
    return delta


_SETTLE_REASONS = (LedgerReason.PAYMENT_REVERSAL, LedgerReason.PAYMENT_REINSTATED)


def _flag_disputes(wallet: Wallet) -> None:
    """Flag (or unflag) the wallet for staff from the dispute status of all its owner's payments."""
    # Open, lost or appealed disputes, and any status Stripe adds that we don't know yet.
    flagged = (
        Payment.objects.filter(user_id=wallet.user_id).exclude(dispute_status__in=["", *DISPUTE_RELEASES]).exists()
    )
    if flagged and wallet.disputed_at is None:
        Wallet.objects.filter(pk=wallet.pk).update(disputed_at=timezone.now())
        account_flag_changed.send(sender=Wallet, user=wallet.user, flagged=True, reason="card dispute", staff=None)
    elif not flagged and wallet.disputed_at is not None:
        Wallet.objects.filter(pk=wallet.pk).update(disputed_at=None)
        account_flag_changed.send(sender=Wallet, user=wallet.user, flagged=False, reason="card dispute", staff=None)
