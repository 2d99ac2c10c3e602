"""The result page and the create page around it: parameters in words, remix, run again, edit
this / make 3D from this, download names, variations, the upload kept after an error, and
another person's ids answering 404 everywhere."""

from __future__ import annotations

import html
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation.models import Asset, Generation, PendingUpload, Status

pytestmark = pytest.mark.django_db


def png(size=(160, 120), color=(40, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def signed_in(client, alice):
    billing.credits_grant(user=alice, amount=20, reason=LedgerReason.ADMIN_GRANT, idempotency_key="rp")
    client.force_login(alice)
    return client


@pytest.fixture
def stranger(client, bob, alice):
    """Bob, signed in, looking at Alice's ids."""
    from django.test import Client

    other = Client()
    other.force_login(bob)
    return other


def create(client, capture, tab="image", **data) -> Generation:
    with capture(execute=True):
        response = client.post(f"/create/?tab={tab}", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Generation.objects.get(uuid=response["Location"].strip("/").split("/")[-1])


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_result_page_says_every_parameter_in_words(signed_in, django_capture_on_commit_callbacks):
    generation = create(
        signed_in,
        django_capture_on_commit_callbacks,
        model="local-canvas",
        prompt="a lighthouse at dawn, calm sea",
        negative_prompt="people",
        aspect_ratio="16:9",
        style="watercolor",
        seed="77",
    )
    text = page(signed_in, f"/g/{generation.uuid}/")
    assert "a lighthouse at dawn, calm sea" in text
    assert "Copy prompt" in text
    for words in ("Model version", "2026.11", "Seed", "77", "Aspect ratio", "16:9", "Watercolor", "Negative prompt"):
        assert words in text
    assert re.search(r"Duration</dt><dd>\d+\.\d s", text)
    assert "Remix" in text and "Run again" in text and "Edit this" in text and "Make 3D from this" in text


def test_download_has_a_meaningful_name(signed_in, django_capture_on_commit_callbacks):
    generation = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="Ein Fuchs im Schnee!", seed="1"
    )
    output = generation.assets.get(role="output")
    response = signed_in.get(f"/a/{output.uuid}/download/", follow=True)
    expected = f"atelier-ein-fuchs-im-schnee-{generation.uuid.hex[:8]}.png"
    assert response["Content-Disposition"] == f'attachment; filename="{expected}"'


def test_download_from_s3_names_the_file_in_the_presigned_url(
    signed_in, s3_storage, django_capture_on_commit_callbacks
):
    generation = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="red kite", seed="1"
    )
    output = generation.assets.get(role="output")
    response = signed_in.get(f"/a/{output.uuid}/download/")
    assert response.status_code == 302
    assert "response-content-disposition=attachment" in response["Location"]
    assert f"atelier-red-kite-{generation.uuid.hex[:8]}.png" in html.unescape(response["Location"]).replace(
        "%22", '"'
    ).replace("%3B", ";").replace("%20", " ").replace("%3D", "=")


def test_remix_prefills_every_parameter_seed_included(signed_in, django_capture_on_commit_callbacks):
    generation = create(
        signed_in,
        django_capture_on_commit_callbacks,
        model="local-canvas",
        prompt="blue night over a forest",
        negative_prompt="text",
        aspect_ratio="9:16",
        style="anime",
        num_outputs="2",
        seed="4242",
    )
    text = page(signed_in, f"/create/?tab=image&remix={generation.uuid}")
    assert "blue night over a forest</textarea>" in text
    assert 'value="text"' in text
    assert 'value="4242"' in text
    assert re.search(r'name="aspect_ratio" value="9:16" checked', text)
    assert re.search(r'name="style" value="anime" checked', text)
    assert re.search(r'name="num_outputs" value="2" checked', text)
    assert "· 2 credits" in text


def test_run_again_is_a_new_job_with_a_new_seed(signed_in, django_capture_on_commit_callbacks):
    first = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="dunes", seed="3")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/g/{first.uuid}/again/")
    again = Generation.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/g/{again.uuid}/"
    assert again.prompt == "dunes" and again.seed != 3 and again.status == Status.SUCCEEDED


def test_run_again_counts_against_the_submit_limit(signed_in, settings, django_capture_on_commit_callbacks):
    settings.GENERATION_SUBMIT_RATE_PER_USER = "2/h"
    first = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="dunes", seed="3")
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(f"/g/{first.uuid}/again/")
        refused = signed_in.post(f"/g/{first.uuid}/again/", follow=True)
    assert Generation.objects.count() == 2
    assert "You are starting generations faster than we allow." in refused.content.decode()


def test_edit_this_uses_the_output_without_a_re_upload(signed_in, alice, django_capture_on_commit_callbacks):
    original = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="green hills", seed="2"
    )
    output = original.assets.get(role="output")
    text = page(signed_in, f"/create/?tab=edit&source={output.uuid}")
    assert "Using <strong>atelier-green-hills-" in text
    assert f'name="source_asset" value="{output.uuid}"' in text
    edit = create(
        signed_in,
        django_capture_on_commit_callbacks,
        tab="edit",
        model="local-restyle",
        prompt="make it winter",
        source_asset=str(output.uuid),
    )
    assert edit.status == Status.SUCCEEDED
    given = edit.assets.get(role="input")
    assert (given.width, given.height) == (output.width, output.height)
    assert given.storage_key.startswith(f"users/{alice.public_id}/generations/{edit.uuid}/")


