from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_profile_requires_sign_in(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_profile_edit_saves_display_name_and_can_drop_avatar(client, alice):
    alice.avatar_url = "https://lh3.googleusercontent.com/a/x"
    alice.save()
    client.force_login(alice)

    response = client.post(
        reverse("accounts:profile"), {"display_name": "  Alice Liddell ", "remove_avatar": "on"}, follow=True
    )

    assert "Your profile was saved." in response.content.decode()
    alice.refresh_from_db()
    assert alice.display_name == "Alice Liddell"
    assert alice.avatar_url == ""


def test_profile_rejects_too_long_name(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:profile"), {"display_name": "x" * 81})
    assert "Ensure this value has at most 80 characters" in response.content.decode()
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_profile_form_needs_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("accounts:profile"), {"display_name": "Mallory"})
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_account_without_consent_is_sent_to_the_completion_form_first(client):
    user = UserFactory(age_confirmed_at=None, policy_accepted_at=None, policy_version="")
    client.force_login(user)

    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:complete"))

    response = client.post(
        reverse("accounts:complete"),
        {"birth_date": "1990-05-01", "accept_policy": "on", "next": reverse("accounts:profile")},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:profile")
    user.refresh_from_db()
    assert user.has_accepted_terms


def test_completion_form_refuses_under_thirteen(client):
    user = UserFactory(age_confirmed_at=None, policy_version="")
    client.force_login(user)
    response = client.post(reverse("accounts:complete"), {"birth_date": "2020-01-01", "accept_policy": "on"})
    assert "only for people aged 13 or older" in response.content.decode()
    user.refresh_from_db()
    assert user.age_confirmed_at is None


def test_completion_form_ignores_offsite_next(client):
    user = UserFactory(age_confirmed_at=None, policy_version="")
    client.force_login(user)
    response = client.post(
        reverse("accounts:complete"),
        {"birth_date": "1990-05-01", "accept_policy": "on", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("generation:create")


def test_demo_user_command_creates_an_account_that_can_sign_in(client, settings):
    call_command("ensure_demo_user")
    call_command("ensure_demo_user")  # idempotent
    assert User.objects.filter(email=settings.DEMO_USER_EMAIL).count() == 1
    response = client.post(
        reverse("account_login"),
        {"login": settings.DEMO_USER_EMAIL, "password": settings.DEMO_USER_PASSWORD},
    )
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


def test_me_api_needs_a_session_and_returns_the_account(client, alice):
    assert client.get("/api/v1/me").status_code == 401
    client.force_login(alice)
    body = client.get("/api/v1/me").json()
    assert body == {
        "id": str(alice.public_id),
        "email": "alice@example.com",
        "display_name": "Alice",
        "credits": 0,
        "debt": 0,
        "plan": "free",
        "plan_title": None,
    }


def test_sign_out_needs_post(client, alice):
    client.login(email=alice.email, password=PASSWORD)
    client.post(reverse("account_logout"))
    assert "_auth_user_id" not in client.session


def test_an_existing_google_account_that_never_passed_the_gate_is_sent_to_complete_it(client):
    from allauth.socialaccount.models import SocialAccount

    user = UserFactory(email="g@example.com", age_confirmed_at=None, policy_accepted_at=None, policy_version="")
    SocialAccount.objects.create(user=user, provider="google", uid="1234567890", extra_data={"email": user.email})
    client.force_login(user)
    for path in ("/create/", "/billing/", "/accounts/email/", "/pricing/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/account/complete/"), path
    api = client.get("/api/v1/me")
    assert api.status_code == 403
    assert api.json()["complete_url"] == "/account/complete/"
    assert client.get("/api/v1/docs").status_code == 200
