"""The signed 3D viewer page an API answer links to: opens signed out while valid; tampered,
expired or deleted links say so."""

from __future__ import annotations

import pytest
from django.test import Client

from apiv1 import engine
from generation.models import Generation, Source, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_3d(funded, picture_server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        generation, _ = engine.generation_create(
            user=funded,
            model="local-relief",
            source=Source.GPT_ACTION,
            file_refs=[
                {
                    "name": "chair.png",
                    "id": "file-abc",
                    "mime_type": "image/png",
                    "download_link": picture_server.url + "/c.png",
                }
            ],
        )
    generation = engine.generation_wait(generation, 10)
    assert generation.status == Status.SUCCEEDED
    return generation


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_finished_3d_model_has_a_viewer_link_that_opens_signed_out(model_3d):
    data = engine.generation_json(model_3d)
    assert data["outputs"][0]["mime_type"] == "model/gltf-binary"
    url = data["viewer_url"]
    assert url.startswith("http://") and "/view/3d/" in url
    response = Client().get(path_of(url))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<model-viewer" in page and "Atelier Relief 3D (offline)" in page and "Download GLB" in page
    assert model_3d.owner.email not in page and "alice" not in page.lower()
    assert response["Cache-Control"] == "private, no-store" and response["Referrer-Policy"] == "no-referrer"
    assert "wasm-unsafe-eval" in response["Content-Security-Policy"]
    # Link unfurlers ask with HEAD first; a POST is simply not a method this page has.
    assert Client().head(path_of(url)).status_code == 200
    assert Client().post(path_of(url)).status_code == 405
    # The GLB behind the page is served to the signed-out visitor through the signed file link.
    src = page.split('<model-viewer class="viewer" src="', 1)[1].split('"', 1)[0]
    glb = Client().get(src.replace("&amp;", "&"))
    assert glb.status_code == 200 and glb["Content-Type"] == "model/gltf-binary"
    assert b"".join(glb.streaming_content)[:4] == b"glTF"


def test_a_tampered_link_is_404_and_names_nothing(model_3d):
    path = path_of(engine.generation_json(model_3d)["viewer_url"])
    token = path.rstrip("/").rsplit("/", 1)[1]
    value, stamp, signature = token.split(":")
    other = Generation.objects.exclude(pk=model_3d.pk).first()
    forged = [f"{'0' * 32}:{stamp}:{signature}", token[:-2] + "xx", "nothing"]
    if other is not None:
        forged.append(f"{other.uuid.hex}:{stamp}:{signature}")
    for bad in forged:
        response = Client().get(f"/view/3d/{bad}/")
        assert response.status_code == 404, bad
        assert "doesn&#x27;t work" in response.content.decode() or "doesn't work" in response.content.decode()


def test_an_expired_link_is_410_with_a_clear_page(model_3d, settings):
    path = path_of(engine.generation_json(model_3d)["viewer_url"])
    settings.API_VIEWER_LINK_SECONDS = -1  # every link is past its time
    response = Client().get(path)
    assert response.status_code == 410
    assert "This 3D viewer link has expired" in response.content.decode()


def test_a_deleted_model_is_no_longer_shown(model_3d, django_capture_on_commit_callbacks):
    path = path_of(engine.generation_json(model_3d)["viewer_url"])
    with django_capture_on_commit_callbacks(execute=True):
        engine.generation_delete(user=model_3d.owner, generation_id=model_3d.uuid)
    assert Client().get(path).status_code == 404


def test_only_finished_3d_models_get_a_viewer(funded):
    generation, _ = engine.generation_create(user=funded, model="local-canvas", prompt="x", source=Source.API)
    assert engine.viewer_url(generation) is None


def test_a_paused_owners_model_is_not_shown(model_3d):
    """Pausing the account (restriction of processing) stops its viewer links at once; resuming
    brings them back while they are valid."""
    from django.utils import timezone

    path = path_of(engine.generation_json(model_3d)["viewer_url"])
    owner = model_3d.owner
    owner.paused_at = timezone.now()
    owner.save(update_fields=["paused_at"])
    assert Client().get(path).status_code == 404
    owner.paused_at = None
    owner.save(update_fields=["paused_at"])
    assert Client().get(path).status_code == 200
