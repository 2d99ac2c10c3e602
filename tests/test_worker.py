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
