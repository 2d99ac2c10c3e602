"""Fixtures shared by the whole suite: personas, isolation, and the real services."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from django.core.cache import cache

from tests.factories import UserFactory
from tests.harness import REQUIRE_SERVICES, ServiceProcess, find_executable, free_port, missing

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


# --- isolation ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolation(settings, tmp_path):
    """Fast hashing, files in a temp dir, tasks inline, and a clean cache (rate limits!)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        # The suite flushes its cache around every test: give it a Redis database of its own,
        # never the one a developer's server or broker uses (TEST_REDIS_DB picks another, so two
        # suites can run side by side).
        base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") >= 3 else redis_url
        db = os.environ.get("TEST_REDIS_DB", "15")
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"{base}/{db}"}
        }
    from config.celery import app

    app.conf.task_always_eager = True
    _process_memos_forget()
    cache.clear()
    yield
    cache.clear()
    _process_memos_forget()


def _process_memos_forget() -> None:
    """What each process keeps for a second beside the cache (the catalog by slug, the policy
    state): a test's rows must not meet the previous test's copy."""
    from generation import catalog
    from privacy import policy

    catalog._entries.forget()
    policy.current_policy_forget()


@pytest.fixture(autouse=True)
def _catalog(request):
    """Transactional tests (browser, worker) flush the database after themselves, rows from data
    migrations included; put the seeded model catalog back for whoever runs next."""
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("_django_db_helper")
    import importlib

    from django.apps import apps

    from generation.models import CatalogEntry

    if not CatalogEntry.objects.exists():
        importlib.import_module("generation.migrations.0002_seed_catalog").seed(apps, None)
        importlib.import_module("generation.migrations.0003_catalog_pro_only").mark_pro_models(apps, None)
        importlib.import_module("generation.migrations.0005_catalog_aspect_ratios").offer_schema_ratios(apps, None)
        importlib.import_module("generation.migrations.0007_pending_upload_variations").offer_variations(apps, None)
    from billing.models import CreditPack

    if not CreditPack.objects.exists():
        importlib.import_module("billing.migrations.0003_seed_offers").seed(apps, None)


# --- personas -------------------------------------------------------------------------------


@pytest.fixture
def alice(db):
    """A verified person past the age gate."""
    return UserFactory(email="alice@example.com", display_name="Alice")


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com", display_name="Bob")


# --- PostgreSQL and Redis (used through settings when DATABASE_URL / REDIS_URL are set) ----


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL")
    if not url:
        missing("Redis", "REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing("Redis", str(exc))
    return url


# --- S3 API server (moto) ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    exe = find_executable("moto_server")
    if exe is None:
        missing("moto_server", "moto[server] is not installed")
    port = free_port()
    service = ServiceProcess("moto_server", [exe, "-H", "127.0.0.1", "-p", str(port)], port, log_dir=ARTIFACTS)
    try:
        service.start()
    except RuntimeError as exc:
        missing("moto_server", str(exc))
    yield service
    service.stop()


@pytest.fixture
def s3_storage(s3_server, settings):
    """Point the default storage at a fresh private bucket on the S3 API server."""
    bucket = f"atelier-test-{uuid.uuid4().hex[:12]}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_server.url, **credentials)
    client.create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_server.url,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 300,
                "file_overwrite": False,
                "signature_version": "s3v4",
            },
        },
    }
    yield {"client": client, "bucket": bucket, "endpoint": s3_server.url}


# --- Stripe API (localstripe) --------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_server():
    exe = find_executable("localstripe")
    if exe is None:
        missing("localstripe", "localstripe is not installed")
    port = free_port()
    service = ServiceProcess("localstripe", [exe, "--port", str(port), "--from-scratch"], port, log_dir=ARTIFACTS)
    try:
        service.start()
    except RuntimeError as exc:
        missing("localstripe", str(exc))
    yield service
    service.stop()


@pytest.fixture
def stripe_client(stripe_server):
    import requests
    import stripe

    requests.delete(f"{stripe_server.url}/_config/data", timeout=5)
    return stripe.StripeClient("sk_test_atelier", base_addresses={"api": stripe_server.url})


@pytest.fixture(scope="session")
def stripe_api_server(stripe_server):
    """localstripe plus our extension for Prices, Checkout and the Billing Portal, on one URL."""
    from tests.fakes.stripe_api import StripeAPIServer

    server = StripeAPIServer(stripe_server.url).start()
    yield server
    server.stop()


STRIPE_WEBHOOK_SECRET = "whsec_test_atelier_webhooks"


@pytest.fixture
def payments(settings, stripe_api_server, db):
    """Payments switched on, the app's Stripe SDK pointed at the stand-in, state emptied, prices
    published."""
    stripe_api_server.reset()
    settings.STRIPE_SECRET_KEY = "sk_test_atelier"
    settings.STRIPE_API_BASE = stripe_api_server.url
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
    # As at deployment: `manage.py stripe_prices` publishes the packs and plans before anyone buys.
    from billing.services.payments import stripe_prices_sync

    stripe_prices_sync()
    return stripe_api_server


@pytest.fixture
def stripe_sdk(payments):
    """The real `stripe` library, for tests to play Stripe's side (refunds, renewals, cancels)."""
    import stripe

    return stripe.StripeClient("sk_test_atelier", base_addresses={"api": payments.url})


# --- Replicate API (our stand-in server) --------------------------------------------------------


@pytest.fixture(scope="session")
def replicate_server():
    from tests.fakes.replicate_api import ReplicateAPIServer

    server = ReplicateAPIServer().start()
    yield server
    server.stop()


@pytest.fixture
def replicate_api(replicate_server):
    replicate_server.reset()
    return replicate_server


__all__ = ["REQUIRE_SERVICES"]


# --- Google (OAuth) ------------------------------------------------------------------------------


@pytest.fixture
def fake_google(settings, monkeypatch):
    """Google's OAuth endpoints answered by a local server; allauth configured for it."""
    from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter

    from tests.fakes.google import FakeGoogle

    google = FakeGoogle(client_id="atelier-test.apps.googleusercontent.com", client_secret="shh").start()
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            **settings.SOCIALACCOUNT_PROVIDERS["google"],
            "APPS": [{"client_id": google.client_id, "secret": google.client_secret, "key": ""}],
        }
    }
    monkeypatch.setattr(GoogleOAuth2Adapter, "authorize_url", f"{google.url}/o/oauth2/v2/auth")
    monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", f"{google.url}/token")
    monkeypatch.setattr(GoogleOAuth2Adapter, "identity_url", f"{google.url}/oauth2/v2/userinfo")
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {**directives, "form-action": [*directives["form-action"], google.url]}
    }
    yield google
    google.stop()
