"""Creating in Chromium with the offline local models: image, edit, 3D, cancel, no credits."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation.models import Generation, Status
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def artist(db):
    user = UserFactory(email="artist@example.com", display_name="Artist")
    billing.credits_grant(user=user, amount=10, reason=LedgerReason.ADMIN_GRANT, idempotency_key="artist")
    return user


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    for x in range(100, 220):
        for y in range(60, 180):
            image.putpixel((x, y), (240, 200, 60))
    image.save(path, format="JPEG")
    return path


def wait_final(page) -> str:
    page.locator("[data-status=succeeded], [data-status=failed], [data-status=canceled]").wait_for(timeout=30_000)
    return page.locator("[data-status]").get_attribute("data-status")


def test_create_an_image_with_the_offline_model(page, artist):
    sign_in(page, artist)
    page.get_by_role("link", name="Create").first.click()
    assert page.get_by_text("Balance: 10 credits").is_visible()
    screenshot(page, "create-image")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dawn, calm sea")
    page.locator("label.style-option", has_text="Watercolor").click()
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r".*/g/[0-9a-f-]+/$"))
    assert wait_final(page) == "succeeded"
    image = page.locator("img.result-image")
    image.wait_for()
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) == 768
    assert page.get_by_role("link", name="Download PNG").is_visible()
    screenshot(page, "generation-image")
    assert Wallet.objects.get(user=artist).balance == 9


def test_edit_an_uploaded_image(page, artist, photo):
    sign_in(page, artist)
    page.goto("/create/?tab=edit")
    page.get_by_label("Upload an image").set_input_files(str(photo))
    page.get_by_label("Prompt", exact=True).fill("make it winter")
    page.get_by_label("Strength").fill("0.8")
    screenshot(page, "create-edit")
    page.get_by_role("button", name="Generate").click()
    assert wait_final(page) == "succeeded"
    page.locator("img.result-image").wait_for()
    screenshot(page, "generation-edit")
    generation = Generation.objects.get(owner=artist)
    assert sorted(generation.assets.values_list("role", flat=True)) == ["input", "output", "thumbnail"]


def test_make_a_3d_model_and_see_the_viewer_load_it(page, artist, photo):
    sign_in(page, artist)
    page.goto("/create/?tab=3d")
    page.get_by_label("Upload an image").set_input_files(str(photo))
    page.get_by_role("button", name="Generate").click()
    assert wait_final(page) == "succeeded"
    viewer = page.locator("model-viewer")
    viewer.wait_for()
    page.wait_for_function(
        "() => { const v = document.querySelector('model-viewer'); return v && v.loaded; }", timeout=30_000
    )
    dims = page.evaluate(
        "() => { const s = document.querySelector('model-viewer').getDimensions(); return [s.x, s.y, s.z]; }"
    )
    assert dims[0] > 0.5 and dims[1] > 0.3  # the relief mesh really is in the viewer
    screenshot(page, "generation-3d")
    assert Wallet.objects.get(user=artist).balance == 8


def test_cancel_a_queued_job_gives_the_credits_back(page, artist, monkeypatch):
    from generation import services

    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)  # the workers are busy
    sign_in(page, artist)
    page.goto("/create/")
    page.get_by_label("Prompt", exact=True).fill("a slow one")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Waiting for a free worker").wait_for()
    assert Wallet.objects.get(user=artist).balance == 9
    page.get_by_role("button", name="Cancel and refund").click()
    page.get_by_text("credits are back in your balance").wait_for()
    assert page.locator("[data-status]").get_attribute("data-status") == "canceled"
    assert Wallet.objects.get(user=artist).balance == 10
    assert Generation.objects.get(owner=artist).status == Status.CANCELED


def test_insufficient_credits_is_explained(page, db):
    poor = UserFactory(email="poor@example.com")
    sign_in(page, poor)
    page.goto("/create/?tab=3d")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    page.get_by_label("Upload an image").set_input_files(
        files=[{"name": "x.png", "mimeType": "image/png", "buffer": buffer.getvalue()}]
    )
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("This needs 2 credits and you have 0.").wait_for()
    assert page.get_by_role("link", name="See your credits").is_visible()
    screenshot(page, "create-no-credits")
    assert not Generation.objects.exists()
