"""One generation end to end through a real Celery worker process on Redis (not eager)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from billing import services as billing
from billing.models import LedgerReason, Wallet
from config.celery import app
from generation import services
from generation.models import CatalogEntry, Generation, Status
from tests.fixtures import ARTIFACTS
from tests.harness import missing
from tests.worker import WorkerProcess, broker_url, database_url, point_app_at, restore_app

pytestmark = pytest.mark.django_db(transaction=True)


def test_real_worker_runs_a_replicate_generation_end_to_end(alice, redis_url, replicate_api, s3_storage, settings):
    if connection.vendor != "postgresql":
        missing("PostgreSQL", "the worker process needs a shared database (set DATABASE_URL)")
    replicate_api.script("black-forest-labs/flux-schnell", reads_before_final=3)
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    broker = broker_url(redis_url)
    worker = WorkerProcess(
        env={
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker,
            "REPLICATE_API_TOKEN": replicate_api.state.token,
            "REPLICATE_BASE_URL": replicate_api.url,
            "GENERATION_POLL_INTERVAL": "0.05",
            "AWS_STORAGE_BUCKET_NAME": s3_storage["bucket"],
            "AWS_S3_ENDPOINT_URL": s3_storage["endpoint"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
        },
        log_path=ARTIFACTS / "worker-e2e.log",
    ).start()
    saved = point_app_at(app, broker=broker, queue=worker.queue)
    try:
        billing.credits_grant(user=alice, amount=5, reason=LedgerReason.ADMIN_GRANT, idempotency_key="w")
        spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug="flux-schnell"), values={"prompt": "a fox"})
        generation = services.generation_submit(user=alice, spec=spec)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            generation.refresh_from_db()
            if generation.is_final:
                break
            time.sleep(0.1)
    finally:
        restore_app(app, saved)
        worker.stop()
    log = worker.log()
    assert generation.status == Status.SUCCEEDED, log[-3000:]
    assert "generation.tasks.run_generation" in log and "succeeded in" in log
    keys = [o["Key"] for o in s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])["Contents"]]
    assert f"users/{alice.public_id}/generations/{generation.uuid}/output-0.png" in keys
    assert Wallet.objects.get(user=alice).balance == 4
    assert Generation.objects.count() == 1


def test_a_killed_workers_jobs_end_delivered_or_refunded_once_beats_tasks_run(
    alice, redis_url, replicate_api, s3_storage, settings
):
    """`kill -9` mid-job: the broker holds the unacked task for the visibility timeout (2 h), so
    nothing else would finish these jobs; beat's poller delivers the one whose prediction
    finished, refunds the one whose prediction failed, and the stuck sweeper refunds the one that
    never started. (Time is advanced by moving the rows' timestamps, not by waiting.)"""
    from datetime import timedelta

    import redis
    from django.utils import timezone

    from generation.tasks import fail_stuck_generations, poll_running_generations

    if connection.vendor != "postgresql":
        missing("PostgreSQL", "the worker process needs a shared database (set DATABASE_URL)")
    flux = "black-forest-labs/flux-schnell"
    replicate_api.script(flux, reads_before_final=10**6)  # the model is slow: the worker keeps polling
    settings.REPLICATE_API_TOKEN = replicate_api.state.token
    settings.REPLICATE_BASE_URL = replicate_api.url
    settings.GENERATION_POLL_INTERVAL = 0.01
    broker = broker_url(redis_url)
    worker = WorkerProcess(
        env={
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker,
            "REPLICATE_API_TOKEN": replicate_api.state.token,
            "REPLICATE_BASE_URL": replicate_api.url,
            "GENERATION_POLL_INTERVAL": "0.05",
            "GENERATION_POLL_MAX_INTERVAL": "0.05",
            "GENERATION_INLINE_WAIT": "600",
            "AWS_STORAGE_BUCKET_NAME": s3_storage["bucket"],
            "AWS_S3_ENDPOINT_URL": s3_storage["endpoint"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
        },
        log_path=ARTIFACTS / "worker-killed.log",
        concurrency=2,
    ).start()
    saved = point_app_at(app, broker=broker, queue=worker.queue)
    try:
        billing.credits_grant(user=alice, amount=10, reason=LedgerReason.ADMIN_GRANT, idempotency_key="k")
        entry = CatalogEntry.objects.get(slug="flux-schnell")
        spec = services.GenerationSpec(model=entry, values={"prompt": "a fox"})
        delivered, failed, never_started = (services.generation_submit(user=alice, spec=spec) for _ in range(3))
        running = [delivered, failed]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both slots busy polling their predictions
            ids = [g.provider_prediction_id for g in Generation.objects.filter(pk__in=[g.pk for g in running])]
            polled = {path for method, path in replicate_api.state.requests if method == "GET"}
            if all(ids) and all(f"/v1/predictions/{i}" in polled for i in ids):
                break
            time.sleep(0.05)
        worker.kill()
    finally:
        restore_app(app, saved)
        worker.stop()
    for generation in (delivered, failed, never_started):
        generation.refresh_from_db()
    assert (delivered.status, failed.status, never_started.status) == ("running", "running", "queued"), worker.log()
    assert Wallet.objects.get(user=alice).balance == 7  # all three still hold their credits
    pending = redis.Redis.from_url(broker)
    assert pending.hlen("unacked") + pending.llen(worker.queue) == 3  # only the visibility timeout would free them

    # At the provider, meanwhile: one prediction succeeds, the other fails.
    replicate_api.complete(delivered.provider_prediction_id)
    with replicate_api.state.lock:
        replicate_api.state.predictions[failed.provider_prediction_id].update(status="failed", error="CUDA OOM")

    # Beat's schedule comes round: the poller (every 30 s) and the stuck sweeper (GENERATION_STUCK_AFTER).
    later = timezone.now() - timedelta(seconds=60)
    Generation.objects.filter(pk__in=[delivered.pk, failed.pk]).update(last_polled_at=later)
    assert poll_running_generations.apply().get() == 2
    Generation.objects.filter(pk=never_started.pk).update(
        queued_at=timezone.now() - timedelta(seconds=settings.GENERATION_STUCK_AFTER + 1)
    )
    assert fail_stuck_generations.apply().get() == 1

    for generation in (delivered, failed, never_started):
        generation.refresh_from_db()
    assert delivered.status == Status.SUCCEEDED
    keys = [o["Key"] for o in s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])["Contents"]]
    assert f"users/{alice.public_id}/generations/{delivered.uuid}/output-0.png" in keys
    assert failed.status == Status.FAILED and "could not make this one" in failed.error_message
    assert never_started.status == Status.FAILED and "refunded" in never_started.error_message
    assert Wallet.objects.get(user=alice).balance == 9  # one delivered and paid, two refunded
    pending.delete("unacked", "unacked_index", worker.queue)
