"""`Prefer: wait` with a real Celery worker process on Redis (not inline tasks): the request holds
while another process runs the job, then answers 200 with the result."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection
from django.test import Client

from apiv1.tests.conftest import bearer
from config.celery import app
from generation.models import Generation, Status
from tests.fixtures import ARTIFACTS
from tests.harness import missing
from tests.worker import WorkerProcess, broker_url, database_url, point_app_at, restore_app

pytestmark = pytest.mark.django_db(transaction=True)


def test_prefer_wait_holds_until_the_worker_finishes_the_job(key, funded, redis_url, s3_storage):
    if connection.vendor != "postgresql":
        missing("PostgreSQL", "the worker process needs a shared database (set DATABASE_URL)")
    # The suite's own Redis database (TEST_REDIS_DB, flushed around every test anyway): a worker
    # start flushes its broker database, which must not be one another suite is using.
    broker = broker_url(redis_url, db=int(os.environ.get("TEST_REDIS_DB", "15")))
    worker = WorkerProcess(
        env={
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker,
            "GENERATION_POLL_INTERVAL": "0.05",
            "AWS_STORAGE_BUCKET_NAME": s3_storage["bucket"],
            "AWS_S3_ENDPOINT_URL": s3_storage["endpoint"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
        },
        log_path=ARTIFACTS / "worker-api-wait.log",
    ).start()
    saved = point_app_at(app, broker=broker, queue=worker.queue)
    try:
        started = time.monotonic()
        response = Client().post(
            "/api/v1/generations",
            {"model": "local-canvas", "prompt": "a kite over the dunes"},
            content_type="application/json",
            HTTP_PREFER="wait=30",
            **bearer(key),
        )
        took = time.monotonic() - started
        without_wait = Client().post(
            "/api/v1/generations",
            {"model": "local-canvas", "prompt": "a second kite"},
            content_type="application/json",
            **bearer(key),
        )
    finally:
        restore_app(app, saved)
        worker.stop()
    log = worker.log()
    assert response.status_code == 200, (response.content, log[-3000:])
    assert response["Preference-Applied"] == "wait=30" and took < 30
    body = response.json()
    assert body["status"] == "succeeded" and body["outputs"][0]["url"].startswith(s3_storage["endpoint"])
    assert "generation.tasks.run_generation" in log and "succeeded in" in log  # the worker ran it
    # Without a wait the answer came at once, the job not done yet.
    assert without_wait.status_code == 202 and without_wait.json()["status"] in {"queued", "running"}
    assert Generation.objects.get(uuid=body["id"]).status == Status.SUCCEEDED
