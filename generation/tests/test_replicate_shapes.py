"""The Replicate provider against the shapes in Replicate's recorded API responses that the SDK's
own prediction model refuses, how input images travel, and what happens after a prediction has
finished. The real `replicate` client talks to the suite's Replicate-API server."""

from __future__ import annotations

import base64
import io
import json
import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation import services
from generation.errors import InvalidInput
from generation.models import Asset, CatalogEntry, Generation, Status
from generation.tasks import cancel_prediction
from generation.tests.test_replicate_pipeline import (
    FLUX,
    assert_ledger_matches,
    balance,
    bucket_keys,
    fund,
    post_webhook,
    submit,
)
from tests.fakes.replicate_api import sample_png

pytestmark = pytest.mark.django_db

TRELLIS = "firtoz/trellis"


def cancels_sent(api) -> list[str]:
    return [path for method, path in api.state.requests if method == "POST" and path.endswith("/cancel")]


# --- raw JSON: bodies without `model`, the `aborted` status -------------------------------------


def test_predictions_without_model_in_their_bodies_run_to_the_end(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, omit_fields=("model",), reads_before_final=2)

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    assert balance(alice) == 9


def test_a_create_answered_aborted_is_a_refunded_failure_not_a_crash(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, create_status="aborted", omit_fields=("model",))

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED
    assert "The provider stopped this job" in generation.error_message
    assert "Something went wrong on our side" not in generation.error_message
    assert balance(alice) == 10
    assert cancels_sent(replicate_env["api"]) == []  # it ended at Replicate; nothing to stop


