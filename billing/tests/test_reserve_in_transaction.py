"""The submit reserves credits as one step of its own transaction (no savepoint of the ledger's):
the same guarantees as `credits_reserve`, and a refusal takes the whole transaction back."""

from __future__ import annotations

import pytest
from django.db import transaction

from billing.errors import AccountBlocked, InsufficientCredits
from billing.models import CreditReservation, LedgerEntry, LedgerReason, Wallet
from billing.services.ledger import credits_grant, credits_reserve, credits_reserve_in_transaction

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # no test transaction around it: as in production
def test_it_needs_the_callers_transaction(alice):
    with pytest.raises(RuntimeError):
        credits_reserve_in_transaction(user=alice, amount=1, reference="job:1")


def test_reserving_records_the_balance_after_and_a_second_call_changes_nothing(alice):
    credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="t")
    with transaction.atomic():
        first = credits_reserve_in_transaction(user=alice, amount=2, reference="job:1")
    again = credits_reserve(user=alice, amount=2, reference="job:1")
    assert again.pk == first.pk and Wallet.objects.get(user=alice).balance == 3
    (entry,) = LedgerEntry.objects.filter(idempotency_key="reserve:job:1")
    assert (entry.amount, entry.balance_after) == (-2, 3)


def test_a_refusal_takes_back_everything_the_transaction_did(alice):
    credits_grant(user=alice, amount=1, reason=LedgerReason.ADMIN_GRANT, idempotency_key="t")
    with pytest.raises(InsufficientCredits) as caught, transaction.atomic():
        CreditReservation.objects.create(wallet=Wallet.objects.get(user=alice), amount=0, reference="before")
        credits_reserve_in_transaction(user=alice, amount=2, reference="job:2")
    assert "you have 1" in str(caught.value)
    assert not CreditReservation.objects.exists() and Wallet.objects.get(user=alice).balance == 1
    assert not LedgerEntry.objects.filter(amount__lt=0).exists()


def test_a_new_reference_is_debited_in_one_guarded_update_with_the_same_refusals(alice):
    credits_grant(user=alice, amount=3, reason=LedgerReason.ADMIN_GRANT, idempotency_key="t")
    with transaction.atomic():
        held = credits_reserve_in_transaction(user=alice, amount=2, reference="job:3", new_reference=True)
    assert (held.amount, held.status, Wallet.objects.get(user=alice).balance) == (2, "reserved", 1)
    (entry,) = LedgerEntry.objects.filter(idempotency_key="reserve:job:3")
    assert (entry.amount, entry.balance_after, entry.reason) == (-2, 1, LedgerReason.GENERATION)

    with pytest.raises(InsufficientCredits) as caught, transaction.atomic():
        credits_reserve_in_transaction(user=alice, amount=2, reference="job:4", new_reference=True)
    assert "you have 1" in str(caught.value) and Wallet.objects.get(user=alice).balance == 1

    Wallet.objects.filter(user=alice).update(debt=1)
    with pytest.raises(AccountBlocked), transaction.atomic():
        credits_reserve_in_transaction(user=alice, amount=1, reference="job:5", new_reference=True)
    assert Wallet.objects.get(user=alice).balance == 1 and CreditReservation.objects.count() == 1
