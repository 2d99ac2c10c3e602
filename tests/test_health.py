from __future__ import annotations

import pytest

from tests.harness import free_port

pytestmark = pytest.mark.django_db


def test_healthz_passes_on_the_embedded_default(client, settings):
    settings.REDIS_URL = ""
    settings.BROKER_CONFIGURED = False
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage"}


def test_healthz_writes_reads_and_deletes_in_the_bucket(client, s3_storage):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    listing = s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])
    assert "Contents" not in listing  # the probe object was removed again


def test_healthz_names_storage_when_the_bucket_is_gone(client, s3_storage):
    s3_storage["client"].delete_bucket(Bucket=s3_storage["bucket"])
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["storage"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_checks_cache_and_broker_when_redis_is_configured(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.CELERY_BROKER_URL = redis_url
    settings.BROKER_CONFIGURED = True
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert set(response.json()["checks"]) == {"database", "storage", "cache", "broker"}


def test_healthz_names_the_broker_when_it_is_unreachable(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.BROKER_CONFIGURED = True
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
