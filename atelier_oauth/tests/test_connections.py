"""/oauth/connections/: the apps holding tokens for me, and revoking one at once."""

from __future__ import annotations

import re

import pytest
import requests

from atelier_oauth.tests.conftest import obtain_token, signed_in_session

pytestmark = pytest.mark.django_db(transaction=True)


def me_status(base: str, token: str) -> int:
    return requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_connected_app_listed_and_revoked_token_fails(oauth_site, gpt_client, alice):
    token = obtain_token(oauth_site, gpt_client, alice)
    assert me_status(oauth_site, token["access_token"]) == 200

    session = signed_in_session(alice)
    page = session.get(f"{oauth_site}/oauth/connections/")
    assert page.status_code == 200
    assert "ChatGPT" in page.text and "chat.openai.com" in page.text
    assert "generate (spends credits)" in page.text
    action = re.search(r'action="(/oauth/connections/\d+/revoke/)"', page.text).group(1)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    # Without the CSRF token the POST is refused and nothing changes.
    assert session.post(oauth_site + action, allow_redirects=False).status_code == 403
    assert me_status(oauth_site, token["access_token"]) == 200

    done = session.post(oauth_site + action, data={"csrfmiddlewaretoken": csrf}, allow_redirects=False)
    assert done.status_code == 302 and done.headers["Location"] == "/oauth/connections/"
    assert me_status(oauth_site, token["access_token"]) == 401
    # The refresh token went with it.
    refreshed = requests.post(
        f"{oauth_site}/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
        timeout=10,
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    after = session.get(f"{oauth_site}/oauth/connections/")
    assert "No apps are connected" in after.text


def test_someone_elses_app_cannot_be_revoked(oauth_site, gpt_client, alice, bob):
    token = obtain_token(oauth_site, gpt_client, alice)
    session = signed_in_session(bob)
    page = session.get(f"{oauth_site}/oauth/connections/")
    assert "No apps are connected" in page.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{oauth_site}/oauth/connections/{gpt_client.application.pk}/revoke/",
        data={"csrfmiddlewaretoken": csrf},
        allow_redirects=False,
    )
    assert answer.status_code == 404
    assert me_status(oauth_site, token["access_token"]) == 200


def test_connections_page_needs_sign_in(oauth_site):
    answer = requests.get(f"{oauth_site}/oauth/connections/", allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/accounts/login/")
