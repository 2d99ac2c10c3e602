"""The engine the API and the MCP server share, called directly (no HTTP)."""

from __future__ import annotations

import pytest

from apiv1 import engine
from billing.models import LedgerEntry, Wallet
from generation.errors import InvalidInput
from generation.models import Generation, Source, Status

pytestmark = pytest.mark.django_db


def test_catalog_lists_the_offline_models_with_their_parameters():
    models = {item["slug"]: item for item in engine.catalog_list()}
    canvas = models["local-canvas"]
    assert canvas["kind"] == "text_to_image" and canvas["credit_cost"] == 1 and canvas["pro_only"] is False
    params = {p["name"]: p for p in canvas["parameters"]}
    assert params["prompt"]["required"] is True and params["prompt"]["type"] == "text"
    assert "16:9" in params["aspect_ratio"]["choices"] and params["aspect_ratio"]["default"] == "1:1"
    assert params["seed"]["min"] == 0
    assert models["local-relief"]["parameters"][0]["type"] == "image"
    assert "flux-schnell" not in models  # Replicate is not configured here


def test_an_unknown_model_is_invalid_input_on_the_model_field(funded):
    with pytest.raises(InvalidInput) as caught:
        engine.generation_create(user=funded, model="nope", prompt="x", source=Source.API)
    assert caught.value.field == "model" and caught.value.status == 422


def test_create_runs_the_job_and_the_json_has_signed_outputs(funded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        generation, created = engine.generation_create(
            user=funded, model="local-canvas", prompt="a fox", params={"aspect_ratio": "16:9"}, source=Source.MCP
        )
    assert created and generation.source == Source.MCP
    generation = engine.generation_wait(generation, 5)
    data = engine.generation_json(generation)
    assert data["status"] == "succeeded" and data["model"] == "local-canvas" and data["cost"] == 1
    (output,) = data["outputs"]
    assert output["mime_type"] == "image/png" and (output["width"], output["height"]) == (1024, 576)
    assert output["url"].startswith("http://") and "/files/" in output["url"]
    assert data["viewer_url"] is None
    assert Wallet.objects.get(user=funded).balance == 9


def test_the_same_idempotency_key_returns_the_first_job_and_charges_once(funded):
    first, created = engine.generation_create(
        user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="k-1"
    )
    again, created_again = engine.generation_create(
        user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="k-1"
    )
    assert created and not created_again and again.pk == first.pk
    assert Generation.objects.filter(owner=funded).count() == 1
    assert Wallet.objects.get(user=funded).balance == 9
    assert LedgerEntry.objects.filter(wallet__user=funded, amount__lt=0).count() == 1


def test_the_same_key_with_another_request_is_refused(funded):
    engine.generation_create(user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="k")
    with pytest.raises(engine.IdempotencyKeyReused) as caught:
        engine.generation_create(
            user=funded, model="local-canvas", prompt="a wolf", source=Source.API, idempotency_key="k"
        )
    assert caught.value.status == 422 and caught.value.type == "idempotency_key_reused"
    assert Generation.objects.filter(owner=funded).count() == 1


def test_list_pages_with_a_cursor_and_filters(funded):
    made = [
        engine.generation_create(user=funded, model="local-canvas", prompt=f"p{i}", source=Source.API)[0]
        for i in range(3)
    ]
    page, cursor = engine.generation_list(user=funded, limit=2)
    assert [g.pk for g in page] == [made[2].pk, made[1].pk] and cursor
    rest, end = engine.generation_list(user=funded, limit=2, cursor=cursor)
    assert [g.pk for g in rest] == [made[0].pk] and end == ""
    assert engine.generation_list(user=funded, status=Status.SUCCEEDED)[0] == []
    with pytest.raises(InvalidInput):
        engine.generation_list(user=funded, cursor="forged")


def test_credits_json(funded):
    assert engine.credits_json(funded) == {"balance": 10, "debt": 0, "plan": "free", "plan_title": None}


def test_keys_expire_after_api_idempotency_hours_and_are_swept(funded, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apiv1.models import IdempotencyRecord
    from apiv1.tasks import sweep_idempotency_records

    first, _ = engine.generation_create(
        user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="old"
    )
    engine.generation_create(user=funded, model="local-canvas", prompt="new", source=Source.API, idempotency_key="new")
    past = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS, minutes=1)
    IdempotencyRecord.objects.filter(key="old").update(created_at=past)

    # Past its time, the key starts a new job (and charges it) instead of replaying the old one.
    again, created = engine.generation_create(
        user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="old"
    )
    assert created and again.pk != first.pk
    IdempotencyRecord.objects.filter(key="old").update(created_at=past)
    assert sweep_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_key_whose_generation_was_deleted_is_a_409(funded, django_capture_on_commit_callbacks):
    generation, _ = engine.generation_create(
        user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="gone"
    )
    with django_capture_on_commit_callbacks(execute=True):
        engine.generation_delete(user=funded, generation_id=generation.uuid)
    with pytest.raises(engine.IdempotencyTargetGone) as caught:
        engine.generation_create(
            user=funded, model="local-canvas", prompt="a fox", source=Source.API, idempotency_key="gone"
        )
    assert caught.value.status == 409


def test_nul_characters_are_refused_as_input(funded):
    with pytest.raises(InvalidInput) as caught:
        engine.generation_create(user=funded, model="local-canvas", prompt="a\x00b", source=Source.API)
    assert caught.value.field == "prompt"
    assert not Generation.objects.exists()
