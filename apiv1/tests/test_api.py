"""API v1 over HTTP (Django's test client): with an API key and with a session, the answers a
client sees (status codes, problem+json, headers), the balance charged, the rows written."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

from accounts import services as accounts
from apiv1.api import _wait_of
from apiv1.tests.conftest import bearer, fund
from billing.models import LedgerEntry, Wallet
from generation.models import Generation, Source, Status
from privacy.services.restriction import account_pause
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"http://127.0.0.1:8000/developers/errors#{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def post(client, key: str | None = None, body: dict | None = None, **headers):
    extra = bearer(key) if key else {}
    extra.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})
    return client.post("/api/v1/generations", body or {}, content_type="application/json", **extra)


def balance(user) -> int:
    return Wallet.objects.get(user=user).balance


# --- account and models ------------------------------------------------------------------------------------


def test_me_shows_email_credits_and_plan_with_a_key(key, funded):
    response = Client().get("/api/v1/me", **bearer(key))
    assert response.status_code == 200
    assert response.json() == {
        "id": str(funded.public_id),
        "email": "alice@example.com",
        "display_name": "Alice",
        "credits": 10,
        "debt": 0,
        "plan": "free",
        "plan_title": None,
    }


def test_me_with_the_session(client, funded):
    client.force_login(funded)
    assert client.get("/api/v1/me").json()["credits"] == 10


def test_no_credential_is_401_problem_naming_bearer_and_the_resource_metadata():
    response = Client().get("/api/v1/generations")
    problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == (
        'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/api/v1"'
    )
    wrong = Client().get("/api/v1/generations", **bearer("atl_00000000_nope"))
    problem(wrong, 401, "unauthorized")
    assert wrong["WWW-Authenticate"].startswith('Bearer error="invalid_token", resource_metadata=')


def test_models_lists_the_catalog(key):
    models = Client().get("/api/v1/models", **bearer(key)).json()["models"]
    canvas = next(model for model in models if model["slug"] == "local-canvas")
    assert canvas["kind"] == "text_to_image" and canvas["credit_cost"] == 1
    assert {p["name"] for p in canvas["parameters"]} >= {"prompt", "aspect_ratio", "style", "seed"}


# --- creating -------------------------------------------------------------------------------------------------


def test_create_without_prefer_is_202_at_once_with_location_and_charges_once(key, funded):
    response = post(Client(), key, {"model": "local-canvas", "prompt": "a red fox", "aspect_ratio": "16:9"})
    assert response.status_code == 202
    body = response.json()
    generation = Generation.objects.get(owner=funded)
    assert body["id"] == str(generation.uuid) and body["status"] == "queued" and body["cost"] == 1
    assert response["Location"] == f"http://testserver/api/v1/generations/{generation.uuid}"
    assert "Preference-Applied" not in response
    assert generation.source == Source.API and generation.params["aspect_ratio"] == "16:9"
    assert balance(funded) == 9
    polled = Client().get(response["Location"], **bearer(key))
    assert polled.status_code == 200 and polled.json()["id"] == body["id"]


def test_create_with_the_session(client, funded):
    client.force_login(funded)
    response = post(client, None, {"model": "local-canvas", "prompt": "a red fox"})
    assert response.status_code == 202
    assert Generation.objects.get(owner=funded).source == Source.API


def test_create_from_chatgpt_is_marked_as_the_gpt_action(key, funded):
    response = post(Client(), key, {"model": "local-canvas", "prompt": "x"}, User_Agent="Mozilla/5.0 ChatGPT-User/1.0")
    assert response.status_code == 202
    assert Generation.objects.get(owner=funded).source == Source.GPT_ACTION


def test_prefer_wait_answers_202_with_location_when_the_job_is_not_done(key, funded):
    # In this (non-transactional) test the queued task only runs after the request: the job is
    # still queued when the wait ends.
    started = time.monotonic()
    response = post(Client(), key, {"model": "local-canvas", "prompt": "x"}, Prefer="wait=1")
    assert 1.0 <= time.monotonic() - started < 5
    assert response.status_code == 202 and response["Preference-Applied"] == "wait=1"
    assert response["Location"].endswith(f"/api/v1/generations/{response.json()['id']}")


def test_prefer_values_are_read_and_clamped():
    assert _wait_of("wait=10", None) == (10.0, True)
    assert _wait_of("respond-async, wait=10", None) == (None, False)
    assert _wait_of("handling=lenient; wait=1000", None) == (40.0, True)
    assert _wait_of(None, 99) == (40.0, False)
    assert _wait_of("wait=abc", None) == (None, False)
    assert _wait_of("", None) == (None, False)
    assert _wait_of(None, 10**400) == (40.0, False)  # any size pydantic accepts, no float overflow


def test_a_huge_wait_value_answers_and_charges_once(key, funded):
    response = Client().post(
        f"/api/v1/generations?wait={'9' * 400}",
        {"model": "local-canvas", "prompt": "a fox"},
        content_type="application/json",
        **bearer(key),
    )
    assert response.status_code in (200, 202), response.content
    assert Generation.objects.count() == 1 and balance(funded) == 10 - Generation.objects.get().cost


def test_past_the_waits_one_person_may_hold_a_call_answers_at_once(key, funded, settings):
    """Each held wait keeps a web thread; one person may hold API_WAITS_PER_USER at once, then a
    call answers 202 with the job at once instead of waiting."""
    from django.core.cache import cache

    from generation.models import CatalogEntry

    entry = CatalogEntry.objects.get(slug="local-canvas")
    job = Generation.objects.create(owner=funded, model=entry, kind=entry.kind, prompt="slow", cost=1)
    settings.API_WAITS_PER_USER = 1
    cache.set(f"api:waits:{funded.pk}", 1, 60)  # another request of theirs is waiting now
    started = time.monotonic()
    response = Client().get(f"/api/v1/generations/{job.uuid}", HTTP_PREFER="wait=5", **bearer(key))
    assert response.status_code == 202 and time.monotonic() - started < 2
    assert "Preference-Applied" not in response
    assert cache.get(f"api:waits:{funded.pk}") == 1  # its own slot was given back

    cache.set(f"api:waits:{funded.pk}", 0, 60)
    started = time.monotonic()
    response = Client().get(f"/api/v1/generations/{job.uuid}", HTTP_PREFER="wait=1", **bearer(key))
    assert response.status_code == 202 and time.monotonic() - started >= 0.9  # it waited
    assert response["Preference-Applied"] == "wait=1"


def test_an_unknown_model_is_a_422_problem_on_the_model_field(key, funded):
    body = problem(post(Client(), key, {"model": "nope", "prompt": "x"}), 422, "invalid_input")
    assert body["errors"] == [{"field": "model", "message": body["detail"]}]
    assert not Generation.objects.exists() and balance(funded) == 10


def test_schema_validation_errors_are_422_problems_with_fields(key):
    body = problem(post(Client(), key, {"prompt": "no model", "seed": -1}), 422, "validation_error")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"model", "seed"}
    listed = problem(Client().get("/api/v1/generations?limit=51", **bearer(key)), 422, "validation_error")
    assert listed["errors"][0]["field"] == "limit"


def test_a_missing_prompt_is_a_field_error_and_costs_nothing(key, funded):
    body = problem(post(Client(), key, {"model": "local-canvas", "prompt": " "}), 422, "invalid_input")
    assert body["errors"][0]["field"] == "prompt"
    assert balance(funded) == 10


def test_no_credits_is_402(alice):
    _, plaintext = accounts.api_key_create(user=alice, name="k", scopes=["generate"])
    body = problem(post(Client(), plaintext, {"model": "local-canvas", "prompt": "x"}), 402, "insufficient_credits")
    assert "you have 0" in body["detail"]


def test_an_account_in_debt_is_403(key, funded):
    Wallet.objects.filter(user=funded).update(debt=3)  # a refunded payment whose credits were spent
    body = problem(post(Client(), key, {"model": "local-canvas", "prompt": "x"}), 403, "account_in_debt")
    assert "owes 3 credits" in body["detail"]
    assert Client().get("/api/v1/me", **bearer(key)).json()["debt"] == 3


def test_a_paused_account_is_403_with_a_key_and_with_the_session(client, key, funded):
    account_pause(user=funded)
    body = problem(post(Client(), key, {"model": "local-canvas", "prompt": "x"}), 403, "account_paused")
    assert body["detail"].startswith("Your account is paused")
    client.force_login(funded)
    problem(post(client, None, {"model": "local-canvas", "prompt": "x"}), 403, "account_paused")
    assert not Generation.objects.exists()


def test_a_read_only_key_cannot_create(read_key):
    response = post(Client(), read_key, {"model": "local-canvas", "prompt": "x"})
    problem(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_an_image_link_to_a_private_address_is_refused_and_costs_nothing(key, funded):
    response = post(Client(), key, {"model": "local-relief", "image_url": "http://127.0.0.1:9/x.png"})
    body = problem(response, 422, "invalid_input")
    assert body["errors"][0]["field"] == "image_url"
    assert not Generation.objects.exists() and balance(funded) == 10


def test_an_attached_chatgpt_file_is_fetched_as_the_input(key, funded, picture_server):
    refs = [
        {"name": "notes.pdf", "id": "file-1", "mime_type": "application/pdf", "download_link": picture_server.url},
        {"name": "chair.png", "id": "file-2", "mime_type": "image/png", "download_link": picture_server.url + "/c.png"},
    ]
    response = post(Client(), key, {"model": "local-relief", "openaiFileIdRefs": refs})
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(owner=funded)
    assert generation.assets.get(role="input").mime_type == "image/png"
    assert balance(funded) == 8


# --- idempotency ------------------------------------------------------------------------------------------------


def test_a_retried_post_with_the_same_key_returns_the_first_job_and_charges_once(key, funded):
    first = post(Client(), key, {"model": "local-canvas", "prompt": "x"}, Idempotency_Key="abc-1")
    again = post(Client(), key, {"model": "local-canvas", "prompt": "x"}, Idempotency_Key="abc-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Generation.objects.count() == 1 and balance(funded) == 9
    assert LedgerEntry.objects.filter(wallet__user=funded, amount__lt=0).count() == 1


def test_the_same_key_with_another_body_is_a_422_problem(key, funded):
    post(Client(), key, {"model": "local-canvas", "prompt": "x"}, Idempotency_Key="abc-2")
    reused = post(Client(), key, {"model": "local-canvas", "prompt": "y"}, Idempotency_Key="abc-2")
    assert problem(reused, 422, "idempotency_key_reused")["errors"][0]["field"] == "Idempotency-Key"
    assert Generation.objects.count() == 1


def test_keys_are_per_person(key, funded, bob):
    fund(bob, 5)
    _, bobs = accounts.api_key_create(user=bob, name="k", scopes=["generate"])
    mine = post(Client(), key, {"model": "local-canvas", "prompt": "x"}, Idempotency_Key="same")
    his = post(Client(), bobs, {"model": "local-canvas", "prompt": "x"}, Idempotency_Key="same")
    assert mine.json()["id"] != his.json()["id"] and Generation.objects.count() == 2


# --- reading, cancel, delete -----------------------------------------------------------------------------------


def test_list_pages_with_cursor_and_filters(key, funded):
    ids = [post(Client(), key, {"model": "local-canvas", "prompt": f"p{i}"}).json()["id"] for i in range(3)]
    first = Client().get("/api/v1/generations?limit=2", **bearer(key)).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    second = Client().get("/api/v1/generations", {"limit": 2, "cursor": first["next_cursor"]}, **bearer(key)).json()
    assert [item["id"] for item in second["items"]] == [ids[0]] and second["next_cursor"] is None
    queued = Client().get("/api/v1/generations?status=queued&kind=text_to_image", **bearer(key)).json()
    assert len(queued["items"]) == 3
    assert Client().get("/api/v1/generations?status=succeeded", **bearer(key)).json()["items"] == []
    bad = Client().get("/api/v1/generations?cursor=forged", **bearer(key))
    assert problem(bad, 422, "invalid_input")["errors"][0]["field"] == "cursor"


def test_listing_takes_a_fixed_number_of_queries(key, funded, django_assert_max_num_queries):
    for i in range(6):
        post(Client(), key, {"model": "local-canvas", "prompt": f"p{i}"})
    client = Client()
    # key lookup, rate-limit-free path; rows+model; outputs
    with django_assert_max_num_queries(4):
        assert len(client.get("/api/v1/generations", **bearer(key)).json()["items"]) == 6


def test_someone_elses_generation_is_404_everywhere(key, funded, bob):
    fund(bob, 5)
    _, bobs = accounts.api_key_create(user=bob, name="k", scopes=["read", "generate"])
    theirs = post(Client(), bobs, {"model": "local-canvas", "prompt": "x"}).json()["id"]
    path = f"/api/v1/generations/{theirs}"
    problem(Client().get(path, **bearer(key)), 404, "not_found")
    problem(Client().post(path + "/cancel", **bearer(key)), 404, "not_found")
    problem(Client().delete(path, **bearer(key)), 404, "not_found")
    problem(Client().get(f"/api/v1/generations/{uuid.uuid4()}", **bearer(key)), 404, "not_found")
    assert Generation.objects.get(uuid=theirs).status == Status.QUEUED
    assert Client().get("/api/v1/generations", **bearer(key)).json()["items"] == []


def test_cancel_gives_the_credits_back_and_a_second_cancel_is_409(key, funded):
    created = post(Client(), key, {"model": "local-canvas", "prompt": "x"}).json()
    assert balance(funded) == 9
    response = Client().post(f"/api/v1/generations/{created['id']}/cancel", **bearer(key))
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert balance(funded) == 10
    problem(Client().post(f"/api/v1/generations/{created['id']}/cancel", **bearer(key)), 409, "conflict")


def test_delete_is_204_then_gone(key, funded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(Client(), key, {"model": "local-canvas", "prompt": "x"}).json()
    assert Generation.objects.get(uuid=created["id"]).status == Status.SUCCEEDED
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().delete(f"/api/v1/generations/{created['id']}", **bearer(key))
    assert response.status_code == 204 and response.content == b""
    assert not Generation.objects.filter(uuid=created["id"]).exists()
    problem(Client().get(f"/api/v1/generations/{created['id']}", **bearer(key)), 404, "not_found")


def test_a_finished_job_has_signed_output_links_that_work(key, funded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = post(Client(), key, {"model": "local-canvas", "prompt": "x"}).json()
    body = Client().get(f"/api/v1/generations/{created['id']}", **bearer(key)).json()
    assert body["status"] == "succeeded" and body["finished_at"]
    (output,) = body["outputs"]
    assert output["url"].startswith("http://testserver/files/") and output["mime_type"] == "image/png"
    fetched = Client().get(output["url"].removeprefix("http://testserver"))  # no sign-in: the link is the key
    assert fetched.status_code == 200 and b"".join(fetched.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


# --- refusals outside the operations ------------------------------------------------------------------------------


def test_wrong_method_is_a_405_problem_with_allow(key):
    response = Client().put("/api/v1/generations", **bearer(key))
    problem(response, 405, "method_not_allowed")
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_an_unknown_path_is_a_404_problem(key):
    problem(Client().get("/api/v1/nope/nothing"), 404, "not_found")
    strict = Client(enforce_csrf_checks=True)
    problem(strict.post("/api/v1/generation", {}, content_type="application/json", **bearer(key)), 404, "not_found")


# --- rate limits --------------------------------------------------------------------------------------------------


def test_calls_past_the_per_key_rate_are_429_with_retry_after(key, settings):
    settings.API_RATE_PER_KEY = "3/m"
    for _ in range(3):
        assert Client().get("/api/v1/me", **bearer(key)).status_code == 200
    refused = Client().get("/api/v1/models", **bearer(key))
    problem(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_the_per_person_rate_counts_all_their_keys_and_the_session(client, key, funded, settings):
    settings.API_RATE_PER_USER = "3/m"
    _, other = accounts.api_key_create(user=funded, name="second", scopes=["read"])
    assert Client().get("/api/v1/me", **bearer(key)).status_code == 200
    assert Client().get("/api/v1/me", **bearer(other)).status_code == 200
    client.force_login(funded)
    assert client.get("/api/v1/me").status_code == 200
    problem(client.get("/api/v1/me"), 429, "rate_limited")
    problem(Client().get("/api/v1/me", **bearer(other)), 429, "rate_limited")


def test_submits_past_the_generation_rate_are_429_and_charge_nothing(key, funded, settings):
    settings.GENERATION_SUBMIT_RATE_PER_USER = "2/m"
    for _ in range(2):
        assert post(Client(), key, {"model": "local-canvas", "prompt": "x"}).status_code == 202
    refused = post(Client(), key, {"model": "local-canvas", "prompt": "x"})
    problem(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1
    assert Generation.objects.count() == 2 and balance(funded) == 8


def test_someone_else_is_not_slowed_by_my_limit(key, settings):
    settings.API_RATE_PER_KEY = "1/m"
    other = UserFactory()
    _, theirs = accounts.api_key_create(user=other, name="k", scopes=["read"])
    assert Client().get("/api/v1/me", **bearer(key)).status_code == 200
    assert Client().get("/api/v1/me", **bearer(key)).status_code == 429
    assert Client().get("/api/v1/me", **bearer(theirs)).status_code == 200


def test_bearer_calls_need_no_csrf_token_and_session_writes_do(key, funded):
    strict = Client(enforce_csrf_checks=True)
    assert post(strict, key, {"model": "local-canvas", "prompt": "x"}).status_code == 202
    strict.force_login(funded)
    assert post(strict, key, {"model": "local-canvas", "prompt": "x"}).status_code == 202  # the key decides
    refused = post(strict, None, {"model": "local-canvas", "prompt": "x"})
    problem(refused, 403, "forbidden")
    assert strict.get("/api/v1/me").status_code == 200  # reads need no token
    assert Generation.objects.count() == 2
