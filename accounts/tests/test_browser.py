"""The sign-up and sign-in journeys in Chromium, against the live server."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from accounts.models import User
from tests.browser import screenshot
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def adult() -> str:
    return (timezone.localdate() - dt.timedelta(days=365 * 25)).isoformat()


def test_landing_page_invites_sign_up(page):
    page.goto("/")
    assert page.get_by_role("heading", name=re.compile("Turn words into images")).is_visible()
    screenshot(page, "landing")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "landing-phone")
    page.get_by_role("link", name="Create a free account").click()
    page.wait_for_url("**/accounts/signup/")


def test_email_sign_up_verify_sign_in_edit_profile_sign_out(page, live_server):
    page.goto("/accounts/signup/")
    screenshot(page, "signup")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Display name").fill("Carol")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_label("Date of birth").fill(adult())
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create my account").click()

    page.get_by_role("heading", name="Check your inbox").wait_for()
    user = User.objects.get(email="carol@example.com")
    assert user.policy_version and user.age_confirmed_at

    link = re.search(r"(http://\S+/accounts/confirm-email/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()

    # Confirming in the same browser signs the person in, on the create page, welcomed once.
    page.wait_for_url("**/create/")
    credits = settings.FREE_CREDITS_ON_SIGNUP
    page.get_by_text(f"Welcome to Atelier, Carol! Your {credits} free credits are ready").wait_for()
    # Sign out and back in to prove the password.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server.url + "/")
    page.get_by_role("link", name="Sign in").first.click()
    screenshot(page, "signin")
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    page.wait_for_url("**/create/")
    page.get_by_text("Welcome back, Carol.").wait_for()
    page.get_by_role("link", name="Account").click()
    page.wait_for_url("**/account/profile/")
    page.get_by_label("Display name").fill("Carol the Painter")
    page.get_by_role("button", name="Save profile").click()
    page.get_by_text("Your profile was saved.").wait_for()
    assert page.get_by_role("heading", name="Carol the Painter").is_visible()
    screenshot(page, "profile")
    user.refresh_from_db()
    assert user.display_name == "Carol the Painter"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live_server.url + "/")
    assert page.get_by_role("link", name="Sign in").first.is_visible()


def test_age_gate_refusal_creates_no_account(page):
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("kid@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_label("Date of birth").fill((timezone.localdate() - dt.timedelta(days=365 * 10)).isoformat())
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create my account").click()

    page.get_by_text("Atelier is only for people aged 13 or older").wait_for()
    screenshot(page, "signup-age-refused")
    assert not User.objects.filter(email="kid@example.com").exists()
    assert mail.outbox == []


def test_sign_up_errors_show_beside_the_fields(page):
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password (again)").fill("different")
    page.get_by_role("button", name="Create my account").click()
    page.get_by_text("Enter a valid email address.").wait_for()
    assert page.get_by_text("Enter your date of birth.").is_visible()
    assert page.get_by_text("You need to accept the privacy policy to continue.").is_visible()
    screenshot(page, "signup-errors")
    assert not User.objects.exists()


def test_google_sign_in_asks_for_age_and_policy_then_signs_in(page, fake_google):
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Continue with Google").click()

    # Back from "Google": the completion form comes before any account exists.
    page.get_by_role("heading", name="Finish signing up").wait_for()
    screenshot(page, "google-complete")
    assert not User.objects.exists()
    assert page.get_by_label("Email").input_value() == "alice.example@gmail.com"

    page.get_by_label("Date of birth").fill((timezone.localdate() - dt.timedelta(days=365 * 9)).isoformat())
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create my account").click()
    page.get_by_text("Atelier is only for people aged 13 or older").wait_for()
    assert not User.objects.exists()

    page.get_by_label("Date of birth").fill(adult())
    page.get_by_label(re.compile("I have read and accept")).check()
    page.get_by_role("button", name="Create my account").click()

    page.wait_for_url("**/create/")
    page.goto("/account/profile/")
    assert page.get_by_role("heading", name="Alice Example").is_visible()
    user = User.objects.get(email="alice.example@gmail.com")
    assert user.has_accepted_terms
    assert user.avatar_url.startswith("https://lh3.googleusercontent.com/")
    assert user.socialaccount_set.get().provider == "google"
    assert user.emailaddress_set.get().verified
    token_request = fake_google.token_requests[-1]
    assert token_request["code_verifier"]  # PKCE was used

    # A second sign-in with Google goes straight in, no form.
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Continue with Google").click()
    page.wait_for_url("**/create/")
    assert User.objects.count() == 1
