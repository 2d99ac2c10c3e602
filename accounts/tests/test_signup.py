"""Email sign-up, age gate, verification and sign-in, through Django's test client."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import User, current_policy_version
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def adult_birth_date() -> str:
    return (timezone.localdate() - dt.timedelta(days=365 * 30)).isoformat()


def signup_data(**overrides) -> dict:
    data = {
        "email": "newcomer@example.com",
        "display_name": "New Comer",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "birth_date": adult_birth_date(),
        "accept_policy": "on",
    }
    data.update(overrides)
    return data


def test_signup_creates_unverified_account_with_consent_recorded_and_sends_link(client):
    response = client.post(reverse("account_signup"), signup_data(), follow=True)

    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    user = User.objects.get(email="newcomer@example.com")
    assert user.display_name == "New Comer"
    assert user.age_confirmed_at is not None
    assert user.policy_version == current_policy_version()
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_under_thirteen_is_refused_and_no_account_is_created(client):
    twelve = timezone.localdate().replace(year=timezone.localdate().year - 12)
    response = client.post(reverse("account_signup"), signup_data(birth_date=twelve.isoformat()))

    assert response.status_code == 200
    assert "only for people aged 13 or older" in response.content.decode()
    assert not User.objects.exists()
    assert mail.outbox == []


def test_thirteenth_birthday_today_passes_the_age_gate(client):
    today = timezone.localdate()
    try:
        birthday = today.replace(year=today.year - 13)
    except ValueError:  # 29 February
        birthday = today.replace(year=today.year - 13, day=28)
    client.post(reverse("account_signup"), signup_data(birth_date=birthday.isoformat()))
    assert User.objects.filter(email="newcomer@example.com").exists()


def test_signup_without_policy_acceptance_is_refused(client):
    data = signup_data()
    del data["accept_policy"]
    response = client.post(reverse("account_signup"), data)

    assert "accept the privacy policy" in response.content.decode()
    assert not User.objects.exists()


def test_a_policy_version_that_took_effect_while_the_form_was_open_is_asked_for_again(client):
    """The acceptance is recorded for the text the person saw; a newer one is shown instead."""
    shown = client.get(reverse("account_signup")).content.decode()
    assert f'name="policy_version" value="{current_policy_version()}"' in shown

    response = client.post(reverse("account_signup"), signup_data(policy_version="2020-01-01"))

    page = response.content.decode()
    assert response.status_code == 200 and "changed to version" in page
    assert f'name="policy_version" value="{current_policy_version()}"' in page
    assert not User.objects.exists()

    client.post(reverse("account_signup"), signup_data(policy_version=current_policy_version()))
    assert User.objects.get().policy_version == current_policy_version()


def test_future_birth_date_is_refused(client):
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    response = client.post(reverse("account_signup"), signup_data(birth_date=tomorrow))
    assert "Enter your real date of birth" in response.content.decode()
    assert not User.objects.exists()


def test_weak_password_is_refused_with_the_reason_beside_the_field(client):
    response = client.post(reverse("account_signup"), signup_data(password1="password", password2="password"))

    body = response.content.decode()
    assert "This password is too common" in body
    assert "field-errors" in body
    assert not User.objects.exists()


def test_duplicate_email_creates_nothing_and_tells_the_owner_by_email(client, alice):
    response = client.post(reverse("account_signup"), signup_data(email="ALICE@example.com"), follow=True)

    # The page does not reveal whether the address is registered (enumeration), but says
    # clearly what happens next; the owner of the address gets the explanation.
    assert "Check your inbox" in response.content.decode()
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ALICE@example.com"] or mail.outbox[0].to == ["alice@example.com"]
    assert "already" in mail.outbox[0].body.lower()


def test_unverified_account_cannot_sign_in(client):
    UserFactory(email="unverified@example.com", verified=False)
    response = client.post(
        reverse("account_login"), {"login": "unverified@example.com", "password": PASSWORD}, follow=True
    )

    assert "Verify your email address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1  # a fresh verification link


def test_wrong_password_gives_a_clear_error(client, alice):
    response = client.post(reverse("account_login"), {"login": alice.email, "password": "not-it-at-all"})
    assert "The email address and/or password you specified are not correct." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_tampered_verification_link_is_refused_and_verifies_nothing(client):
    client.post(reverse("account_signup"), signup_data())
    link = re.search(r"https?://\S+/accounts/confirm-email/(\S+)/", mail.outbox[0].body)
    assert link
    response = client.get(reverse("account_confirm_email", args=[link.group(1)[:-3] + "xyz"]))

    assert "This link has expired" in response.content.decode()
    assert not EmailAddress.objects.get(email="newcomer@example.com").verified


def test_verification_link_verifies_and_then_sign_in_works(client):
    client.post(reverse("account_signup"), signup_data())
    key = re.search(r"/accounts/confirm-email/(\S+)/", mail.outbox[0].body).group(1)
    client.post(reverse("account_confirm_email", args=[key]))
    assert EmailAddress.objects.get(email="newcomer@example.com").verified

    client.logout()
    response = client.post(
        reverse("account_login"), {"login": "newcomer@example.com", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("generation:create")
    assert "Welcome back, New Comer." in response.content.decode()  # the welcome came with the confirmation


def test_repeated_wrong_passwords_are_rate_limited(client, alice):
    for _ in range(5):
        client.post(reverse("account_login"), {"login": alice.email, "password": "not-it-at-all"})
    response = client.post(reverse("account_login"), {"login": alice.email, "password": PASSWORD})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
