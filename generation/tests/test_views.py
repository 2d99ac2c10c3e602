"""The create page, the generation page and file access, with the offline local provider."""

from __future__ import annotations

import html
import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation.models import Asset, Generation, Status

pytestmark = pytest.mark.django_db


def png(size=(120, 80), color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"v:{user.pk}")


@pytest.fixture
def signed_in(client, alice):
    fund(alice, 10)
    client.force_login(alice)
    return client


def create(client, django_capture_on_commit_callbacks, tab="image", **data):
    """Submit the create form; the queued task runs when the request's transaction commits,
    then the page the person is sent to is fetched (as their browser would)."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/create/?tab={tab}", data)
    if response.status_code != 302:
        return response
    return client.get(response["Location"], follow=True)


def test_create_page_shows_models_costs_and_balance(signed_in):
    page = signed_in.get("/create/").content.decode()
    assert "Atelier Canvas (offline)" in page
    assert "1 credit" in page
    assert "Balance: <strong>10</strong>" in page
    assert "FLUX" not in page  # Replicate is not configured here: its models are not offered


def test_text_to_image_with_the_local_model_ends_with_an_image(signed_in, alice, django_capture_on_commit_callbacks):
    response = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="a red fox in snow", seed="42"
    )
    generation = Generation.objects.get(owner=alice)
    assert response.request["PATH_INFO"] == f"/g/{generation.uuid}/"
    assert generation.status == Status.SUCCEEDED
    assert generation.params["seed"] == 42
    page = response.content.decode()
    assert "Download PNG" in page
    assert Wallet.objects.get(user=alice).balance == 9
    output = generation.assets.get(role="output")
    assert (output.width, output.height) == (768, 768)


def test_missing_prompt_is_an_error_beside_the_field_and_costs_nothing(
    signed_in, alice, django_capture_on_commit_callbacks
):
    response = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="  ")
    assert "Describe what you want to see." in response.content.decode()
    assert not Generation.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 10


def test_bad_choice_values_are_refused(signed_in, django_capture_on_commit_callbacks):
    response = create(
        signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="x", aspect_ratio="7:1"
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Generation.objects.exists()


def test_insufficient_credits_says_so_with_a_link_and_creates_nothing(client, bob, django_capture_on_commit_callbacks):
    client.force_login(bob)
    response = create(client, django_capture_on_commit_callbacks, model="local-canvas", prompt="a cat")
    page = response.content.decode()
    assert "needs 1 credit and you have 0" in page
    assert 'href="/billing/"' in page
    assert not Generation.objects.exists()


def test_edit_needs_an_image(signed_in, django_capture_on_commit_callbacks):
    response = create(signed_in, django_capture_on_commit_callbacks, tab="edit", model="local-restyle", prompt="winter")
    assert "Upload an image or paste an image link: one of them is needed." in response.content.decode()
    assert not Generation.objects.exists()


def test_edit_of_an_upload_stores_input_and_output(signed_in, alice, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("photo.png", png(), content_type="image/png")
    create(
        signed_in,
        django_capture_on_commit_callbacks,
        tab="edit",
        model="local-restyle",
        prompt="make it winter",
        strength="0.8",
        image=upload,
    )
    generation = Generation.objects.get(owner=alice)
    assert generation.status == Status.SUCCEEDED
    roles = sorted(generation.assets.values_list("role", flat=True))
    assert roles == ["input", "output", "thumbnail"]
    assert generation.assets.get(role="output").width == 120


def test_text_file_named_png_is_refused_and_nothing_is_stored(signed_in, alice, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("photo.png", b"just some text, not pixels", content_type="image/png")
    response = create(
        signed_in, django_capture_on_commit_callbacks, tab="edit", model="local-restyle", prompt="x", image=upload
    )
    assert "not a PNG, JPEG or WebP image" in response.content.decode()
    assert not Generation.objects.exists()
    assert not Asset.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 10


def test_image_to_3d_makes_a_glb(signed_in, alice, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("cup.png", png((64, 64)), content_type="image/png")
    response = create(signed_in, django_capture_on_commit_callbacks, tab="3d", model="local-relief", image=upload)
    generation = Generation.objects.get(owner=alice)
    assert generation.status == Status.SUCCEEDED
    output = generation.assets.get(role="output")
    assert output.mime_type == "model/gltf-binary"
    assert "<model-viewer" in response.content.decode()
    assert Wallet.objects.get(user=alice).balance == 8


def test_other_people_get_404_for_pages_files_and_actions(signed_in, alice, bob, django_capture_on_commit_callbacks):
    create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="mine")
    generation = Generation.objects.get(owner=alice)
    asset = generation.assets.get(role="output")
    other = Client()
    other.force_login(bob)
    for url in (f"/g/{generation.uuid}/", f"/g/{generation.uuid}/status/", f"/a/{asset.uuid}/download/"):
        assert other.get(url).status_code == 404, url
    for url in (f"/g/{generation.uuid}/cancel/", f"/g/{generation.uuid}/retry/"):
        assert other.post(url).status_code == 404, url
    anonymous = Client()
    assert anonymous.get(f"/g/{generation.uuid}/").status_code == 302


def test_download_is_a_signed_short_lived_link(signed_in, alice, django_capture_on_commit_callbacks, settings):
    create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="mine")
    asset = Generation.objects.get(owner=alice).assets.get(role="output")
    redirect = signed_in.get(f"/a/{asset.uuid}/download/")
    assert redirect.status_code == 302
    url = redirect["Location"]
    response = Client().get(url)  # the signed link itself works without a session
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA/") else "BBB") + "/"
    assert Client().get(tampered).status_code == 404


def test_retry_a_canceled_job_creates_a_new_one(signed_in, alice, django_capture_on_commit_callbacks):
    create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="again")
    first = Generation.objects.get(owner=alice)
    Generation.objects.filter(pk=first.pk).update(status=Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/g/{first.uuid}/retry/", follow=True)
    second = Generation.objects.exclude(pk=first.pk).get()
    assert response.redirect_chain[-1][0] == f"/g/{second.uuid}/"
    assert second.retry_of == first and second.status == Status.SUCCEEDED
    assert second.prompt == "again" and second.params == first.params


def test_cancel_of_a_finished_job_is_refused_politely(signed_in, alice, django_capture_on_commit_callbacks):
    create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="done")
    generation = Generation.objects.get(owner=alice)
    response = signed_in.post(f"/g/{generation.uuid}/cancel/", follow=True)
    assert "already finished" in response.content.decode()
    assert Wallet.objects.get(user=alice).balance == 9


def test_queued_job_page_polls_and_cancel_refunds(signed_in, alice, settings):
    # Without running on-commit callbacks the job stays queued, as when workers are busy.
    signed_in.post("/create/?tab=image", {"model": "local-canvas", "prompt": "waiting"})
    generation = Generation.objects.get(owner=alice)
    fragment = signed_in.get(f"/g/{generation.uuid}/status/").content.decode()
    assert 'hx-trigger="every 1s"' in fragment and "Queued" in fragment
    signed_in.post(f"/g/{generation.uuid}/cancel/")
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert Wallet.objects.get(user=alice).balance == 10
    fragment = signed_in.get(f"/g/{generation.uuid}/status/").content.decode()
    assert "hx-trigger" not in fragment and "Try again" in fragment


def test_create_form_needs_csrf(alice):
    fund(alice, 5)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/create/", {"model": "local-canvas", "prompt": "x"}).status_code == 403
    assert not Generation.objects.exists()


def test_model_fields_fragment_follows_the_model(signed_in):
    html = signed_in.get("/create/fields/?tab=edit&model=local-restyle").content.decode()
    assert 'name="strength"' in html and 'name="image"' in html
    html = signed_in.get("/create/fields/?tab=3d&model=local-relief").content.decode()
    assert 'name="image"' in html and 'name="prompt"' not in html


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cat.png",
        "http://10.1.2.3/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/cat.png",
        "http://localhost/cat.png",  # a name that resolves to loopback
    ],
)
def test_image_links_to_private_places_are_refused_beside_the_field_and_cost_nothing(
    signed_in, alice, django_capture_on_commit_callbacks, url
):
    response = create(
        signed_in, django_capture_on_commit_callbacks, tab="edit", model="local-restyle", prompt="x", image_url=url
    )
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert "That address points to a private or local network, which we don't fetch." in page
    assert not Generation.objects.exists()
    assert not Asset.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 10


def test_a_broker_outage_fails_the_job_with_a_refund_instead_of_an_error_page(
    signed_in, alice, django_capture_on_commit_callbacks, monkeypatch
):
    from kombu.exceptions import OperationalError

    from generation import tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.run_generation, "delay", broker_down)
    response = create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="a quiet harbour")
    generation = Generation.objects.get(owner=alice)
    assert response.status_code == 200
    assert generation.status == Status.FAILED
    assert "could not start this job" in response.content.decode()
    assert Wallet.objects.get(user=alice).balance == 10


def _bomb() -> bytes:
    from generation.tests.test_inputs import solid_png

    return solid_png(10_000, 10_000)  # 100 megapixels, a few kB on disk


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()[:3000]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("bomb.png", _bomb, "The image is too large to process (over 40 megapixels)."),
        ("notes.png", lambda: b"just some text, not pixels", "That file is not a PNG, JPEG or WebP image."),
        ("huge.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024), "The image is larger than 10 MB."),
        ("cut.jpg", _truncated_jpeg, "The image looks damaged or incomplete."),
    ],
)
def test_bad_uploads_are_refused_beside_the_field_charging_and_storing_nothing(
    signed_in, alice, django_capture_on_commit_callbacks, settings, name, make, message
):
    upload = SimpleUploadedFile(name, make(), content_type="image/png")
    response = create(signed_in, django_capture_on_commit_callbacks, tab="3d", model="local-relief", image=upload)
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert not Generation.objects.exists() and not Asset.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 10
    media = settings.STORAGES["default"]["OPTIONS"]["location"]
    assert not any(files for _, _, files in os.walk(media))


def test_the_credit_history_names_the_model_but_never_the_prompt(signed_in, alice, django_capture_on_commit_callbacks):
    create(signed_in, django_capture_on_commit_callbacks, model="local-canvas", prompt="my secret birthday idea")
    page = html.unescape(signed_in.get("/billing/").content.decode())
    assert "Generation — Image · Atelier Canvas (offline)" in page
    assert "secret birthday" not in page