def test_a_cancel_answered_aborted_without_model_is_accepted(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    fund(alice, 10)
    api = replicate_env["api"]
    api.script(FLUX, reads_before_final=10_000, cancel_status="aborted", omit_fields=("model",))
    settings.GENERATION_INLINE_WAIT = 0
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING

    services.generation_cancel(user=alice, generation=generation)
    result = cancel_prediction.apply(args=[generation.pk])

    assert result.successful(), result.traceback
    assert api.prediction(generation.provider_prediction_id)["status"] == "aborted"
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED and balance(alice) == 10


@pytest.mark.parametrize("body", [[1, 2], "not a prediction", {"id": "abc\u0000def", "status": "succeeded"}])
def test_signed_webhook_bodies_that_are_not_predictions_answer_400(client, replicate_env, body):
    api = replicate_env["api"]
    raw = json.dumps(body)
    timestamp = int(time.time())
    response = client.post(
        "/webhooks/replicate/",
        data=raw,
        content_type="application/json",
        headers={
            "webhook-id": "msg_odd",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": api.sign("msg_odd", timestamp, raw),
        },
    )
    assert response.status_code == 400


def test_a_webhook_body_without_model_finishes_the_job(
    client, alice, replicate_env, settings, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    api = replicate_env["api"]
    api.script(FLUX, reads_before_final=10_000, omit_fields=("model",))
    settings.GENERATION_INLINE_WAIT = 0
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING
    api.complete(generation.provider_prediction_id)

    response = post_webhook(client, api, api.body(generation.provider_prediction_id))

    assert response.status_code == 202
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED


# --- after the prediction finished: no cancel, and TRELLIS without a model file ----------------


def test_a_result_we_refuse_after_the_prediction_finished_sends_no_cancel(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, output_content=b"<html>oops</html>")

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED and "not an image" in generation.error_message
    assert balance(alice) == 10
    assert cancels_sent(replicate_env["api"]) == []


def test_a_download_that_keeps_failing_gives_up_without_cancelling_the_finished_prediction(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    settings.GENERATION_MAX_RETRIES = 1
    fund(alice, 10)
    replicate_env["api"].script(FLUX, file_errors=[500, 502, 503, 500, 500, 500])

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED and "kept failing" in generation.error_message
    assert balance(alice) == 10
    assert_ledger_matches(alice)
    assert cancels_sent(replicate_env["api"]) == []
    assert bucket_keys(replicate_env) == []


def test_trellis_without_model_file_says_so_and_never_keeps_the_video(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 20)
    api = replicate_env["api"]
    api.script(
        TRELLIS,
        output_key="color_video",
        output_null_keys=("model_file",),
        output_content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64,
        output_ext="mp4",
        output_mime="video/mp4",
    )
    upload = SimpleUploadedFile("chair.png", sample_png(5, (96, 96)), content_type="image/png")
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="trellis"), image_upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=alice, spec=spec)
    generation.refresh_from_db()

    assert generation.status == Status.FAILED
    assert "without a 3D model file" in generation.error_message
    assert "model_file" in generation.error_detail and "color_video" in generation.error_detail
    assert not [path for method, path in api.state.requests if path.startswith("/files/")]  # video never fetched
    assert not generation.assets.filter(role="output").exists()
    assert balance(alice) == 20
    assert cancels_sent(api) == []


# --- input images: URL or data: URL within Replicate's 256 KB -------------------------------------


@pytest.fixture
def local_files_env(settings, replicate_api):
    """Replicate with local-file storage (the embedded default's storage)."""
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    settings.REPLICATE_WEBHOOK_SECRET = replicate_api.state.webhook_secret
    settings.REPLICATE_TIMEOUT = 2.0
    settings.GENERATION_POLL_INTERVAL = 0.01
    settings.WEBHOOK_BASE_URL = ""
    settings.SITE_URL = "http://127.0.0.1:8000"
    return replicate_api


def noise_png(side: int) -> bytes:
    """Random pixels: the worst case for compression (a 1024² PNG is about 3 MB)."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def edit(user, content: bytes, django_capture_on_commit_callbacks) -> Generation:
    upload = SimpleUploadedFile("me.png", content, content_type="image/png")
    entry = CatalogEntry.objects.get(slug="flux-kontext-pro")
    spec = services.GenerationSpec(model=entry, values={"prompt": "make it winter"}, image_upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def sent_image(api, generation) -> str:
    return api.prediction(generation.provider_prediction_id)["input"]["input_image"]


def test_a_small_input_goes_as_a_data_url_of_our_copy(alice, local_files_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    generation = edit(alice, sample_png(3, (128, 96)), django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    url = sent_image(local_files_env, generation)
    assert url.startswith("data:image/png;base64,")
    stored = generation.assets.get(role="input")
    assert base64.b64decode(url.split(",", 1)[1]) == services.storage.read_bytes(stored.storage_key)


def test_a_large_input_is_re_encoded_under_256_kb_when_our_site_is_not_public(
    alice, local_files_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    content = noise_png(1024)
    assert len(content) > 1024 * 1024

    generation = edit(alice, content, django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    url = sent_image(local_files_env, generation)
    assert url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert len(sent) <= 256 * 1024
    with Image.open(io.BytesIO(sent)) as image:
        assert image.format == "JPEG" and max(image.size) <= 1024
    assert generation.assets.get(role="input").mime_type == "image/png"  # our own copy stays as cleaned


def test_a_large_input_goes_as_a_short_lived_signed_link_when_our_site_is_public(
    alice, local_files_env, django_capture_on_commit_callbacks, settings, client
):
    settings.SITE_URL = "https://atelier.example"
    fund(alice, 10)
    generation = edit(alice, noise_png(600), django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    url = sent_image(local_files_env, generation)
    assert url.startswith("https://atelier.example/files/")
    response = client.get(url.removeprefix("https://atelier.example"))  # what Replicate would fetch
    stored = generation.assets.get(role="input")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == services.storage.read_bytes(stored.storage_key)


def test_an_input_that_cannot_fit_is_refused_at_submit_and_charges_nothing(
    alice, local_files_env, django_capture_on_commit_callbacks, monkeypatch
):
    from generation.providers import replicate

    monkeypatch.setattr(replicate, "DATA_URL_MAX_BYTES", 500)
    fund(alice, 10)

    with pytest.raises(InvalidInput, match="too detailed to send"):
        edit(alice, noise_png(300), django_capture_on_commit_callbacks)

    assert balance(alice) == 10
    assert not Generation.objects.exists() and not Asset.objects.exists()
    assert not local_files_env.state.predictions


def test_deleting_a_running_job_from_the_gallery_stops_its_prediction_at_replicate(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    """The row is gone before the cancel task runs; the prediction must be stopped all the same."""
    fund(alice, 10)
    api = replicate_env["api"]
    api.script(FLUX, reads_before_final=10_000)
    settings.GENERATION_INLINE_WAIT = 0
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING
    prediction = generation.provider_prediction_id

    with django_capture_on_commit_callbacks(execute=True):
        assert services.generations_delete(user=alice, ids=[generation.pk]) == 1

    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert [path for path in cancels_sent(api) if prediction in path]
    assert api.prediction(prediction)["status"] == "canceled"
    assert balance(alice) == 10  # refunded before it went


def test_four_variations_asked_three_delivered_costs_three(alice, replicate_env, django_capture_on_commit_callbacks):
    """FLUX drops results its safety checker flags and fails only when all are: pay for what came back."""
    fund(alice, 10)
    replicate_env["api"].script(FLUX, output_files=3)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks, num_outputs=4)
    assert generation.status == Status.SUCCEEDED
    assert generation.assets.filter(role="output").count() == 3
    assert generation.cost == 3 * CatalogEntry.objects.get(slug="flux-schnell").credit_cost
    assert balance(alice) == 10 - generation.cost
    assert_ledger_matches(alice)
