"""The sign-in library's emails, branded Atelier, each with a text body and an HTML alternative."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = "https://studio.atelier.example"


def html_of(message) -> str:
    alternatives = [content for content, mime in message.alternatives if mime == "text/html"]
    assert len(alternatives) == 1, "an HTML alternative"
    return alternatives[0]


def assert_branded(message, *, subject: str) -> None:
    assert message.subject == f"[Atelier] {subject}"
    assert message.from_email.startswith("Atelier")
    html = html_of(message)
    for body in (message.body, html):
        assert "studio.atelier.example" in body  # SITE_URL's host, not the request's
        assert "Atelier" in body
        assert "example.com!" not in body and "Hello from" not in body  # allauth's default wording
        assert not re.search(r"\buser \w", body)
    assert html.lstrip().startswith("<!doctype html>")
    assert "{%" not in html and "{{" not in html


def signup(client, email: str = "newcomer@example.com"):
    birth = timezone.localdate().replace(year=timezone.localdate().year - 30).isoformat()
    return client.post(
        reverse("account_signup"),
        {
            "email": email,
            "display_name": "New Comer",
            "password1": "a-long-enough-password-42",
            "password2": "a-long-enough-password-42",
            "birth_date": birth,
            "accept_policy": "on",
        },
    )


def test_sign_up_email_names_the_free_credits_and_links_in_both_bodies(client, settings):
    signup(client)
    (message,) = mail.outbox
    assert_branded(message, subject="Confirm your email address to start creating")
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    html = html_of(message)
    assert f'href="{link}"' in html
    assert "Confirm my email address" in html
    for body in (message.body, html):
        assert f"{settings.FREE_CREDITS_ON_SIGNUP} free credits" in body
        assert "New Comer" in body


def test_password_reset_email_is_branded_with_a_button(client, alice):
    client.post(reverse("account_reset_password"), {"email": alice.email})
    (message,) = mail.outbox
    assert_branded(message, subject="Reset your password")
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+/", message.body).group(0)
    assert f'href="{link}"' in html_of(message)
    assert "Choose a new password" in html_of(message)


def test_reset_for_an_unknown_address_says_so_branded(client):
    client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    (message,) = mail.outbox
    assert_branded(message, subject="No account uses this address")
    assert "/accounts/signup/" in message.body


def test_sign_up_with_a_taken_address_tells_the_owner_branded(client, alice):
    signup(client, email=alice.email)
    (message,) = mail.outbox
    assert_branded(message, subject="You already have an account")
    assert "/accounts/password/reset/" in message.body


def test_password_change_notification_is_branded_when_notifications_are_on(client, alice, settings):
    settings.ACCOUNT_EMAIL_NOTIFICATIONS = True
    client.force_login(alice)
    from tests.factories import PASSWORD

    new = "another-long-password-77"
    client.post(reverse("account_change_password"), {"oldpassword": PASSWORD, "password1": new, "password2": new})
    (message,) = mail.outbox
    assert_branded(message, subject="Your password was changed")
    assert "The password of your Atelier account was changed." in message.body
