"""Delete my account in Chromium: privacy centre danger zone, password re-authentication, the
typed confirmation, the "what happens now" page, the receipt email, sign-in refused afterwards;
screenshots at desktop (1280) and phone (390) width."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.storage import default_storage

from accounts.models import User
from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation import services as generation_services
from generation.models import CatalogEntry, Generation
from privacy.models import ErasureReceipt, ErasureStatus
from tests.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
SHOTS = Path("/work/notes/shots")


def shot(page, name: str) -> None:
    screenshot(page, name)
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def make_history(user) -> Generation:
    billing.credits_grant(user=user, amount=20, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"fund:{user.pk}")
    entry = CatalogEntry.objects.get(slug="local-canvas")
    spec = generation_services.GenerationSpec(model=entry, values={"prompt": "a lighthouse at dusk"})
    return generation_services.generation_submit(user=user, spec=spec)  # runs inline on commit


def essential_cookies_only(page) -> None:
    """Answer the cookie notice (as people do), so it doesn't cover the screenshots."""
    button = page.get_by_role("button", name="Essential only")
    if button.count():
        button.first.click()
        page.wait_for_load_state()


def reauthenticate(page) -> None:
    page.get_by_role("link", name="Delete my account…").click()
    page.wait_for_url(re.compile(r"/accounts/reauthenticate/"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/privacy/delete/")


def test_delete_my_account_from_the_privacy_centre(page, alice, bob):
    generation = make_history(alice)
    keys = list(generation.assets.values_list("storage_key", flat=True))
    assert keys and all(default_storage.exists(key) for key in keys)
    make_history(bob)
    sign_in(page, alice)
    essential_cookies_only(page)

    page.goto("/privacy/")
    zone = page.locator("#delete-account")
    zone.scroll_into_view_if_needed()
    assert "can't be undone" in zone.inner_text()
    shot(page, "erasure-centre-desktop")

    reauthenticate(page)
    page.get_by_role("heading", name="Delete my account").wait_for()
    shot(page, "erasure-confirm-desktop")

    # A wrong confirmation: an error beside the field, nothing happens.
    page.get_by_label(re.compile("Type your email address")).fill("delete it")
    page.get_by_role("button", name="Delete my account for good").click()
    page.get_by_text("neither your email address nor").wait_for()
    shot(page, "erasure-confirm-error-desktop")
    assert User.objects.get(pk=alice.pk).is_active

    page.get_by_label(re.compile("Type your email address")).fill("alice@example.com")
    page.get_by_role("button", name="Delete my account for good").click()
    page.wait_for_url("**/privacy/delete/started/")
    page.get_by_role("heading", name="Your account is being deleted").wait_for()
    assert "email receipt" in page.locator("main").inner_text()
    assert page.get_by_role("link", name="Sign in").count() >= 1  # signed out
    shot(page, "erasure-started-desktop")

    receipt = ErasureReceipt.objects.get()
    assert receipt.status == ErasureStatus.DONE, receipt.last_error
    assert not User.objects.filter(pk=alice.pk).exists()
    assert not any(default_storage.exists(key) for key in keys)
    assert Wallet.objects.get(subject=receipt.subject).user_id is None
    assert Generation.objects.filter(owner=bob).count() == 1
    receipts = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert len(receipts) == 1 and receipts[0].subject == "[Atelier] Your account has been deleted"
    assert "Generations (prompts, settings, results): 1" in receipts[0].body

    # Signing in again is refused.
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    assert page.get_by_text(re.compile("not correct|incorrect", re.I)).count() >= 1
    page.goto("/privacy/")
    assert "/accounts/login/" in page.url


def test_the_erasure_pages_on_a_phone(page, bob):
    page.set_viewport_size(PHONE)
    sign_in(page, bob)
    essential_cookies_only(page)
    page.goto("/privacy/")
    page.locator("#delete-account").scroll_into_view_if_needed()
    shot(page, "erasure-centre-phone")
    reauthenticate(page)
    shot(page, "erasure-confirm-phone")
    page.get_by_label(re.compile("Type your email address")).fill("delete my account")
    page.get_by_role("button", name="Delete my account for good").click()
    page.wait_for_url("**/privacy/delete/started/")
    shot(page, "erasure-started-phone")
    assert not User.objects.filter(pk=bob.pk).exists()
