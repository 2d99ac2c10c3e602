"""Finishing a job: visible as soon as its output is stored, thumbnail after in its own step,
the copy streamed into storage, the poll schedule."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from generation import services, storage
from generation.errors import ProviderError, StorageUnavailable
from generation.models import Generation, Status
from generation.tests.test_replicate_pipeline import FLUX, balance, bucket_keys, fund, submit

pytestmark = pytest.mark.django_db


def test_the_job_is_done_before_its_thumbnail_is_made(
    alice, replicate_env, django_capture_on_commit_callbacks, monkeypatch
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX)
    seen = []
    original = services.generation_thumbnail

    def spy(*, generation_id, source=None):
        row = Generation.objects.get(pk=generation_id)
        seen.append((row.status, row.assets.filter(role="output").count(), source is not None))
        return original(generation_id=generation_id, source=source)

    monkeypatch.setattr(services, "generation_thumbnail", spy)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert seen == [(Status.SUCCEEDED, 1, True)]  # committed first; made from the bytes just copied
    assert generation.assets.filter(role="thumbnail").count() == 1


def test_a_thumbnail_that_fails_leaves_the_result_delivered_and_is_tried_again_by_its_task(
    alice, replicate_env, django_capture_on_commit_callbacks, monkeypatch
):
    fund(alice, 10)
    replicate_env["api"].script(FLUX)
    original = storage.save_bytes
    calls = []

    def storage_hiccup(key, content):
        calls.append(key)
        if len(calls) == 1:
            raise StorageUnavailable(f"save {key}: timeout")
        return original(key, content)

    monkeypatch.setattr(storage, "save_bytes", storage_hiccup)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED and balance(alice) == 9
    assert len(calls) == 2  # inline attempt, then the make_thumbnail task (read back from storage)
    assert generation.assets.filter(role="thumbnail").count() == 1


def test_the_output_streams_into_storage_with_its_size_and_digest(replicate_env):
    chunks = [bytes([n]) * 300_000 for n in range(5)]  # 1.5 MB in pieces, never joined by us
    saved = storage.save_stream("users/x/stream.bin", iter(chunks), max_bytes=2_000_000)
    content = b"".join(chunks)
    assert (saved.size, saved.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    body = replicate_env["s3"]["client"].get_object(Bucket=replicate_env["s3"]["bucket"], Key=saved.key)["Body"]
    assert body.read() == content


def test_an_output_over_the_limit_is_refused_and_leaves_nothing(
    alice, replicate_env, django_capture_on_commit_callbacks, settings
):
    big = io.BytesIO()
    Image.new("RGB", (400, 400), (9, 9, 9)).save(big, format="PNG")
    settings.OUTPUT_MAX_BYTES = len(big.getvalue()) - 1
    fund(alice, 10)
    replicate_env["api"].script(FLUX, output_content=big.getvalue())

    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks)

    assert generation.status == Status.FAILED and "larger than we accept" in generation.error_message
    assert bucket_keys(replicate_env) == [] and balance(alice) == 10


def test_save_stream_refuses_past_max_bytes():
    with pytest.raises(ProviderError, match="larger than we accept"):
        storage.save_stream("users/x/too-big.bin", iter([b"a" * 10, b"b" * 10]), max_bytes=15)


def test_polls_come_a_tenth_of_the_waited_time_apart_within_the_bounds(settings):
    settings.GENERATION_POLL_INTERVAL = 0.1
    settings.GENERATION_POLL_MAX_INTERVAL = 1.0
    assert services._poll_interval(0.2) == 0.1
    assert services._poll_interval(3.0) == pytest.approx(0.3)
    assert services._poll_interval(600) == 1.0
