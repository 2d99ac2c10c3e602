"""The gallery in Chromium: grid, filter, search, load more and back, favourite, running cards
that update themselves, bulk delete with shift-click, deleting the whole history; screenshots at
desktop (1280) and phone (390) width."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image, ImageDraw

from billing import services as billing
from billing.models import LedgerReason
from generation import services
from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, Status
from generation.tests.test_gallery import make
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PALETTE = [(109, 74, 255), (255, 111, 168), (255, 176, 59), (59, 178, 160), (74, 111, 165), (200, 90, 60)]


@pytest.fixture
def artist(db):
    user = UserFactory(email="artist@example.com", display_name="Artist")
    billing.credits_grant(user=user, amount=40, reason=LedgerReason.ADMIN_GRANT, idempotency_key="gallery-artist")
    return user


def picture(i: int) -> bytes:
    """A small colourful WebP, different for each i (stands in for the worker's thumbnails)."""
    a, b = PALETTE[i % len(PALETTE)], PALETTE[(i * 7 + 3) % len(PALETTE)]
    image = Image.new("RGB", (256, 256), a)
    draw = ImageDraw.Draw(image)
    draw.ellipse((40 + i % 5 * 10, 50, 200, 210 - i % 4 * 10), fill=b)
    draw.rectangle((0, 190, 256, 256), fill=tuple(max(0, c - 60) for c in a))
    out = io.BytesIO()
    image.save(out, format="WEBP")
    return out.getvalue()


def pictured(user, n: int, **kwargs) -> list[Generation]:
    """n gallery items with real thumbnail files (fast: no generation runs)."""
    rows = make(user, n, **kwargs)
    for i, asset in enumerate(Asset.objects.filter(generation__in=rows, role=AssetRole.THUMBNAIL)):
        default_storage.save(asset.storage_key, ContentFile(picture(i)))
    return rows


def real(user, prompt: str, slug: str = "local-canvas", **values) -> Generation:
    entry = CatalogEntry.objects.get(slug=slug)
    upload = None
    if entry.kind != Kind.TEXT_TO_IMAGE:
        from django.core.files.uploadedfile import SimpleUploadedFile

        buffer = io.BytesIO()
        Image.new("RGB", (320, 240), (90, 140, 200)).save(buffer, format="PNG")
        upload = SimpleUploadedFile("photo.png", buffer.getvalue(), content_type="image/png")
    spec = services.GenerationSpec(model=entry, values={"prompt": prompt, **values}, image_upload=upload)
    return services.generation_submit(user=user, spec=spec)  # eager and committed: runs inline


def cards(page):
    return page.locator(".gallery-card")


def test_gallery_grid_filter_search_and_screenshots(page, artist):
    pictured(artist, 8, start=timezone.now() - timedelta(days=2))
    failed = make(
        artist, 1, status=Status.FAILED, prompt="a castle made of glass", start=timezone.now() - timedelta(hours=3)
    )
    Asset.objects.filter(generation__in=failed).delete()  # a failed text-to-image job has no picture
    real(artist, "a lighthouse at dawn, calm sea")
    real(artist, "make it winter", slug="local-restyle")
    real(artist, "", slug="local-relief")
    real(artist, "a red fox curled up in fresh snow, watercolor")
    sign_in(page, artist)
    page.get_by_role("link", name="Gallery").first.click()
    page.wait_for_url("**/gallery/")
    assert cards(page).count() == 13
    first = cards(page).first
    assert "red fox" in first.inner_text()
    assert page.evaluate("img => img.naturalWidth", first.locator("img").element_handle()) > 0
    three_d = page.locator(".gallery-card", has_text="3D").first
    assert page.evaluate("img => img.naturalWidth", three_d.locator("img").element_handle()) > 0
    page.wait_for_load_state("networkidle")
    screenshot(page, "gallery-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "gallery-phone")
    page.set_viewport_size(DESKTOP)

    # Filter: kind, through the filters panel; the URL says it, so the link reproduces it.
    page.get_by_text("Filters").click()
    page.get_by_label("Kind").select_option("image_to_3d")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*kind=image_to_3d.*"))
    assert cards(page).count() == 1
    screenshot(page, "gallery-filtered-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "gallery-filtered-phone")
    page.set_viewport_size(DESKTOP)
    url = page.url
    page.goto("/gallery/")
    page.goto(url)
    assert cards(page).count() == 1

    # Search.
    page.goto("/gallery/")
    page.get_by_label("Search prompts").fill("fox")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*q=fox.*"))
    assert cards(page).count() == 1 and "red fox" in cards(page).first.inner_text()
    page.get_by_label("Search prompts").fill("nothing like this")
    page.get_by_label("Search prompts").press("Enter")
    page.get_by_text("Nothing matches").wait_for()
    screenshot(page, "gallery-no-match")


def test_empty_gallery_invites_the_first_creation(page, artist):
    sign_in(page, artist)
    page.goto("/gallery/")
    link = page.get_by_role("link", name="Create your first image")
    assert link.is_visible()
    screenshot(page, "gallery-empty-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "gallery-empty-phone")
    link.click()
    page.wait_for_url("**/create/")


def test_load_more_infinite_scroll_and_back_returns_to_the_same_place(page, artist):
    rows = pictured(artist, 60)
    sign_in(page, artist)
    page.goto("/gallery/")
    assert cards(page).count() == 24
    page.get_by_role("link", name="Load more").click()
    page.wait_for_function("() => document.querySelectorAll('.gallery-card').length === 48")
    assert "cursor=" in page.url  # pushed: back and reload come here
    # Infinite scroll: the next "load more" loads itself when it scrolls into view.
    page.locator(".gallery-more").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('.gallery-card').length === 60")
    assert page.get_by_text("That's everything.").is_visible()
    target = str(rows[5].uuid)  # on the last page
    page.locator(f"#card-{target} .gallery-thumb").click()
    page.wait_for_url(f"**/g/{target}/")
    page.go_back()
    page.locator(f"#card-{target}").wait_for()
    assert "cursor=" in page.url
    page.reload()
    page.locator(f"#card-{target}").wait_for()


def test_favourite_from_a_card(page, artist):
    row = pictured(artist, 3)[1]
    sign_in(page, artist)
    page.goto("/gallery/")
    card = page.locator(f"#card-{row.uuid}")
    card.hover()
    card.get_by_role("button", name="Add to favourites").click()
    card.locator(".favorite-button[aria-pressed=true]").wait_for()
    assert Generation.objects.get(pk=row.pk).favorite
    page.locator(".gallery-fav-toggle").click()
    page.wait_for_url(re.compile(r".*fav=on.*"))
    assert cards(page).count() == 1


def test_a_running_job_updates_itself_in_the_grid(page, artist, monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)  # the workers are busy
    row = real(artist, "a slow one")
    sign_in(page, artist)
    page.goto("/gallery/")
    card = page.locator(f"#card-{row.uuid}")
    assert card.get_attribute("data-status") == "queued"
    screenshot(page, "gallery-running")
    services.generation_run(generation_id=row.pk)  # a worker picks it up and finishes it
    page.locator(f"#card-{row.uuid}[data-status=succeeded] img").wait_for(timeout=15_000)
    assert card.get_attribute("hx-trigger") is None  # final: it stopped polling


def test_bulk_delete_with_shift_click(page, artist):
    rows = pictured(artist, 6)
    newest_first = list(reversed(rows))
    sign_in(page, artist)
    page.goto("/gallery/")
    page.locator(f"#card-{newest_first[1].uuid} input[data-select]").click()
    page.locator(f"#card-{newest_first[3].uuid} input[data-select]").click(modifiers=["Shift"])
    assert page.locator("[data-selected-count]").inner_text() == "3"
    screenshot(page, "gallery-selecting-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "gallery-selecting-phone")
    page.set_viewport_size(DESKTOP)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("Deleted 3 generations").wait_for()
    left = {str(r.uuid) for r in (newest_first[0], newest_first[4], newest_first[5])}
    assert set(Generation.objects.filter(owner=artist).values_list("uuid", flat=True)) == {
        r.uuid for r in rows if str(r.uuid) in left
    }
    assert cards(page).count() == 3
    assert not Asset.objects.filter(generation_id__in=[r.pk for r in newest_first[1:4]]).exists()


def test_delete_whole_history_with_typed_confirmation(page, artist):
    pictured(artist, 4)
    sign_in(page, artist)
    page.goto("/gallery/")
    page.get_by_role("link", name="Delete my whole history").click()
    page.get_by_label('Type "delete my history" to confirm').fill("delete it")
    page.get_by_role("button", name="Delete everything").click()
    page.get_by_text('Type "delete my history" exactly').wait_for()
    assert Generation.objects.filter(owner=artist).count() == 4
    screenshot(page, "gallery-delete-history")
    page.get_by_label('Type "delete my history" to confirm').fill("delete my history")
    page.get_by_role("button", name="Delete everything").click()
    page.get_by_text("Your history is being deleted").wait_for()
    assert page.get_by_role("link", name="Create your first image").is_visible()
    assert not Generation.objects.filter(owner=artist).exists()
