"""API keys: created and revoked on /developers/keys/, shown once, stored hashed, accepted by the
API as `Authorization: Bearer atl_…` with their scopes."""

from __future__ import annotations

import datetime as dt
import json
import re

import jsonschema
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.errors import AccountPausedForApi, ApiScopeMissing
from accounts.models import ApiKey
from privacy.models import ActivityEvent, ActivityKind
from privacy.services.restriction import account_pause
from privacy.tests.test_erasure import reauthenticated
from privacy.tests.test_export import build, open_zip

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def challenges_bearer(response) -> bool:
    """A 401 names the Bearer scheme (RFC 6750) and our protected resource metadata (RFC 9728)."""
    header = response["WWW-Authenticate"]
    return (
        header.startswith("Bearer ")
        and 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/api/v1"' in header
    )


def secret_of(plaintext: str) -> str:
    return plaintext[len("atl_12345678_") :]


def create_on_page(client: Client, name: str = "My GPT", scopes=("read",)) -> str:
    response = client.post("/developers/keys/", {"name": name, "scopes": list(scopes)})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    return re.search(r'id="new-key-value">(atl_[^<]+)<', response.content.decode()).group(1)


def test_a_key_is_shown_once_after_creation_and_then_only_by_its_prefix(client, alice):
    client.force_login(alice)
    plaintext = create_on_page(client)
    key = ApiKey.objects.get(owner=alice)
    assert plaintext.startswith(key.prefix + "_") and re.fullmatch(r"atl_[0-9a-f]{8}", key.prefix)
    assert key.name == "My GPT" and key.scopes == ["read"]

    again = client.get("/developers/keys/").content.decode()
    assert plaintext not in again
    assert "My GPT" in again and f"{key.prefix}…" in again and "Never" in again


def test_only_a_hash_is_stored_nowhere_the_plaintext(client, alice):
    key, plaintext = services.api_key_create(user=alice, name="script", scopes=["read", "generate"])
    secret = secret_of(plaintext)
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert not any(secret in str(value) for value in row.values())
    assert len(key.secret_hash) == 64
    # Nor anywhere else in the database (sessions, the activity log).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
        )
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s', [f"%{secret}%"])
            assert cursor.fetchone()[0] == 0, f"{table}.{column}"


def test_a_key_authenticates_me_and_marks_it_used_at_most_once_a_minute(client, alice):
    key, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    response = Client().get("/api/v1/me", **bearer(plaintext))
    assert response.status_code == 200
    assert response.json() == {
        "id": str(alice.public_id),
        "email": alice.email,
        "display_name": "Alice",
        "credits": 0,
        "debt": 0,
        "plan": "free",
        "plan_title": None,
    }
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None and timezone.now() - first < dt.timedelta(seconds=5)

    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == first  # within the minute: no write

    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at > first - dt.timedelta(seconds=1)


