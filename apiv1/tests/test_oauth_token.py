"""The API with an OAuth access token (the GPT Action's way in): the same answers as with a key,
the jobs marked as the GPT Action's, scopes enforced, and the per-credential rate limit counted
per connected client."""

from __future__ import annotations

import pytest
from django.test import Client

from apiv1.tests.conftest import bearer
from atelier_oauth import services as oauth
from atelier_oauth.tests.conftest import GPT_CALLBACK, ClientCredentials, token_in_process
from billing.models import Wallet
from generation.models import Generation, Source

pytestmark = pytest.mark.django_db


@pytest.fixture
def chatgpt(db) -> ClientCredentials:
    application, secret = oauth.gpt_action_client_create(redirect_uri=GPT_CALLBACK, name="ChatGPT")
    return ClientCredentials(application=application, client_id=application.client_id, client_secret=secret)


def test_an_oauth_token_creates_and_reads_like_a_key_and_is_the_gpt_action(chatgpt, funded):
    token = token_in_process(Client(), chatgpt, funded)["access_token"]
    response = Client().post(
        "/api/v1/generations",
        {"model": "local-canvas", "prompt": "a paper boat"},
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(owner=funded)
    assert generation.source == Source.GPT_ACTION
    assert Wallet.objects.get(user=funded).balance == 9
    listed = Client().get("/api/v1/generations", **bearer(token)).json()
    assert [item["id"] for item in listed["items"]] == [str(generation.uuid)]
    assert Client().get("/api/v1/me", **bearer(token)).json()["credits"] == 9


def test_a_read_only_token_cannot_spend(chatgpt, funded):
    token = token_in_process(Client(), chatgpt, funded, scope="read")["access_token"]
    assert Client().get("/api/v1/models", **bearer(token)).status_code == 200
    refused = Client().post(
        "/api/v1/generations",
        {"model": "local-canvas", "prompt": "x"},
        content_type="application/json",
        **bearer(token),
    )
    assert refused.status_code == 403 and refused.json()["type"].endswith("#insufficient_scope")
    assert not Generation.objects.exists()


def test_the_per_credential_limit_counts_the_connected_client_across_its_tokens(chatgpt, funded, settings):
    settings.API_RATE_PER_KEY = "2/m"
    first = token_in_process(Client(), chatgpt, funded)["access_token"]
    second = token_in_process(Client(), chatgpt, funded)["access_token"]  # a refreshed or new token, same client
    assert Client().get("/api/v1/me", **bearer(first)).status_code == 200
    assert Client().get("/api/v1/me", **bearer(second)).status_code == 200
    refused = Client().get("/api/v1/me", **bearer(first))
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
