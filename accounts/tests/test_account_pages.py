"""allauth's pages in Atelier's words: where sign-in lands, the welcome, email addresses and
connected accounts (issue 10, "Account pages polish")."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def sign_in(client, email: str, next_url: str = ""):
    url = reverse("account_login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"login": email, "password": PASSWORD}, follow=True)


def page(response) -> str:
    return response.content.decode()


def headings(response) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", page(response), re.S)]


def test_first_sign_in_lands_on_create_with_a_welcome_that_names_the_free_credits(client):
    newcomer = UserFactory(display_name="Nia")
    response = sign_in(client, newcomer.email)

    assert response.redirect_chain[-1][0] == reverse("generation:create")
    welcome = f"Welcome to Atelier, Nia! Your {settings.FREE_CREDITS_ON_SIGNUP} free credits are ready to use."
    assert welcome in page(response)
    # Shown once: the next page has no welcome.
    assert "Welcome to Atelier" not in page(client.get(reverse("generation:create")))


def test_later_sign_ins_say_welcome_back_and_never_name_the_free_credits_again(client):
    regular = UserFactory(display_name="Ravi")
    sign_in(client, regular.email)
    client.post(reverse("account_logout"))

    response = sign_in(client, regular.email)
    assert "Welcome back, Ravi." in page(response)
    assert "free credits" not in page(response)
    assert "Successfully signed in" not in page(response)


def test_sign_in_goes_to_next_when_given(client, alice):
    response = sign_in(client, alice.email, next_url=reverse("billing:overview"))
    assert response.redirect_chain[-1][0] == reverse("billing:overview")


@pytest.mark.parametrize(
    ("url_name", "expected"),
    [
        ("account_login", ["Sign in"]),
        ("account_signup", ["Create your account"]),
        ("account_reset_password", ["Reset your password"]),
    ],
)
def test_entrance_pages_have_sentence_case_headings(client, url_name, expected):
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    assert headings(response) == expected
    assert "Remember Me" not in page(response)


def test_login_page_labels_and_button_are_sentences(client):
    body = page(client.get(reverse("account_login")))
    assert "Keep me signed in on this device" in body
    assert ">Sign in</button>" in body
    assert "Sign In" not in body


def test_only_email_address_offers_no_make_primary_or_remove(client, alice):
    client.force_login(alice)
    response = client.get(reverse("account_email"))
    body = page(response)
    assert headings(response) == ["Email addresses", "Add another address"]
    assert alice.email in body
    assert "Verified" in body
    for text in ("Make primary", "Make Primary", "Remove", "Re-send", "Primary</span>"):
        assert text not in body, text


def test_second_address_can_be_made_primary_or_removed_and_the_primary_cannot(client, alice):
    EmailAddress.objects.create(user=alice, email="alice.work@example.com", verified=True, primary=False)
    EmailAddress.objects.create(user=alice, email="alice.old@example.com", verified=False, primary=False)
    client.force_login(alice)
    body = page(client.get(reverse("account_email")))

    rows = dict(re.findall(r'<li class="email-row">.*?email-text">([^<]+)<(.*?)</li>', body, re.S))
    assert "Make primary" not in rows[alice.email] and "Remove" not in rows[alice.email]
    assert "Primary" in rows[alice.email]
    assert "Make primary" in rows["alice.work@example.com"] and "Remove" in rows["alice.work@example.com"]
    assert "Resend verification email" in rows["alice.old@example.com"]
    assert "Make primary" not in rows["alice.old@example.com"]  # allauth refuses an unverified primary

    response = client.post(
        reverse("account_email"), {"email": "alice.work@example.com", "action_primary": ""}, follow=True
    )
    assert "Your primary email address was changed." in page(response)
    assert EmailAddress.objects.get(email="alice.work@example.com").primary

    response = client.post(reverse("account_email"), {"email": alice.email, "action_remove": ""}, follow=True)
    assert f"{alice.email} was removed from your account." in page(response)


def test_connected_accounts_page_has_no_empty_add_section_when_google_is_off(client, alice):
    client.force_login(alice)
    response = client.get(reverse("socialaccount_connections"))
    body = page(response)
    assert headings(response) == ["Connected accounts"]
    assert "isn't offered on this Atelier site" in body
    assert "Third-Party" not in body and "Add a" not in body


def test_pages_never_call_people_user_something(client, alice):
    client.force_login(alice)
    for name in ("account_email", "account_change_password", "socialaccount_connections", "account_logout"):
        body = page(client.get(reverse(name)))
        assert not re.search(r"\buser \w", body, re.I), name


def test_change_password_labels_are_sentences(client, alice):
    client.force_login(alice)
    body = page(client.get(reverse("account_change_password")))
    assert "Current password" in body and "New password (again)" in body
    assert "Current Password" not in body and "New Password" not in body


def test_connected_accounts_page_offers_to_connect_google_when_configured(client, alice, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            **settings.SOCIALACCOUNT_PROVIDERS["google"],
            "APPS": [{"client_id": "atelier-test.apps.googleusercontent.com", "secret": "shh", "key": ""}],
        }
    }
    client.force_login(alice)
    response = client.get(reverse("socialaccount_connections"))
    assert headings(response) == ["Connected accounts", "Connect an account"]
    assert "Connect Google" in page(response)
    assert "isn't offered" not in page(response)
