"""The consent screen and connected apps in Chromium: sign-in first and back, Allow and Cancel,
a real token from the code, revoking from the connected apps page. Screenshots at desktop and
phone width in test-artifacts/screenshots/."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from atelier_oauth.tests.conftest import GPT_CALLBACK
from tests.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def gpt_oauth(gpt_client) -> OAuth2Session:
    return OAuth2Session(
        client_id=gpt_client.client_id,
        client_secret=gpt_client.client_secret,
        scope="read generate",
        redirect_uri=GPT_CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )


def catch_callback(page) -> list[str]:
    """ChatGPT's callback never leaves the machine: Chromium answers it and we keep the URL."""
    seen: list[str] = []

    def answer(route):
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>back in ChatGPT</p>")

    page.route("https://chat.openai.com/**", answer)
    return seen


def dismiss_cookie_notice(page) -> None:
    """The fixed cookie bar would cover the page in full-page screenshots."""
    button = page.get_by_role("button", name="Essential only")
    if button.count() and button.first.is_visible():
        button.first.click()
        page.wait_for_load_state()


def me(base, token) -> int:
    return requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_consent_in_chromium_then_token_then_revoke_on_connected_apps(page, oauth_site, gpt_client, alice):
    oauth = gpt_oauth(gpt_client)
    verifier = generate_token(64)
    url, state = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=verifier)
    seen = catch_callback(page)

    # Not signed in: the sign-in page first, then straight back to the consent screen.
    page.goto(url)
    assert "/accounts/login/" in page.url
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/oauth/authorize/**")

    dismiss_cookie_notice(page)
    heading = page.get_by_role("heading", level=1)
    assert "ChatGPT" in heading.inner_text()
    assert page.get_by_text("chat.openai.com").is_visible()
    assert page.get_by_text("See your account, credits and generations").is_visible()
    assert page.get_by_text("Start generations that spend your credits").is_visible()
    allow = page.get_by_role("button", name="Allow", exact=True)
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    assert allow.bounding_box()["width"] == pytest.approx(cancel.bounding_box()["width"], abs=1)
    assert allow.bounding_box()["height"] == pytest.approx(cancel.bounding_box()["height"], abs=1)
    screenshot(page, "oauth-consent-desktop")
    page.set_viewport_size(PHONE)
    box = allow.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]  # no sideways scrolling on a phone
    screenshot(page, "oauth-consent-phone")
    page.set_viewport_size(DESKTOP)

    allow.click()
    page.wait_for_url(GPT_CALLBACK + "**")
    query = parse_qs(urlsplit(seen[-1]).query)
    assert query["state"] == [state] and query["iss"] == [oauth_site]
    token = oauth.fetch_token(f"{oauth_site}/oauth/token/", authorization_response=seen[-1], code_verifier=verifier)
    assert me(oauth_site, token["access_token"]) == 200

    page.goto("/oauth/connections/")
    assert page.get_by_text("ChatGPT").first.is_visible()
    assert page.get_by_text("see your account, generate (spends credits)").is_visible()
    screenshot(page, "oauth-connections-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "oauth-connections-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_text("Revoke", exact=True).click()
    screenshot(page, "oauth-connections-confirm")
    page.get_by_role("button", name="Revoke access").click()
    page.wait_for_url("**/oauth/connections/")
    assert page.get_by_text("can no longer use your account").is_visible()
    assert page.get_by_text("No apps are connected to your account.").is_visible()
    assert me(oauth_site, token["access_token"]) == 401


def test_cancel_in_chromium_sends_access_denied(page, oauth_site, gpt_client, alice):
    oauth = gpt_oauth(gpt_client)
    url, state = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=generate_token(64))
    seen = catch_callback(page)
    sign_in(page, alice)
    page.goto(url)
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.wait_for_url(GPT_CALLBACK + "**")
    query = parse_qs(urlsplit(seen[-1]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]


def test_error_page_for_an_unknown_client(page, oauth_site, alice):
    sign_in(page, alice)
    page.goto("/oauth/authorize/?response_type=code&client_id=nope&redirect_uri=https://evil.example/cb")
    assert page.get_by_role("heading", name="This connection can't go ahead").is_visible()
    screenshot(page, "oauth-consent-error-phone" if page.viewport_size["width"] < 500 else "oauth-consent-error")