def test_make_3d_from_this(signed_in, django_capture_on_commit_callbacks):
    original = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="a red cube", seed="2"
    )
    output = original.assets.get(role="output")
    model = create(
        signed_in, django_capture_on_commit_callbacks, tab="3d", model="local-relief", source_asset=str(output.uuid)
    )
    assert model.status == Status.SUCCEEDED
    assert model.assets.get(role="output").mime_type == "model/gltf-binary"
    # A 3D file cannot be the input of another job.
    glb = model.assets.get(role="output")
    assert signed_in.get(f"/create/?tab=3d&source={glb.uuid}").status_code == 404


def test_variations_show_as_a_grid(signed_in, alice, django_capture_on_commit_callbacks):
    generation = create(
        signed_in,
        django_capture_on_commit_callbacks,
        model="local-canvas",
        prompt="koi pond",
        num_outputs="4",
        seed="8",
    )
    assert generation.cost == 4 and Wallet.objects.get(user=alice).balance == 16
    text = page(signed_in, f"/g/{generation.uuid}/")
    assert 'data-results="4"' in text
    assert text.count('class="result-image"') == 4
    assert f"atelier-koi-pond-{generation.uuid.hex[:8]}-4.png" in text


def test_an_upload_survives_a_validation_error(signed_in, alice, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("photo.png", png(), content_type="image/png")
    response = signed_in.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "", "image": upload})
    text = html.unescape(response.content.decode())
    assert "Describe what you want to see." in text
    assert "Using <strong>photo.png</strong>" in text
    pending = PendingUpload.objects.get(owner=alice)
    assert f'name="pending_upload" value="{pending.uuid}"' in text
    assert not Generation.objects.exists() and Wallet.objects.get(user=alice).balance == 20
    # The second try sends only the prompt: the kept picture is used.
    edit = create(
        signed_in,
        django_capture_on_commit_callbacks,
        tab="edit",
        model="local-restyle",
        prompt="vintage",
        pending_upload=str(pending.uuid),
    )
    assert edit.status == Status.SUCCEEDED
    assert (edit.assets.get(role="input").width, edit.assets.get(role="input").height) == (160, 120)


def test_upload_or_link_says_one_of_them_is_needed(signed_in):
    response = signed_in.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "winter"})
    assert "one of them is needed" in html.unescape(response.content.decode())


def test_another_persons_ids_are_404_on_every_new_url(signed_in, stranger, alice, django_capture_on_commit_callbacks):
    generation = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="mine", seed="5")
    output = generation.assets.get(role="output")
    upload = SimpleUploadedFile("photo.png", png(), content_type="image/png")
    signed_in.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "", "image": upload})
    pending = PendingUpload.objects.get(owner=alice)
    assert stranger.get(f"/g/{generation.uuid}/").status_code == 404
    assert stranger.get(f"/create/?tab=image&remix={generation.uuid}").status_code == 404
    assert stranger.get(f"/create/?tab=edit&source={output.uuid}").status_code == 404
    assert stranger.get("/create/?tab=edit&source=not-a-uuid").status_code == 404
    assert stranger.post(f"/g/{generation.uuid}/again/").status_code == 404
    assert stranger.get(f"/a/{output.uuid}/download/").status_code == 404
    # Posting someone else's picture ids uses nothing of theirs and charges nothing.
    billing.credits_grant(
        user=generation.owner.__class__.objects.get(email="bob@example.com"),
        amount=5,
        reason=LedgerReason.ADMIN_GRANT,
        idempotency_key="bob",
    )
    for field, value in (("source_asset", output.uuid), ("pending_upload", pending.uuid)):
        response = stranger.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "x", field: str(value)})
        assert response.status_code == 200
        assert "no longer available" in html.unescape(response.content.decode())
    assert Generation.objects.filter(owner__email="bob@example.com").count() == 0
    assert Asset.objects.filter(generation__owner__email="bob@example.com").count() == 0


def test_a_kept_upload_is_deleted_once_used_and_old_ones_are_swept(
    signed_in, alice, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from generation import services, storage
    from generation.tasks import sweep_pending_uploads

    upload = SimpleUploadedFile("photo.png", png(), content_type="image/png")
    signed_in.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "", "image": upload})
    pending = PendingUpload.objects.get(owner=alice)
    create(
        signed_in,
        django_capture_on_commit_callbacks,
        tab="edit",
        model="local-restyle",
        prompt="sepia",
        pending_upload=str(pending.uuid),
    )
    assert not PendingUpload.objects.exists()
    with pytest.raises(services.ProviderError):
        storage.read_bytes(pending.storage_key)

    upload = SimpleUploadedFile("old.png", png(), content_type="image/png")
    signed_in.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "", "image": upload})
    old = PendingUpload.objects.get(owner=alice)
    PendingUpload.objects.filter(pk=old.pk).update(created_at=timezone.now() - timezone.timedelta(days=2))
    assert sweep_pending_uploads() == 1
    assert not PendingUpload.objects.exists()
    with pytest.raises(services.ProviderError):
        storage.read_bytes(old.storage_key)


def test_switching_model_keeps_what_was_typed_and_the_picture_but_never_anothers(
    signed_in, stranger, django_capture_on_commit_callbacks
):
    original = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="moon", seed="1")
    output = original.assets.get(role="output")
    query = f"tab=edit&model=local-restyle&prompt=keep+me&strength=0.3&source_asset={output.uuid}"
    text = page(signed_in, f"/create/fields/?{query}")
    assert "keep me</textarea>" in text and 'value="0.3"' in text
    assert "Using <strong>atelier-moon-" in text
    assert "Using" not in html.unescape(stranger.get(f"/create/fields/?{query}").content.decode())
