"""With files in S3 (the moto server over HTTP): the links in API answers and on the 3D viewer
page are presigned, short-lived, and fetch the real objects from the bucket."""

from __future__ import annotations

import html
import re

import pytest
import requests
from django.test import Client

from apiv1 import engine
from apiv1.tests.conftest import bearer
from generation.models import Source, Status

pytestmark = pytest.mark.django_db


def test_output_links_are_presigned_and_fetch_the_image(s3_storage, key, funded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = (
            Client()
            .post(
                "/api/v1/generations",
                {"model": "local-canvas", "prompt": "a harbour at night"},
                content_type="application/json",
                **bearer(key),
            )
            .json()
        )
    body = Client().get(f"/api/v1/generations/{created['id']}", **bearer(key)).json()
    assert body["status"] == "succeeded"
    url = body["outputs"][0]["url"]
    assert url.startswith(s3_storage["endpoint"]) and "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fetched.content) == body["outputs"][0]["bytes"]
    unsigned = requests.get(url.split("?", 1)[0], timeout=10)
    assert unsigned.status_code == 403  # the bucket is private


def test_the_viewer_page_loads_the_glb_from_the_bucket(
    s3_storage, funded, picture_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        generation, _ = engine.generation_create(
            user=funded, model="local-relief", image_url=picture_server.url + "/chair.png", source=Source.API
        )
    generation = engine.generation_wait(generation, 10)
    assert generation.status == Status.SUCCEEDED
    viewer = engine.generation_json(generation)["viewer_url"]
    page = Client().get("/" + viewer.split("/", 3)[3]).content.decode()
    src = html.unescape(re.search(r'<model-viewer class="viewer" src="([^"]+)"', page).group(1))
    assert src.startswith(s3_storage["endpoint"])
    glb = requests.get(src, timeout=10)
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