def test_the_session_still_works_for_me_and_nothing_is_401_with_bearer(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/me").json()["email"] == alice.email
    anonymous = Client().get("/api/v1/me")
    assert anonymous.status_code == 401 and challenges_bearer(anonymous)


@pytest.mark.parametrize(
    "token",
    ["atl_00000000_nope", "nope", "atl_", "", "Basic abc"],
)
def test_a_wrong_key_is_401(alice, token):
    services.api_key_create(user=alice, name="script", scopes=["read"])
    response = Client().get("/api/v1/me", **bearer(token))
    assert response.status_code == 401 and challenges_bearer(response)


def test_a_right_prefix_with_a_wrong_secret_is_401(alice):
    key, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    response = Client().get("/api/v1/me", **bearer(plaintext[:-2] + "xx"))
    assert response.status_code == 401


def test_a_revoked_key_is_refused_at_once(client, alice):
    client.force_login(alice)
    plaintext = create_on_page(client)
    key = ApiKey.objects.get(owner=alice)
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 200

    response = client.post(f"/developers/keys/{key.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/developers/keys/"
    refused = Client().get("/api/v1/me", **bearer(plaintext))
    assert refused.status_code == 401 and challenges_bearer(refused)
    page = client.get("/developers/keys/").content.decode()
    assert "was revoked" in page and "Revoked" in page
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_someone_elses_key_is_404_and_stays_live(client, alice, bob):
    key, plaintext = services.api_key_create(user=bob, name="bob's", scopes=["read"])
    client.force_login(alice)
    assert client.post(f"/developers/keys/{key.pk}/revoke/").status_code == 404
    assert "bob&#x27;s" not in client.get("/developers/keys/").content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 200


def test_revoke_is_post_only(client, alice):
    key, _ = services.api_key_create(user=alice, name="script", scopes=["read"])
    client.force_login(alice)
    assert client.get(f"/developers/keys/{key.pk}/revoke/").status_code == 405


def test_a_paused_account_gets_403_with_the_reason(alice):
    _, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    account_pause(user=alice)
    response = Client().get("/api/v1/me", **bearer(plaintext))
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Your account is paused")
    with pytest.raises(AccountPausedForApi):
        services.api_key_authenticate(token=plaintext)


def test_an_inactive_account_is_401(alice):
    _, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 401


def test_scopes_read_only_cannot_generate_and_generate_only_cannot_read(alice):
    read_key, _ = services.api_key_create(user=alice, name="reader", scopes=["read"])
    services.api_key_scope_check(key=read_key, scope="read")
    with pytest.raises(ApiScopeMissing):
        services.api_key_scope_check(key=read_key, scope="generate")

    gen_key, plaintext = services.api_key_create(user=alice, name="gen", scopes=["generate"])
    services.api_key_scope_check(key=gen_key, scope="generate")
    response = Client().get("/api/v1/me", **bearer(plaintext))
    assert response.status_code == 403 and "read" in response.json()["detail"]


def test_the_form_needs_a_name_and_a_scope(client, alice):
    client.force_login(alice)
    response = client.post("/developers/keys/", {"name": " ", "scopes": []})
    page = response.content.decode()
    assert response.status_code == 200 and "This field is required" in page and "Choose at least one scope" in page
    assert "new-key-value" not in page
    assert not ApiKey.objects.exists()


def test_pages_need_sign_in(client, alice):
    key, _ = services.api_key_create(user=alice, name="script", scopes=["read"])
    assert client.get("/developers/keys/").status_code == 302
    assert client.post(f"/developers/keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is None


def test_create_and_revoke_are_in_the_activity_log_once_without_the_secret(client, alice):
    client.force_login(alice)
    plaintext = create_on_page(client)
    key = ApiKey.objects.get(owner=alice)
    client.post(f"/developers/keys/{key.pk}/revoke/")
    client.post(f"/developers/keys/{key.pk}/revoke/")  # a double click records once
    created = ActivityEvent.objects.get(user=alice, kind=ActivityKind.API_KEY_CREATED)
    revoked = ActivityEvent.objects.get(user=alice, kind=ActivityKind.API_KEY_REVOKED)
    assert created.detail == {"prefix": key.prefix, "name": "My GPT"} == revoked.detail
    assert secret_of(plaintext) not in json.dumps(created.detail)
    centre = client.get("/privacy/").content.decode()
    assert "API key created" in centre and "API key revoked" in centre


def test_the_account_nav_links_to_api_keys(client, alice):
    client.force_login(alice)
    page = client.get("/account/profile/").content.decode()
    assert 'href="/developers/keys/"' in page and ">API keys<" in page


def test_erasure_revokes_keys_at_once_and_deletes_them(client, alice, django_capture_on_commit_callbacks):
    _, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=False):  # the erasure task does not run yet
        response = client.post("/privacy/delete/", {"confirmation": alice.email})
    assert response.status_code == 302
    key = ApiKey.objects.get(owner=alice)
    assert key.revoked_at is not None
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 401


def test_erasure_run_leaves_no_key_row(client, alice, django_capture_on_commit_callbacks):
    services.api_key_create(user=alice, name="script", scopes=["read"])
    reauthenticated(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/privacy/delete/", {"confirmation": alice.email})
    assert not ApiKey.objects.exists()


def test_the_export_lists_keys_without_secrets(alice, django_capture_on_commit_callbacks):
    key, plaintext = services.api_key_create(user=alice, name="My GPT", scopes=["read", "generate"])
    services.api_key_revoke(user=alice, key=key)
    archive = open_zip(build(alice, django_capture_on_commit_callbacks))
    raw = archive.read("data.json").decode()
    data = json.loads(raw)
    jsonschema.validate(data, json.loads(archive.read("data.schema.json")))
    (entry,) = data["api_keys"]
    assert entry["name"] == "My GPT" and entry["prefix"] == key.prefix and entry["scopes"] == ["read", "generate"]
    assert entry["revoked_at"] and entry["last_used_at"] is None
    assert secret_of(plaintext) not in raw and key.secret_hash not in raw


def test_a_secret_holding_underscores_and_dashes_still_authenticates(alice, monkeypatch):
    import secrets

    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: "a_b-c_" + "x" * 37)
    _, plaintext = services.api_key_create(user=alice, name="script", scopes=["read"])
    assert Client().get("/api/v1/me", **bearer(plaintext)).status_code == 200


def test_the_openapi_document_offers_session_and_bearer_for_me(client):
    document = client.get("/api/v1/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["BearerAuth"].items()
    security = document["paths"]["/api/v1/me"]["get"]["security"]
    assert {"BearerAuth": []} in security and {"SessionAuth": []} in security
