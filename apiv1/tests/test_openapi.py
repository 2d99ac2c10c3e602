"""The OpenAPI document at /api/v1/openapi.json: valid OpenAPI 3.1, and within what ChatGPT's GPT
Actions accept (operationId everywhere, summary/description at most 300 characters, parameter
descriptions at most 700, x-openai-isConsequential on calls that spend or destroy, a server URL,
answers under 100,000 characters)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from openapi_spec_validator import validate

from apiv1 import engine
from apiv1.tests.conftest import bearer
from generation.models import CatalogEntry, Generation, Source

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}
# Calls that spend, destroy or change state: ChatGPT asks before each (no "always allow").
CONSEQUENTIAL = {"createGeneration", "cancelGeneration", "deleteGeneration"}


@pytest.fixture
def document():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_operation_fits_gpt_action_limits(document):
    seen = set()
    for path, method, operation in operations(document):
        label = f"{method.upper()} {path}"
        operation_id = operation.get("operationId")
        assert operation_id and re.fullmatch(r"[a-z][A-Za-z0-9]+", operation_id), label
        assert operation_id not in seen, label
        seen.add(operation_id)
        assert 0 < len(operation.get("summary", "")) <= 300, label
        assert len(operation.get("description", "")) <= 300, label
        for parameter in operation.get("parameters", []):
            description = parameter.get("description") or parameter.get("schema", {}).get("description", "")
            assert description and len(description) <= 700, f"{label} {parameter['name']}"
        assert operation["x-openai-isConsequential"] is (operation_id in CONSEQUENTIAL), label
    assert seen == {
        "getMe",
        "listModels",
        "createGeneration",
        "listGenerations",
        "getGeneration",
        "cancelGeneration",
        "deleteGeneration",
    }


def test_schema_property_descriptions_fit_too(document):
    for name, schema in document["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            assert len(spec.get("description", "")) <= 700, f"{name}.{prop}"


def test_the_server_is_the_site_and_errors_are_problem_json(document, settings):
    assert document["servers"] == [{"url": settings.SITE_URL}]
    for path, method, operation in operations(document):
        for code, answer in operation["responses"].items():
            if int(code) >= 400:
                assert list(answer["content"]) == ["application/problem+json"], f"{method} {path} {code}"
    create = document["paths"]["/api/v1/generations"]["post"]
    assert set(create["responses"]) >= {"200", "202", "401", "402", "403", "422", "429"}
    assert "Location" in create["responses"]["202"]["headers"]
    assert {p["name"] for p in create["parameters"]} == {"wait", "Prefer", "Idempotency-Key"}


def test_openai_file_refs_are_described_as_chatgpt_sends_them(document):
    schemas = document["components"]["schemas"]
    refs = schemas["GenerationIn"]["properties"]["openaiFileIdRefs"]
    assert refs["type"] == "array" and refs["maxItems"] == 10 and refs["description"]
    item = schemas[refs["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(item["properties"]) == {"name", "id", "mime_type", "download_link"}
    assert item["required"] == ["download_link"]


def test_requests_and_answers_carry_examples(document):
    schemas = document["components"]["schemas"]
    for name in ("GenerationIn", "GenerationOut", "GenerationListOut", "ModelsOut", "MeOut", "Problem"):
        assert schemas[name].get("examples"), name
    example = schemas["GenerationIn"]["examples"][0]
    assert example["model"] == "local-canvas" and example["prompt"]


def test_a_full_page_of_long_prompts_stays_well_under_100000_characters(key, funded):
    canvas = CatalogEntry.objects.get(slug="local-canvas")
    for i in range(engine.LIST_LIMIT_MAX + 5):
        Generation.objects.create(
            owner=funded, model=canvas, kind="text_to_image", prompt=f"{i} " + "long words " * 180, cost=1,
            negative_prompt="n" * 900, params={"seed": i}, source=Source.API,
        )  # fmt: skip
    first = Client().get(f"/api/v1/generations?limit={engine.LIST_LIMIT_MAX}", **bearer(key))
    assert first.status_code == 200
    assert len(first.content.decode()) < 65_000
    page = first.json()
    assert 0 < len(page["items"]) < engine.LIST_LIMIT_MAX and page["next_cursor"]
    # The rest follows on, nothing skipped or repeated.
    seen = [item["id"] for item in page["items"]]
    cursor = page["next_cursor"]
    while cursor:
        more = Client().get(f"/api/v1/generations?limit=50&cursor={cursor}", **bearer(key)).json()
        seen += [item["id"] for item in more["items"]]
        cursor = more["next_cursor"]
    assert len(seen) == len(set(seen)) == engine.LIST_LIMIT_MAX + 5
