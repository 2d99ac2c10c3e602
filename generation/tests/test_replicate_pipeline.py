"""The Replicate provider end to end: the real `replicate` client against the suite's
Replicate-API server, results copied into the S3 API server (moto), credits in the ledger."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.db.models import Sum
from PIL import Image

from billing import services as billing
from billing.models import CreditReservation, LedgerEntry, LedgerReason, ReservationStatus, Wallet
from generation import marking, services
from generation.errors import ProviderError
from generation.models import Asset, CatalogEntry, Generation, ProviderWebhook, Status
from generation.providers import local_render
from generation.tasks import retry_delay, run_generation
from tests.fakes.replicate_api import sample_png

pytestmark = pytest.mark.django_db

FLUX = "black-forest-labs/flux-schnell"


def same_pixels(a: bytes, b: bytes) -> bool:
    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        return first.size == second.size and first.tobytes() == second.tobytes()


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"t:{user.pk}")


def submit(user, slug: str, django_capture_on_commit_callbacks, **values) -> Generation:
    values.setdefault("prompt", "a lighthouse at dawn")
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug=slug), values=values)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def bucket_keys(env) -> list[str]:
    listing = env["s3"]["client"].list_objects_v2(Bucket=env["s3"]["bucket"])
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def balance(user) -> int:
    return Wallet.objects.get(user=user).balance


def assert_ledger_matches(user) -> None:
    total = LedgerEntry.objects.filter(wallet__user=user).aggregate(s=Sum("amount"))["s"]
    assert total == balance(user)


def test_success_copies_the_image_into_our_bucket_and_spends_the_credits(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=2)

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks, aspect_ratio="16:9", seed=7)

    assert generation.status == Status.SUCCEEDED
    assert balance(alice) == 9
    assert_ledger_matches(alice)
    assert (
        CreditReservation.objects.get(reference=generation.reservation_reference).status == ReservationStatus.CAPTURED
    )
    prefix = f"users/{alice.public_id}/generations/{generation.uuid}"
    assert bucket_keys(replicate_env) == [f"{prefix}/output-0.png", f"{prefix}/thumb-0.webp"]
    output = generation.assets.get(role="output")
    body = replicate_env["s3"]["client"].get_object(Bucket=replicate_env["s3"]["bucket"], Key=output.storage_key)
    content = body["Body"].read()
    assert same_pixels(content, sample_png(0))  # the provider's picture, plus our AI marking
    assert marking.read_marking(content)["digital_source_type"] == marking.DIGITAL_SOURCE_TYPE
    assert (output.mime_type, output.bytes, output.width) == ("image/png", len(content), 64)
    prediction = replicate_env["api"].prediction(generation.provider_prediction_id)
    assert prediction["input"] == {
        "prompt": "a lighthouse at dawn",
        "aspect_ratio": "16:9",
        "seed": 7,
        "num_outputs": 1,
        "output_format": "png",
        "go_fast": True,
    }


def test_failed_prediction_refunds_and_says_so(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, final_status="failed", error="CUDA out of memory")

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED
    assert "could not make this one" in generation.error_message
    assert "CUDA" not in generation.error_message and "CUDA" in generation.error_detail
    assert balance(alice) == 10
    assert_ledger_matches(alice)
    assert bucket_keys(replicate_env) == []


def test_server_error_on_create_is_retried_and_then_succeeds(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, create_errors=[500])

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    assert len(replicate_env["api"].state.predictions) == 1
    assert balance(alice) == 9


def test_rate_limit_on_create_honours_retry_after(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, create_errors=[(429, 7)])
    delays = []
    original = retry_delay

    def spy(exc, retries):
        delays.append(original(exc, retries))
        return delays[-1]

    import generation.tasks as tasks

    tasks.retry_delay = spy
    try:
        generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    finally:
        tasks.retry_delay = original
    assert delays == [7.0]
    assert generation.status == Status.SUCCEEDED
    assert balance(alice) == 9


def test_rate_limit_while_polling_is_waited_out(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=1, read_errors=[(429, 1)])
    started = time.monotonic()
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.SUCCEEDED
    assert time.monotonic() - started >= 1.0  # the client slept for Retry-After


def test_timeout_while_polling_resumes_the_same_prediction(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    settings.REPLICATE_TIMEOUT = 0.5
    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=1, read_errors=[("stall", 1.5)])

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    assert len(replicate_env["api"].state.predictions) == 1  # resumed, not started again
    assert balance(alice) == 9


def test_expired_output_url_fails_refunds_and_leaves_no_files(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, output_expired=True)

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED
    assert "expired" in generation.error_message
    assert balance(alice) == 10
    assert bucket_keys(replicate_env) == []
    assert not Asset.objects.filter(generation=generation).exists()


def test_provider_that_keeps_failing_is_given_up_on_with_a_refund(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    settings.GENERATION_MAX_RETRIES = 2
    fund(alice, 10)
    replicate_env["api"].script(FLUX, create_errors=[500, 502, 500, 500])

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED
    assert "kept failing" in generation.error_message
    assert balance(alice) == 10
    assert not replicate_env["api"].state.predictions


def test_not_an_image_from_the_provider_is_refused(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, output_content=b"<html>oops</html>", output_mime="image/png")
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.FAILED
    assert "not an image" in generation.error_message
    assert bucket_keys(replicate_env) == []
    assert balance(alice) == 10


def test_redelivered_task_does_not_start_a_second_prediction(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=1000)
    settings.GENERATION_INLINE_WAIT = 0.05  # hand off quickly, leaving the job running
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING
    run_generation.apply(args=[generation.pk])  # the broker delivers it again
    run_generation.apply(args=[generation.pk])
    assert len(replicate_env["api"].state.predictions) == 1


def test_edit_sends_the_provider_a_presigned_url_of_our_copy(alice, replicate_env, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fund(alice, 10)
    upload = SimpleUploadedFile("me.png", sample_png(3, (128, 96)), content_type="image/png")
    spec = services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="flux-kontext-pro"),
        values={"prompt": "make it winter"},
        image_upload=upload,
    )
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=alice, spec=spec)
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED
    sent = replicate_env["api"].prediction(generation.provider_prediction_id)["input"]
    assert sent["input_image"].startswith(replicate_env["s3"]["endpoint"])
    assert "X-Amz-Signature" in sent["input_image"]
    assert sent["aspect_ratio"] == "match_input_image"
    prefix = f"users/{alice.public_id}/generations/{generation.uuid}"
    assert f"{prefix}/input-0.png" in bucket_keys(replicate_env)
    assert balance(alice) == 6


def test_trellis_3d_model_is_copied_as_glb(alice, replicate_env, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fund(alice, 20)
    glb = local_render.image_to_glb(image=sample_png(5, (96, 96)), grid=12)
    replicate_env["api"].script(
        "firtoz/trellis", output_content=glb, output_ext="glb", output_mime="model/gltf-binary", output_key="model_file"
    )
    upload = SimpleUploadedFile("chair.png", sample_png(5, (96, 96)), content_type="image/png")
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="trellis"), image_upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=alice, spec=spec)
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED
    sent = replicate_env["api"].prediction(generation.provider_prediction_id)
    assert sent["version"] == "4876f2a8da1c544772dffa32e8889da4a1bab3a1f5c1937bfcfccb99ae347251"
    assert isinstance(sent["input"]["images"], list) and sent["input"]["generate_model"] is True
    output = generation.assets.get(role="output")
    assert output.mime_type == "model/gltf-binary" and output.storage_key.endswith("/output-0.glb")
    thumb = generation.assets.get(role="thumbnail")  # made from the input picture
    assert thumb.mime_type == "image/webp"
    assert balance(alice) == 10


def test_retry_delay_prefers_retry_after_and_backs_off_otherwise():
    assert retry_delay(ProviderError("x", retryable=True, retry_after=12), 0) == 12
    assert 1.0 <= retry_delay(ProviderError("x", retryable=True), 0) <= 1.2
    assert 8.0 <= retry_delay(ProviderError("x", retryable=True), 3) <= 9.6
    assert retry_delay(ProviderError("x", retryable=True), 10) <= 72


# --- webhooks ---------------------------------------------------------------------------------------


@pytest.fixture
def running_generation(alice, replicate_env, django_capture_on_commit_callbacks, settings):
    """A job whose prediction is still running at Replicate (the worker handed it off)."""
    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=1000)
    settings.GENERATION_INLINE_WAIT = 0
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING
    replicate_env["api"].complete(generation.provider_prediction_id)
    return generation


def post_webhook(client, api, prediction: dict, *, webhook_id="msg_1", timestamp=None, secret_ok=True):
    body = json.dumps(prediction)
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = api.sign(webhook_id, timestamp, body)
    if not secret_ok:
        signature = "v1," + "A" * 43 + "="
    return client.post(
        "/webhooks/replicate/",
        data=body,
        content_type="application/json",
        headers={"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature},
    )


def test_webhook_delivered_three_times_is_processed_once(client, running_generation, replicate_env, alice):
    api = replicate_env["api"]
    prediction = api.prediction(running_generation.provider_prediction_id)

    statuses = [post_webhook(client, api, prediction).status_code for _ in range(3)]

    assert statuses == [202, 200, 200]
    running_generation.refresh_from_db()
    assert running_generation.status == Status.SUCCEEDED
    assert ProviderWebhook.objects.count() == 1
    assert running_generation.assets.filter(role="output").count() == 1
    assert balance(alice) == 9
    assert_ledger_matches(alice)


@pytest.mark.parametrize(
    "case",
    ["bad_signature", "stale_timestamp", "future_timestamp", "unknown_prediction", "missing_headers"],
)
def test_webhook_refusals_change_nothing(client, running_generation, replicate_env, alice, case):
    api = replicate_env["api"]
    prediction = api.prediction(running_generation.provider_prediction_id)
    if case == "bad_signature":
        response = post_webhook(client, api, prediction, secret_ok=False)
    elif case == "stale_timestamp":
        response = post_webhook(client, api, prediction, timestamp=int(time.time()) - 600)
    elif case == "future_timestamp":
        response = post_webhook(client, api, prediction, timestamp=int(time.time()) + 600)
    elif case == "unknown_prediction":
        response = post_webhook(client, api, {**prediction, "id": "nosuchprediction000000000"})
    else:
        response = client.post("/webhooks/replicate/", data=json.dumps(prediction), content_type="application/json")
    assert response.status_code in (400, 404)
    running_generation.refresh_from_db()
    assert running_generation.status == Status.RUNNING
    assert not ProviderWebhook.objects.exists()
    assert balance(alice) == 9  # still reserved, neither captured nor refunded


def test_beat_poller_finishes_jobs_whose_webhook_never_came(running_generation, replicate_env, alice):
    from generation.tasks import poll_running_generations

    Generation.objects.filter(pk=running_generation.pk).update(last_polled_at=None, started_at="2020-01-01T00:00Z")
    assert poll_running_generations.apply().get() == 1
    running_generation.refresh_from_db()
    assert running_generation.status == Status.SUCCEEDED


def test_cancel_tells_the_provider_and_refunds(
    client, running_generation, replicate_env, alice, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/g/{running_generation.uuid}/cancel/", follow=True)
    assert "credits are back" in response.content.decode()
    running_generation.refresh_from_db()
    assert running_generation.status == Status.CANCELED
    assert balance(alice) == 10
    assert ("POST", f"/v1/predictions/{running_generation.provider_prediction_id}/cancel") in replicate_env[
        "api"
    ].state.requests


def test_thumbnail_is_a_small_webp(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    big = io.BytesIO()
    Image.new("RGB", (1200, 800), (10, 200, 30)).save(big, format="PNG")
    replicate_env["api"].script(FLUX, output_content=big.getvalue())
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    thumb = generation.assets.get(role="thumbnail")
    assert (thumb.width, thumb.height) == (512, 341)


@pytest.mark.django_db(transaction=True)
def test_with_webhooks_the_worker_hands_off_and_replicates_webhook_finishes_the_job(
    alice, replicate_env, live_server, settings
):
    """Production path: the prediction is created with our webhook URL, the worker returns at
    once, and the signed webhook the Replicate-API server sends to a live server finishes it.

    "At once" is checked by what the worker did, not by a stopwatch (which flakes on a busy
    2-core CI): the prediction never finishes by itself here, so a worker that waited or polled
    would still be in `generation_submit`; it must return with the job running and no read sent.
    """
    settings.WEBHOOK_BASE_URL = live_server.url
    settings.GENERATION_INLINE_WAIT = 3600  # would block the test if the webhook path still polled
    fund(alice, 10)
    api = replicate_env["api"]
    api.script(FLUX, reads_before_final=10_000)
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="flux-schnell"), values={"prompt": "a fox"})

    generation = services.generation_submit(user=alice, spec=spec)  # autocommit: the task runs now
    generation.refresh_from_db()

    assert generation.status == Status.RUNNING
    prediction_id = generation.provider_prediction_id
    assert ("GET", f"/v1/predictions/{prediction_id}") not in api.state.requests  # handed off, never polled
    prediction = api.prediction(prediction_id)
    assert prediction["status"] == "starting"
    assert prediction["webhook"] == f"{live_server.url}/webhooks/replicate/"
    assert prediction["webhook_events_filter"] == ["completed"]

    api.complete(prediction_id)  # the model finishes; Replicate calls us back
    assert api.deliver_webhook(prediction_id) == 202
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert ProviderWebhook.objects.filter(prediction_id=prediction_id).count() == 1
    assert balance(alice) == 9
    assert_ledger_matches(alice)
    assert f"users/{alice.public_id}/generations/{generation.uuid}/output-0.png" in bucket_keys(replicate_env)


def test_pro_only_model_is_refused_without_pro_and_runs_with_it(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    from billing.models import Plan, Subscription, SubscriptionStatus
    from generation.errors import InvalidInput

    fund(alice, 10)
    with pytest.raises(InvalidInput, match="part of Pro"):
        submit(alice, "flux-1-1-pro", django_capture_on_commit_callbacks)
    assert balance(alice) == 10 and not Generation.objects.exists()

    Subscription.objects.create(
        user=alice, plan=Plan.objects.get(slug="pro"), stripe_subscription_id="sub_1", status=SubscriptionStatus.ACTIVE
    )
    generation = submit(alice, "flux-1-1-pro", django_capture_on_commit_callbacks)
    assert generation.status == Status.SUCCEEDED
    assert balance(alice) == 6


def test_cancel_while_the_result_is_being_copied_wins_and_leaves_no_files(
    alice, replicate_env, django_capture_on_commit_callbacks, monkeypatch
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX)
    original = services._copy_output

    def copy_then_person_cancels(generation, *args, **kwargs):
        assets = original(generation, *args, **kwargs)
        services.generation_cancel(user=alice, generation=generation)  # clicked while we were copying
        return assets

    monkeypatch.setattr(services, "_copy_output", copy_then_person_cancels)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.CANCELED
    assert balance(alice) == 10
    assert_ledger_matches(alice)
    assert not Asset.objects.filter(generation=generation).exists()
    assert bucket_keys(replicate_env) == []


def test_a_duplicate_delivery_racing_the_first_cancels_its_own_prediction_and_follows_the_first(
    alice, replicate_env, django_capture_on_commit_callbacks, monkeypatch
):
    from generation.providers.replicate import ReplicateProvider

    fund(alice, 10)
    api = replicate_env["api"]
    api.script(FLUX)
    original_start = ReplicateProvider.start
    raced = {}

    def start_while_another_worker_also_starts(self, request):
        state = original_start(self, request)
        if not raced:  # the other delivery stored its prediction while ours was being created
            raced["first"] = original_start(self, request).id
            Generation.objects.update(provider_prediction_id=raced["first"])
        return state

    monkeypatch.setattr(ReplicateProvider, "start", start_while_another_worker_also_starts)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    assert generation.provider_prediction_id == raced["first"]
    statuses = sorted(p["status"] for p in api.state.predictions.values())
    assert statuses == ["canceled", "succeeded"]
    assert balance(alice) == 9


def test_storage_outage_at_submit_is_a_message_and_charges_nothing(alice, replicate_env, client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fund(alice, 10)
    client.force_login(alice)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"],
                                                              "bucket_name": "no-such-bucket"}},
    }  # fmt: skip
    upload = SimpleUploadedFile("me.png", sample_png(3, (128, 96)), content_type="image/png")
    response = client.post(
        "/create/?tab=edit", {"model": "flux-kontext-pro", "prompt": "make it winter", "image": upload}
    )
    assert response.status_code == 200
    assert "We could not store files right now. Nothing was charged" in response.content.decode()
    assert balance(alice) == 10
    assert not Generation.objects.exists()


def test_aborted_prediction_is_a_refunded_failure(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    replicate_env["api"].script(FLUX, final_status="aborted", reads_before_final=1)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    assert generation.status == Status.FAILED
    assert "The provider stopped this job" in generation.error_message
    assert balance(alice) == 10
    assert bucket_keys(replicate_env) == []


def test_jobs_stuck_past_the_deadline_are_failed_and_refunded_by_the_sweeper(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from generation.tasks import fail_stuck_generations

    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=10_000)
    settings.GENERATION_INLINE_WAIT = 0
    stuck = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    fresh = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    Generation.objects.filter(pk=stuck.pk).update(queued_at=timezone.now() - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        assert fail_stuck_generations.apply().get() == 1

    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == Status.FAILED and "took far longer" in stuck.error_message
    assert fresh.status == Status.RUNNING
    assert balance(alice) == 9  # the stuck one refunded, the fresh one still reserved
    prediction = replicate_env["api"].prediction(stuck.provider_prediction_id)
    assert prediction["status"] == "canceled"  # and told to stop at the provider


def test_an_output_given_inline_as_a_data_url_is_stored(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    import base64

    from generation.providers.base import SUCCEEDED, OutputRef, PredictionState

    fund(alice, 10)
    replicate_env["api"].script(FLUX, reads_before_final=10_000)
    settings.GENERATION_INLINE_WAIT = 0
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)
    inline = "data:image/png;base64," + base64.b64encode(sample_png(9)).decode()
    state = PredictionState(id=generation.provider_prediction_id, status=SUCCEEDED, outputs=[OutputRef(url=inline)])
    services.generation_apply_state(generation_id=generation.pk, state=state)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    output = generation.assets.get(role="output")
    stored = replicate_env["s3"]["client"].get_object(Bucket=replicate_env["s3"]["bucket"], Key=output.storage_key)
    assert same_pixels(stored["Body"].read(), sample_png(9))


def test_browser_links_are_signed_for_the_public_bucket_address(alice, replicate_env, settings):
    import requests

    from generation import storage

    saved = storage.save_bytes(f"users/{alice.public_id}/probe.png", sample_png(1))
    endpoint = replicate_env["s3"]["endpoint"]
    public = endpoint.replace("127.0.0.1", "localhost")
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = public
    url = storage.access_url(saved.key, filename="probe.png")
    assert url.startswith(f"{public}/{replicate_env['s3']['bucket']}/") and "X-Amz-Signature" in url
    assert requests.get(url, timeout=10).content == sample_png(1)
