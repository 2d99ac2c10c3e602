from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db.models import Sum
from django.urls import reverse

from billing import services
from billing.errors import InsufficientCredits
from billing.models import CreditReservation, LedgerEntry, LedgerReason, Wallet
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(wallet__user=user).aggregate(s=Sum("amount"))["s"] or 0


def balance(user) -> int:
    return Wallet.objects.get(user=user).balance


def grant(user, amount, key="k"):
    return services.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=key)


def test_grant_with_the_same_key_adds_credits_once(alice):
    grant(alice, 10, key="once")
    grant(alice, 10, key="once")
    assert balance(alice) == 10
    assert LedgerEntry.objects.filter(idempotency_key="once").count() == 1


def test_reserve_more_than_the_balance_changes_nothing(alice):
    grant(alice, 3)
    with pytest.raises(InsufficientCredits) as exc:
        services.credits_reserve(user=alice, amount=5, reference="generation:x")
    assert "needs 5 credits and you have 3" in str(exc.value)
    assert balance(alice) == 3
    assert not CreditReservation.objects.exists()
    assert LedgerEntry.objects.count() == 1


def test_release_refunds_once_and_capture_after_release_does_nothing(alice):
    grant(alice, 10)
    services.credits_reserve(user=alice, amount=4, reference="generation:a")
    assert balance(alice) == 6
    assert services.credits_release(reference="generation:a") is True
    assert services.credits_release(reference="generation:a") is False
    assert services.credits_capture(reference="generation:a") is False
    assert balance(alice) == 10
    assert ledger_sum(alice) == balance(alice)


def test_captured_credits_stay_spent_unless_staff_refunds(alice):
    grant(alice, 10)
    services.credits_reserve(user=alice, amount=4, reference="generation:b")
    assert services.credits_capture(reference="generation:b") is True
    assert services.credits_release(reference="generation:b") is False
    assert balance(alice) == 6
    assert services.credits_release(reference="generation:b", include_captured=True, memo="bad result") is True
    assert balance(alice) == 10
    assert ledger_sum(alice) == 10


def test_ledger_entries_are_append_only(alice):
    entry = grant(alice, 5)
    entry.amount = 500
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()


def test_balance_cannot_go_negative_even_with_a_raw_update(alice):
    from django.db import IntegrityError, transaction

    grant(alice, 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(user=alice).update(balance=-1)


def test_verifying_the_email_grants_the_welcome_credits_once(client, settings):
    settings.FREE_CREDITS_ON_SIGNUP = 25
    client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "birth_date": "1990-01-01",
            "accept_policy": "on",
        },
    )
    user = UserFactory._meta.model.objects.get(email="new@example.com")
    assert Wallet.objects.filter(user=user, balance__gt=0).count() == 0
    key = re.search(r"/accounts/confirm-email/(\S+)/", mail.outbox[0].body).group(1)
    client.post(reverse("account_confirm_email", args=[key]))
    client.post(reverse("account_confirm_email", args=[key]))
    assert balance(user) == 25
    assert LedgerEntry.objects.get(wallet__user=user).reason == LedgerReason.SIGNUP_BONUS


def test_credits_page_lists_the_ledger_with_readable_reasons(client, alice):
    grant(alice, 7, key="support")
    client.force_login(alice)
    page = client.get(reverse("billing:overview")).content.decode()
    assert "Added by support" in page
    assert "+7" in page
    assert '<p class="big-balance" id="balance"><strong>7</strong> credits</p>' in page


def test_credits_given_back_by_a_failed_job_settle_an_open_debt(alice):
    grant(alice, 10, key="g")
    services.credits_reserve(user=alice, amount=4, reference="generation:j")
    Wallet.objects.filter(user=alice).update(debt=3)  # a refund took back spent credits meanwhile
    services.credits_release(reference="generation:j")
    wallet = Wallet.objects.get(user=alice)
    assert (wallet.balance, wallet.debt) == (7, 0)
    assert ledger_sum(alice) == 7
