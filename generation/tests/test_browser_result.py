"""The result and create pages in Chromium with the offline models: remix with the same seed,
edit this / make 3D from this, variations, paste and the upload kept after an error, the busy
Generate button; screenshots at desktop and phone width."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason
from generation.models import Generation, Status
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESULT_URL = re.compile(r".*/g/[0-9a-f-]+/$")


@pytest.fixture
def maker(db):
    user = UserFactory(email="maker@example.com", display_name="Maker")
    billing.credits_grant(user=user, amount=30, reason=LedgerReason.ADMIN_GRANT, idempotency_key="maker")
    return user


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    image.paste((240, 200, 60), (100, 60, 220, 180))
    image.save(path, format="JPEG")
    return path


def wait_done(page) -> None:
    page.wait_for_url(RESULT_URL)
    page.locator("[data-status=succeeded]").wait_for(timeout=30_000)


def latest(user) -> Generation:
    return Generation.objects.filter(owner=user).order_by("-queued_at", "-id").first()


def output_digests(generation: Generation) -> list[str]:
    return list(generation.assets.filter(role="output").order_by("index").values_list("sha256", flat=True))


def test_remix_with_the_same_seed_gives_the_same_image(page, maker):
    sign_in(page, maker)
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dawn, calm sea, gulls over the rocks")
    page.locator("label.picker-option", has_text="16:9").click()
    page.locator("label.style-option", has_text="Watercolor").click()
    screenshot(page, "create-desktop")
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    first = latest(maker)
    assert first.seed is not None
    screenshot(page, "result-desktop")
    assert page.get_by_text(str(first.seed), exact=True).is_visible()

    page.get_by_role("link", name="Remix").click()
    page.wait_for_url(re.compile(r".*/create/\?tab=image&remix="))
    assert page.get_by_label("Seed").input_value() == str(first.seed)
    assert page.locator("input[name=aspect_ratio][value='16:9']").is_checked()
    assert page.locator("input[name=style][value=watercolor]").is_checked()
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    remix = latest(maker)
    assert remix.pk != first.pk and remix.seed == first.seed
    assert output_digests(remix) == output_digests(first)

    # Previous/next walk the gallery order (newest first).
    page.get_by_role("link", name="Next ›").click()
    page.wait_for_url(f"**/g/{first.uuid}/")
    page.get_by_role("link", name="‹ Previous").click()
    page.wait_for_url(f"**/g/{remix.uuid}/")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("[data-status=succeeded]").wait_for()
    screenshot(page, "result-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto("/create/")
    screenshot(page, "create-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_edit_this_and_make_3d_from_this_use_the_output_without_a_re_upload(page, maker):
    sign_in(page, maker)
    page.get_by_label("Prompt", exact=True).fill("orange sunset over green hills")
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    original = latest(maker)
    result_url = page.url

    page.get_by_role("link", name="Edit this").click()
    page.wait_for_url(re.compile(r".*/create/\?tab=edit&source="))
    assert page.get_by_text("Using atelier-orange-sunset-over-green-hills-").is_visible()
    page.get_by_label("Prompt", exact=True).fill("make it vintage")
    screenshot(page, "create-edit-this")
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    edit = latest(maker)
    assert edit.kind == "image_to_image" and edit.status == Status.SUCCEEDED
    assert edit.assets.get(role="input").width == original.assets.get(role="output").width

    page.goto(result_url)
    page.get_by_role("link", name="Make 3D from this").click()
    page.wait_for_url(re.compile(r".*/create/\?tab=3d&source="))
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    relief = latest(maker)
    assert relief.kind == "image_to_3d" and relief.status == Status.SUCCEEDED
    page.locator("model-viewer").wait_for()
    assert page.get_by_role("link", name="Download GLB").is_visible()
    assert page.get_by_role("link", name="Edit this").count() == 0  # a 3D file is not a picture
    screenshot(page, "result-3d-desktop")


def test_copy_favourite_and_delete_from_the_result_page(page, maker):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, maker)
    page.get_by_label("Prompt", exact=True).fill("a paper boat on a puddle")
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    generation = latest(maker)

    page.get_by_role("button", name="Copy prompt").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == "a paper boat on a puddle"

    page.get_by_role("button", name="Add to favourites").click()
    page.get_by_role("button", name="Favourite").wait_for()
    generation.refresh_from_db()
    assert generation.favorite

    page.locator("summary", has_text="Delete").click()
    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_url("**/gallery/")
    assert not Generation.objects.filter(pk=generation.pk).exists()


def test_variations_cost_n_and_show_as_a_grid(page, maker):
    sign_in(page, maker)
    page.get_by_label("Prompt", exact=True).fill("koi fish in a blue pond")
    page.locator("label.segment", has_text="3").click()
    assert "3 credits" in page.locator("[data-generate]").inner_text()
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    generation = latest(maker)
    assert generation.cost == 3
    assert page.locator("img.result-image").count() == 3
    assert page.get_by_role("link", name="Download variation 3 (PNG)").is_visible()
    assert page.get_by_role("link", name="Make 3D from variation 2").is_visible()
    screenshot(page, "result-variations-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "result-variations-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_pasted_upload_previews_and_an_upload_survives_a_validation_error(page, maker, photo):
    sign_in(page, maker)
    page.goto("/create/?tab=edit")
    # Paste from the clipboard: the picture lands in the file field with a preview.
    page.evaluate(
        """async () => {
            const canvas = document.createElement("canvas"); canvas.width = 40; canvas.height = 30;
            canvas.getContext("2d").fillRect(0, 0, 40, 30);
            const blob = await new Promise(r => canvas.toBlob(r, "image/png"));
            const data = new DataTransfer(); data.items.add(new File([blob], "image.png", {type: "image/png"}));
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
        }"""
    )
    assert page.locator("[data-preview]").is_visible()
    assert "pasted-picture.png" in page.locator("[data-preview-name]").inner_text()
    # Drag and drop onto the picture box does the same.
    page.evaluate(
        """async () => {
            const canvas = document.createElement("canvas"); canvas.width = 30; canvas.height = 20;
            const blob = await new Promise(r => canvas.toBlob(r, "image/png"));
            const data = new DataTransfer(); data.items.add(new File([blob], "dropped.png", {type: "image/png"}));
            const zone = document.querySelector("[data-dropzone]");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    assert "dropped.png" in page.locator("[data-preview-name]").inner_text()
    assert page.evaluate("document.querySelector('input[name=image]').files[0].name") == "dropped.png"

    page.set_input_files("input[name=image]", str(photo))
    assert "photo.jpg" in page.locator("[data-preview-name]").inner_text()
    page.get_by_role("button", name=re.compile("Generate")).click()  # no prompt: refused
    page.get_by_text("Describe what you want to see.").wait_for()
    assert page.get_by_text("Using photo.jpg").is_visible()
    screenshot(page, "create-upload-kept")
    assert not Generation.objects.filter(owner=maker).exists()

    page.get_by_label("Prompt", exact=True).fill("make it black and white")
    page.locator("[data-generate]").dblclick()  # a double click still makes one job
    wait_done(page)
    assert Generation.objects.filter(owner=maker).count() == 1
    edit = latest(maker)
    assert (edit.assets.get(role="input").width, edit.assets.get(role="input").height) == (320, 240)


def test_generate_shows_a_busy_state(page, maker):
    sign_in(page, maker)
    page.get_by_label("Prompt", exact=True).fill("a quiet street")
    # What the button looks like just after the click, kept across the navigation.
    page.evaluate(
        """() => document.querySelector("[data-create-form]").addEventListener("submit", () => setTimeout(() => {
            const b = document.querySelector("[data-generate]");
            sessionStorage.setItem("busy", JSON.stringify([b.getAttribute("aria-busy"), b.disabled, b.innerText]));
        }, 5))"""
    )
    page.get_by_role("button", name=re.compile("Generate")).click()
    wait_done(page)
    busy, disabled, label = page.evaluate("JSON.parse(sessionStorage.getItem('busy'))")
    assert (busy, disabled) == ("true", True)
    assert "Starting" in label
