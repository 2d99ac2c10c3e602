"""Sign-in under attack and outage (issue 9): the admin behind allauth's limits, sign-in with
Redis down, rate-limit buckets behind a proxy, Google URLs when Google is not configured."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fail_open_cache(location: str) -> dict:
    """CACHES as config/settings.py builds them when REDIS_URL is set."""
    return {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


@pytest.fixture
def staff(db) -> User:
    return UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def cache_down():
    """The cache pointed at a closed port: every Redis call is refused."""
    with override_settings(CACHES=fail_open_cache(f"redis://127.0.0.1:{closed_port()}/0")):
        yield


@pytest.fixture
def cache_on_real_redis(redis_url):
    """The production backend on the suite's Redis database, so the limits are really shared."""
    base = redis_url.rsplit("/", 1)[0]
    with override_settings(CACHES=fail_open_cache(f"{base}/{os.environ.get('TEST_REDIS_DB', '15')}")):
        cache.clear()
        yield
        cache.clear()


def sign_in(client, url: str, email: str, password: str, **extra):
    # Both forms' field names: Django's admin form reads `username`, allauth's reads `login`.
    return client.post(url, {"login": email, "username": email, "password": password}, **extra)


# --- 3. the admin signs in through the rate-limited path -----------------------------------------


def test_admin_sign_in_locks_after_wrong_passwords_and_refuses_the_right_one(client, staff):
    page = client.get("/admin/", follow=True)
    login_url = page.redirect_chain[-1][0]  # wherever the admin sends a stranger to sign in

    for _ in range(10):
        assert sign_in(client, login_url, staff.email, "wrong-password-123").status_code in {200, 429}
    locked = sign_in(client, login_url, staff.email, PASSWORD)

    assert locked.status_code in {200, 429}
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302
    # It was the lock that refused it: once the window has passed, the same password works.
    cache.clear()
    assert sign_in(client, login_url, staff.email, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_admin_login_redirects_to_the_sign_in_page_keeping_next(client, staff):
    response = client.get("/admin/login/", {"next": "/admin/billing/"})

    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == reverse("account_login")
    assert target.query == "next=%2Fadmin%2Fbilling%2F"
    signed_in = sign_in(client, response["Location"], staff.email, PASSWORD)
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/admin/billing/"


def test_a_password_posted_to_the_admin_login_is_never_checked(client, staff):
    response = sign_in(client, "/admin/login/", staff.email, PASSWORD)

    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("account_login")
    assert "_auth_user_id" not in client.session


def test_admin_login_refuses_an_outside_next_and_a_signed_in_non_staff_member(client, alice):
    response = client.get("/admin/login/", {"next": "https://evil.example/"})
    assert urlsplit(response["Location"]).query == "next=%2Fadmin%2F"

    client.force_login(alice)
    assert client.get("/admin/login/", {"next": "/admin/"}).status_code == 403  # not a redirect loop


# --- 4. sign-in with the cache down ----------------------------------------------------------------


def test_sign_in_and_password_reset_work_with_the_cache_down(client, alice, cache_down, caplog):
    caplog.set_level(logging.ERROR, logger="config.cache")

    signed_in = sign_in(client, reverse("account_login"), alice.email, PASSWORD)
    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    client.logout()
    reset = client.post(reverse("account_reset_password"), {"email": alice.email})
    assert reset.status_code == 302
    assert len(mail.outbox) == 1

    assert any("counting in this process's memory" in record.getMessage() for record in caplog.records)


def test_with_the_cache_down_wrong_passwords_still_lock_the_account(client, staff, cache_down):
    """The limits count in process memory meanwhile: staff are not left open to brute force."""
    for _ in range(10):
        assert sign_in(client, reverse("account_login"), staff.email, "wrong-password-123").status_code in {200, 429}
    sign_in(client, reverse("account_login"), staff.email, PASSWORD)
    assert "_auth_user_id" not in client.session


def test_the_fail_open_cache_still_limits_while_redis_is_up(client, staff, cache_on_real_redis):
    for _ in range(5):
        assert sign_in(client, reverse("account_login"), staff.email, "wrong-password-123").status_code == 200
    locked = sign_in(client, reverse("account_login"), staff.email, PASSWORD)

    assert locked.status_code == 200
    assert "Too many failed login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_healthz_still_reports_the_cache_down(client, cache_down, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # turns the cache check on
    settings.BROKER_CONFIGURED = False

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]


# --- 5. rate-limit buckets behind a proxy ------------------------------------------------------------


def test_spoofed_forwarded_for_without_a_proxy_shares_one_bucket(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "2/m/ip"}
    url = reverse("account_login")

    def spoofing(forwarded_for: str) -> int:
        return sign_in(
            client, url, "x@example.com", "wrong", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=forwarded_for
        ).status_code

    statuses = [spoofing(spoof) for spoof in ("198.51.100.1", "198.51.100.2", "198.51.100.3")]

    assert statuses == [200, 200, 429]


def test_with_one_proxy_clients_are_told_apart(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "2/m/ip"}
    url = reverse("account_login")

    def via_proxy(forwarded_for: str) -> int:
        return sign_in(
            client, url, "x@example.com", "wrong", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for
        ).status_code

    assert [via_proxy("198.51.100.1"), via_proxy("198.51.100.1")] == [200, 200]
    assert via_proxy("198.51.100.1") == 429
    assert via_proxy("192.0.2.77, 198.51.100.1") == 429  # what the client wrote itself counts for nothing
    assert via_proxy("198.51.100.2") == 200  # another client behind the same proxy


# --- 6. Google URLs without Google -----------------------------------------------------------------

GOOGLE_URLS = ["/accounts/google/login/", "/accounts/google/login/callback/", "/accounts/google/login/token/"]


@pytest.mark.parametrize("url", GOOGLE_URLS)
def test_google_urls_are_not_found_when_google_is_not_configured(client, url, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {**settings.SOCIALACCOUNT_PROVIDERS["google"], "APPS": []}}
    client.raise_request_exception = False

    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404


def test_google_sign_in_still_answers_when_configured(client, settings):
    google = {**settings.SOCIALACCOUNT_PROVIDERS["google"], "APPS": [{"client_id": "id", "secret": "s", "key": ""}]}
    settings.SOCIALACCOUNT_PROVIDERS = {"google": google}

    assert client.get("/accounts/google/login/").status_code == 200  # allauth's "continue" page
    assert client.post("/accounts/google/login/").status_code == 302  # off to Google
