"""Erasure revokes what Atelier's own OAuth server issued: a connected app's access token stops
working the moment the person asks to be erased, and its refresh token cannot mint another."""

from __future__ import annotations

import pytest
from django.test import Client
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from atelier_oauth import services as oauth_services
from atelier_oauth.tests.conftest import gpt_client, token_in_process  # noqa: F401  (fixture)
from privacy.services import erasure as erasure_services

pytestmark = pytest.mark.django_db


def test_oauth_token_stops_working_after_erasure_start(alice, bob, gpt_client, django_capture_on_commit_callbacks):  # noqa: F811
    client = Client()
    token = token_in_process(client, gpt_client, alice)
    bobs = token_in_process(client, gpt_client, bob)
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 200

    with django_capture_on_commit_callbacks():  # the erasure run itself is not needed here
        erasure_services.account_erasure_start(user=alice)

    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401
    for model in (get_access_token_model(), get_refresh_token_model(), get_grant_model()):
        assert not model.objects.filter(user=alice).exists(), model
    refreshed = client.post(
        "/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # Someone else's connection is untouched.
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {bobs['access_token']}").status_code == 200


def test_credentials_revoke_counts_oauth_tokens(alice, gpt_client):  # noqa: F811
    token_in_process(Client(), gpt_client, alice)
    # One access token and one refresh token (the code was used up at the exchange).
    assert len(oauth_services.connections_for(user=alice)) == 1
    assert erasure_services.credentials_revoke(user=alice) == 2
    assert oauth_services.connections_for(user=alice) == []
    assert erasure_services.credentials_revoke(user=alice) == 0
