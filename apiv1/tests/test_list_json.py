"""The list answer is written by the engine from plain values (no model instances, no second
validation by ninja): it must say exactly what getGeneration says of each item, in the form ninja
would have written it, and stay within its size cap."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.test import Client

from apiv1 import engine
from apiv1.api import GenerationListOut
from apiv1.tests.conftest import bearer
from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status
from generation.views import download_name

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)


def make(owner, entry, status, outputs=(), minute=0, **fields) -> Generation:
    generation = Generation.objects.create(
        owner=owner,
        model=entry,
        kind=entry.kind,
        cost=entry.credit_cost,
        status=status,
        params={"aspect_ratio": "1:1", "seed": minute},
        **fields,
    )
    finished = START + timedelta(minutes=minute, seconds=3) if status in (Status.SUCCEEDED, Status.FAILED) else None
    Generation.objects.filter(pk=generation.pk).update(
        queued_at=START + timedelta(minutes=minute), finished_at=finished
    )
    for role, index, mime, ext in outputs:
        image = mime.startswith("image/")
        Asset.objects.create(
            generation=generation,
            role=role,
            index=index,
            mime_type=mime,
            bytes=1000 + index,
            sha256="0" * 64,
            width=64 if image else None,
            height=32 if image else None,
            storage_key=f"users/{owner.public_id}/generations/{generation.uuid}/{role}-{index}.{ext}",
        )
    return generation


@pytest.fixture
def history(funded):
    """One of each shape: several outputs out of order with a thumbnail, a failure, a queued job
    without a prompt, a finished 3D model (viewer link) and a running one."""
    canvas = CatalogEntry.objects.get(slug="local-canvas")
    relief = CatalogEntry.objects.filter(kind=Kind.IMAGE_TO_3D).first()
    out, thumb, given, poster = AssetRole.OUTPUT, AssetRole.THUMBNAIL, AssetRole.INPUT, AssetRole.POSTER
    png, glb = ("image/png", "png"), ("model/gltf-binary", "glb")
    return [
        make(funded, canvas, Status.SUCCEEDED, [(out, 1, *png), (out, 0, *png), (thumb, 0, "image/webp", "webp")],
             minute=1, prompt="Été — a fox, nº 2", negative_prompt="blur"),
        make(funded, canvas, Status.FAILED, minute=2, prompt="x", error_message="It broke."),
        make(funded, canvas, Status.QUEUED, minute=3, prompt=""),
        make(funded, relief, Status.SUCCEEDED, [(given, 0, *png), (out, 0, *glb), (poster, 0, *png)], minute=4),
        make(funded, relief, Status.RUNNING, [(given, 0, *png)], minute=5),
    ]  # fmt: skip


def readable(item: dict) -> dict:
    """An item with its signed tokens opened (signatures carry the second they were made)."""
    item = json.loads(json.dumps(item))
    for output in item["outputs"]:
        token = output["url"].split("/files/")[1].rstrip("/")
        output["url"] = signing.loads(token, salt="generation.asset")
    if item["viewer_url"]:
        token = item["viewer_url"].split("/view/3d/")[1].rstrip("/")
        item["viewer_url"] = signing.TimestampSigner(salt="apiv1.viewer").unsign(token)
    return item


def test_each_listed_item_is_what_get_generation_answers(key, history, django_assert_num_queries):
    client = Client()
    client.get("/api/v1/me", **bearer(key))  # the key's first use is recorded (then at most once a minute)
    with django_assert_num_queries(3):  # the key; the rows with their model's slug; their outputs
        response = client.get("/api/v1/generations", **bearer(key))
    assert response.status_code == 200 and response["Content-Type"] == "application/json; charset=utf-8"
    page = response.json()
    assert [item["id"] for item in page["items"]] == [str(g.uuid) for g in reversed(history)]
    for item in page["items"]:
        alone = client.get(f"/api/v1/generations/{item['id']}", **bearer(key))
        assert readable(item) == readable(alone.json())

    several, failed, queued, model_3d, running = (readable(item) for item in reversed(page["items"]))
    assert [output["bytes"] for output in several["outputs"]] == [1000, 1001]  # in index order, outputs only
    assert several["created_at"] == "2026-11-24T10:01:00.123Z" and several["finished_at"] == "2026-11-24T10:01:03.123Z"
    assert failed["error"] == "It broke." and failed["outputs"] == [] and queued["finished_at"] is None
    assert model_3d["viewer_url"] == model_3d["id"].replace("-", "") and running["viewer_url"] is None
    assert several["web_url"] == f"http://testserver/g/{several['id']}/"
    # Links are named as the download view names the files.
    assets = Asset.objects.filter(role=AssetRole.OUTPUT).select_related("generation").order_by("generation", "index")
    named = {asset.storage_key: download_name(asset) for asset in assets}
    for item in (several, model_3d):
        for output in item["outputs"]:
            assert output["url"]["f"] == named[output["url"]["k"]] and output["url"]["d"] == 0
    assert several["outputs"][1]["url"]["f"].endswith("-2.png")


def test_the_page_is_written_as_ninja_writes_the_documented_schema(key, history):
    from ninja.renderers import JSONRenderer

    body = Client().get("/api/v1/generations?limit=3", **bearer(key)).content.decode()
    validated = GenerationListOut.model_validate(json.loads(body))  # conforms to the document
    rendered = JSONRenderer().render(None, validated.model_dump(), response_status=200)
    assert body == rendered  # byte for byte what ninja would have answered


def test_a_page_past_the_size_cap_ends_early_and_its_cursor_continues(funded, history):
    first = json.loads(engine.generation_page_json(user=funded, limit=5, max_chars=1))
    assert len(first["items"]) == 1 and first["next_cursor"]  # at least one item, whatever the cap
    rest = json.loads(engine.generation_page_json(user=funded, limit=5, cursor=first["next_cursor"]))
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == [str(g.uuid) for g in reversed(history)] and rest["next_cursor"] is None


def test_someone_elses_items_never_show(key, history, bob):
    make(bob, CatalogEntry.objects.get(slug="local-canvas"), Status.SUCCEEDED, minute=9, uuid=uuid.uuid4())
    items = Client().get("/api/v1/generations?limit=50", **bearer(key)).json()["items"]
    assert len(items) == len(history)


def test_one_generation_is_written_as_ninja_writes_the_documented_schema(key, history):
    """getGeneration and createGeneration answer the engine's text; it is what ninja would write
    for GenerationOut, byte for byte, and conforms to it."""
    from ninja.renderers import JSONRenderer

    from apiv1.api import GenerationOut
    from generation.models import Generation

    for generation in Generation.objects.all():
        response = Client().get(f"/api/v1/generations/{generation.uuid}", **bearer(key))
        assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
        body = response.content.decode()
        validated = GenerationOut.model_validate(json.loads(body))
        assert body == JSONRenderer().render(None, validated.model_dump(), response_status=200)
