"""The GPT Action's OAuth flow with Authlib (a client nobody here wrote) against the live server:
the staff-created confidential client, PKCE S256, consent, the code exchanged for tokens, the API
called with them, refresh rotation, and a replayed refresh token refused with its family revoked."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from atelier_oauth.tests.conftest import GPT_CALLBACK, consent, signed_in_session

pytestmark = pytest.mark.django_db(transaction=True)


def authlib_session(gpt_client, **kwargs) -> OAuth2Session:
    return OAuth2Session(
        client_id=gpt_client.client_id,
        client_secret=gpt_client.client_secret,
        scope="read generate",
        redirect_uri=GPT_CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",  # ChatGPT's default "POST request"
        **kwargs,
    )


def me(base: str, access_token: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def test_authorization_code_pkce_refresh_rotation_and_reuse(oauth_site, gpt_client, alice):
    oauth = authlib_session(gpt_client)
    verifier = generate_token(64)
    url, state = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=verifier)

    callback = consent(signed_in_session(alice), url)
    assert callback.startswith(GPT_CALLBACK)
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [state]
    assert query["iss"] == [oauth_site]  # RFC 9207: the issuer of the metadata document

    token = oauth.fetch_token(f"{oauth_site}/oauth/token/", authorization_response=callback, code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == {"read", "generate"}
    # Stored hashed (RFC 9700): the row has a checksum, not the token.
    row = get_access_token_model().objects.get(user=alice)
    assert row.token == "" and row.token_checksum

    answer = me(oauth_site, token["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"] == alice.email

    # Rotation: a new pair; the old access token stops working.
    first_refresh = token["refresh_token"]
    second = oauth.refresh_token(f"{oauth_site}/oauth/token/", refresh_token=first_refresh)
    assert second["refresh_token"] != first_refresh and second["access_token"] != token["access_token"]
    assert me(oauth_site, second["access_token"]).status_code == 200
    assert me(oauth_site, token["access_token"]).status_code == 401

    # Replaying the used refresh token is refused and revokes the whole family.
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(f"{oauth_site}/oauth/token/", refresh_token=first_refresh)
    assert refused.value.error == "invalid_grant"
    assert me(oauth_site, second["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as family:
        oauth.refresh_token(f"{oauth_site}/oauth/token/", refresh_token=second["refresh_token"])
    assert family.value.error == "invalid_grant"
    assert not get_refresh_token_model().objects.filter(user=alice, revoked__isnull=True).exists()


def test_cancel_on_consent_returns_access_denied(oauth_site, gpt_client, alice):
    oauth = authlib_session(gpt_client)
    url, state = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=generate_token(64))
    callback = consent(signed_in_session(alice), url, allow=False)
    query = parse_qs(urlsplit(callback).query)
    assert callback.startswith(GPT_CALLBACK)
    assert query["error"] == ["access_denied"] and query["state"] == [state]
    assert "code" not in query
    assert not get_access_token_model().objects.filter(user=alice).exists()
