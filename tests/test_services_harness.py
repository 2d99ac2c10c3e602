"""The real services the suite relies on answer through their real client libraries."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import pytest
import replicate
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from tests.harness import REQUIRE_SERVICES

pytestmark = pytest.mark.django_db


def test_database_is_the_one_database_url_names():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def test_ci_runs_on_postgresql():
    if not REQUIRE_SERVICES:
        pytest.skip("only CI insists on PostgreSQL")
    assert connection.vendor == "postgresql"


def test_s3_objects_are_private_and_served_by_presigned_url(s3_storage):
    name = default_storage.save("users/someone/hello.txt", ContentFile(b"hello bucket"))
    keys = [o["Key"] for o in s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])["Contents"]]
    assert keys == [name]

    plain = f"{s3_storage['endpoint']}/{s3_storage['bucket']}/{name}"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(plain, timeout=5)
    assert denied.value.code == 403

    signed = default_storage.url(name)
    assert "X-Amz-Signature" in signed
    with urllib.request.urlopen(signed, timeout=5) as response:
        assert response.read() == b"hello bucket"

    default_storage.delete(name)
    assert "Contents" not in s3_storage["client"].list_objects_v2(Bucket=s3_storage["bucket"])


def test_localstripe_serves_customers_plans_and_subscriptions(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "alice@example.com"})
    stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    stripe_client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    product = stripe_client.v1.products.create(params={"name": "Atelier Pro"})
    plan = stripe_client.v1.plans.create(
        params={"product": product.id, "amount": 1200, "currency": "eur", "interval": "month"}
    )
    subscription = stripe_client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"plan": plan.id}]})
    assert subscription.status == "active"
    invoices = stripe_client.v1.invoices.list(params={"customer": customer.id})
    assert invoices.data[0].amount_paid == 1200


def test_replicate_client_runs_a_prediction_against_the_api_server(replicate_api):
    client = replicate.Client(api_token=replicate_api.state.token, base_url=replicate_api.url)
    replicate_api.script("black-forest-labs/flux-schnell", reads_before_final=2)

    prediction = client.predictions.create(model="black-forest-labs/flux-schnell", input={"prompt": "a red fox"})
    assert prediction.status == "starting"
    for _ in range(10):
        prediction.reload()
        if prediction.status in {"succeeded", "failed", "canceled"}:
            break
        time.sleep(0.01)
    assert prediction.status == "succeeded"
    with urllib.request.urlopen(prediction.output[0], timeout=5) as response:
        assert response.read().startswith(b"\x89PNG")

    replicate_api.expire_outputs(prediction.id)
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(prediction.output[0], timeout=5)
    assert gone.value.code == 404


def test_replicate_api_server_fails_and_cancels_like_replicate(replicate_api):
    client = replicate.Client(api_token=replicate_api.state.token, base_url=replicate_api.url)
    replicate_api.script("owner/broken", final_status="failed", reads_before_final=0)
    failed = client.predictions.create(model="owner/broken", input={"prompt": "x"})
    failed.reload()
    assert (failed.status, failed.error) == ("failed", "The model could not process this input.")

    replicate_api.script("owner/slow", reads_before_final=100)
    slow = client.predictions.create(model="owner/slow", input={"prompt": "x"})
    client.predictions.cancel(slow.id)
    slow.reload()
    assert slow.status == "canceled"

    unauthorized = replicate.Client(api_token="wrong", base_url=replicate_api.url)
    with pytest.raises(replicate.exceptions.ReplicateError) as exc:
        unauthorized.predictions.create(model="owner/slow", input={})
    assert exc.value.status == 401


def test_redis_answers_as_the_cache(redis_url, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    from django.core.cache import cache

    cache.set("harness-check", "ok", 5)
    assert cache.get("harness-check") == "ok"
