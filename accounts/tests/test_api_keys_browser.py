"""/developers/keys/ in Chromium: create a key, see it once with a working copy button, revoke it;
screenshots at desktop (1280) and phone (390) width."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ApiKey
from accounts.services import api_key_create
from tests.browser import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
NOTES = Path("/work/notes/shots")


def shot(page, name: str) -> None:
    path = screenshot(page, name)
    if NOTES.parent.exists():
        NOTES.mkdir(exist_ok=True)
        shutil.copy(path, NOTES / path.name)


def test_create_see_once_copy_and_revoke(page, alice):
    api_key_create(user=alice, name="Old laptop script", scopes=["read", "generate"])
    sign_in(page, alice)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/account/profile/")
    page.get_by_role("link", name="API keys").click()
    page.wait_for_url("**/developers/keys/")
    page.get_by_role("heading", name="API keys").wait_for()
    page.get_by_role("button", name="Essential only").click()  # the cookie notice, out of the way

    page.get_by_label("Name").fill("My custom GPT")
    page.get_by_label("Generate (spends credits)").check()
    page.get_by_role("button", name="Create key").click()
    value = page.locator("#new-key-value")
    value.wait_for()
    plaintext = value.inner_text().strip()
    assert plaintext.startswith("atl_")
    shot(page, "developers-keys-new")
    page.set_viewport_size(PHONE)
    shot(page, "developers-keys-new-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    copy = page.get_by_role("button", name="Copy")
    copy.click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == plaintext
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200

    # Shown once: a fresh visit lists the key by its prefix only.
    page.goto("/developers/keys/")
    assert page.locator("#new-key-value").count() == 0
    assert plaintext not in page.content()
    key = ApiKey.objects.get(name="My custom GPT")
    item = page.locator(".api-key", has_text="My custom GPT")
    assert f"{key.prefix}…" in item.inner_text()

    item.get_by_text("Revoke", exact=True).click()
    item.get_by_text("Programs using it stop working at once").wait_for()
    shot(page, "developers-keys-revoke-confirm")
    item.get_by_role("button", name="Revoke for good").click()
    page.get_by_text("was revoked. It no longer works.").wait_for()
    assert page.locator(".api-key", has_text="My custom GPT").locator(".badge", has_text="Revoked").is_visible()
    shot(page, "developers-keys")
    page.set_viewport_size(PHONE)
    shot(page, "developers-keys-phone")
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 401
