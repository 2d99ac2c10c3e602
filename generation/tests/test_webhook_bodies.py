"""Replicate webhooks whose signature is valid but whose body is not a prediction: a 400 with a
reason, and nothing recorded, queued or changed (they used to answer 500).

Every body here is signed with the real scheme (Standard Webhooks: HMAC-SHA256 over
"<id>.<timestamp>.<body>" with the whsec_ key), which the Replicate SDK verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import pytest

from generation import tasks
from generation.models import CatalogEntry, Generation, ProviderWebhook, Status

pytestmark = pytest.mark.django_db

PREDICTION_ID = "q7v3kz1x9hrm80cjx3tbk4h2wr"
KEY = secrets.token_bytes(32)


@pytest.fixture
def replicate_configured(settings):
    settings.REPLICATE_API_TOKEN = "r8_test_token"
    settings.REPLICATE_WEBHOOK_SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture
def running(alice, replicate_configured) -> Generation:
    entry = CatalogEntry.objects.get(slug="flux-schnell")
    return Generation.objects.create(
        owner=alice,
        model=entry,
        kind=entry.kind,
        prompt="a lighthouse",
        cost=entry.credit_cost,
        status=Status.RUNNING,
        provider_prediction_id=PREDICTION_ID,
    )


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """The sync tasks the webhook view queues (recorded, not run: nothing here talks to Replicate)."""
    calls: list[int] = []

    class _Task:
        @staticmethod
        def delay(generation_id: int) -> None:
            calls.append(generation_id)

    monkeypatch.setattr(tasks, "sync_generation", _Task)
    return calls


def post_signed(client, body: str, *, webhook_id: str = "msg_2p1"):
    timestamp = str(int(time.time()))
    digest = hmac.new(KEY, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return client.post(
        "/webhooks/replicate/",
        data=body.encode(),
        content_type="application/json",
        headers={
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        },
    )


def prediction(**fields) -> dict:
    return {"id": PREDICTION_ID, "model": "black-forest-labs/flux-schnell", "version": "v1", "status": "succeeded"} | (
        fields
    )


def test_a_signed_prediction_is_accepted(client, running, queued):
    """The control: the signing used below is right, so the refusals below are about the body."""
    response = post_signed(client, json.dumps(prediction()))
    assert response.status_code == 202
    assert queued == [running.pk]
    assert ProviderWebhook.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        "[1,2]",
        '"a string"',
        "null",
        "42",
        "{",
        json.dumps(prediction(id=PREDICTION_ID + "\u0000")),  # json.dumps writes it as \u0000
        json.dumps(prediction(id="\u0000")),
        json.dumps(prediction(id="p" * 150)),
        json.dumps(prediction(id=["not", "a", "string"])),
        json.dumps({"status": "succeeded"}),
    ],
    ids=[
        "array",
        "string",
        "null",
        "number",
        "truncated",
        "nul-in-id",
        "nul-id",
        "id-too-long",
        "id-not-text",
        "no-id",
    ],
)
def test_signed_bodies_that_are_not_a_prediction_answer_400_and_change_nothing(client, running, queued, body):
    response = post_signed(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid webhook"
    assert response.json()["reason"]
    assert queued == []
    assert not ProviderWebhook.objects.exists()
    running.refresh_from_db()
    assert running.status == Status.RUNNING


def test_a_signed_webhook_id_with_nul_answers_400(client, running, queued):
    response = post_signed(client, json.dumps(prediction()), webhook_id="msg_\u0000x")
    assert response.status_code == 400
    assert response.json()["reason"]
    assert queued == [] and not ProviderWebhook.objects.exists()


def test_nul_in_a_field_we_do_not_keep_is_harmless(client, running, queued):
    """Logs and errors are not taken from the webhook (the sync task reads the prediction back from
    the API), so a NUL there neither fails the request nor reaches the database."""
    response = post_signed(client, json.dumps(prediction(logs="step 1\u0000", error=None)))
    assert response.status_code == 202
    assert queued == [running.pk]
    assert list(ProviderWebhook.objects.values_list("webhook_id", "prediction_id")) == [("msg_2p1", PREDICTION_ID)]
