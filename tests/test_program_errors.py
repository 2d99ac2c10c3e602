"""The program doors (/api/ and /mcp) answer errors that escape their views as problem+json, not
with Django's HTML pages: a body too large (413) and anything unexpected (500)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(alice):
    return api_key_create(user=alice, name="k", scopes=["read", "generate"])[1]


def _problem(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


@pytest.mark.parametrize("path", ["/api/v1/generations", "/mcp"])
def test_a_body_over_the_limit_is_a_413_problem(path, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({"model": "local-canvas", "prompt": "a" * 200_000})
    response = Client().post(
        path,
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_ACCEPT="application/json, text/event-stream",
    )
    problem = _problem(response, 413)
    assert problem["type"].endswith("/developers/errors#request_too_large")
    assert "97 KB" in problem["detail"]


def test_an_unexpected_error_is_a_500_problem_and_logged(token, settings, monkeypatch, caplog):
    from apiv1 import engine

    settings.DEBUG = False

    def broken():
        raise RuntimeError("the catalog is on fire")

    monkeypatch.setattr(engine, "catalog_list", broken)
    response = Client(raise_request_exception=False).get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {token}")
    problem = _problem(response, 500)
    assert problem["type"].endswith("#server_error") and "on fire" not in problem["detail"]
    assert "the catalog is on fire" in caplog.text


def test_pages_for_people_keep_their_html_error_pages(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    response = client.post("/accounts/login/", data={"login": "a" * 5_000, "password": "x"})
    assert response.status_code == 400 and "text/html" in response["Content-Type"]
