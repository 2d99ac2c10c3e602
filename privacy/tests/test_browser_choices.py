"""Consents and choices in Chromium: the cookie notice on first visit (two equal buttons, with
and without JavaScript), the cookie page against the cookies the browser really holds, the
consent switches on the privacy centre, and pause then resume (the create page's banner).
Screenshots at desktop (1280) and phone (390) width, copied to /work/notes/shots/ when it exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from privacy import cookies
from privacy.models import ConsentEvent, ConsentMethod, PageViewCount
from privacy.services.consents import WORDING, consent_granted
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
NOTES_SHOTS = Path("/work/notes/shots")


def shot(page, name: str) -> None:
    path = screenshot(page, name)
    if NOTES_SHOTS.is_dir():
        shutil.copy(path, NOTES_SHOTS / path.name)


def both_sizes(page, name: str) -> None:
    page.set_viewport_size(DESKTOP)
    shot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    shot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def person(db):
    return UserFactory(email="dana@example.com", display_name="Dana")


def notice(page):
    return page.get_by_role("region", name="Cookie choice")


def test_first_visit_notice_has_two_equal_choices_and_remembers_the_answer(page):
    page.goto("/")
    region = notice(page)
    region.wait_for()
    essential = region.get_by_role("button", name="Essential only")
    analytics = region.get_by_role("button", name="Allow analytics")
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        a, b = essential.bounding_box(), analytics.bounding_box()
        assert (round(a["width"]), round(a["height"])) == (round(b["width"]), round(b["height"]))
        assert essential.get_attribute("class") == analytics.get_attribute("class")
        assert essential.evaluate("e => getComputedStyle(e).backgroundColor") == analytics.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
    page.set_viewport_size(DESKTOP)
    both_sizes(page, "cookie-notice")
    assert not PageViewCount.objects.exists()  # nothing counted before a yes

    analytics.click()
    region.wait_for(state="detached")  # htmx swapped it away
    jar = {c["name"]: c for c in page.context.cookies()}
    assert jar[cookies.COOKIE_NAME]["value"] == f"analytics:{cookies.NOTICE_VERSION}"
    assert jar[cookies.COOKIE_NAME]["sameSite"] == "Lax"
    page.reload()
    page.get_by_role("heading", level=1).first.wait_for()
    assert notice(page).count() == 0
    assert PageViewCount.objects.get(path="/").views == 1


def test_notice_works_without_javascript(browser, live_server):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto("/pricing/")
        notice(page).get_by_role("button", name="Essential only").click()
        page.wait_for_url("**/pricing/")
        page.get_by_text("Cookie choice saved: Essential cookies only").wait_for()
        assert notice(page).count() == 0
        jar = {c["name"]: c["value"] for c in context.cookies()}
        assert jar[cookies.COOKIE_NAME] == f"essential:{cookies.NOTICE_VERSION}"
        page.goto("/")
        assert notice(page).count() == 0
        assert not PageViewCount.objects.exists()
    finally:
        context.close()


def test_cookie_page_lists_every_cookie_the_browser_holds(page, person):
    sign_in(page, person)
    notice(page).get_by_role("button", name="Allow analytics").click()
    notice(page).wait_for(state="detached")
    # A few more pages, a form post with a message, the privacy centre.
    for path in ("/gallery/", "/billing/", "/privacy/", "/account/profile/"):
        page.goto(path)
    page.get_by_role("button", name="Save profile").click()
    page.get_by_text("Your profile was saved.").wait_for()
    event = ConsentEvent.objects.get(user=person)
    assert (event.kind, event.granted, event.method) == ("analytics", True, ConsentMethod.COOKIE_NOTICE)

    page.goto("/privacy/cookies/")
    table = page.locator("table.cookie-table")
    listed = set(table.locator("tbody tr td:first-child code").all_inner_texts())
    held = {c["name"] for c in page.context.cookies()}
    assert held, "the browser holds no cookie at all?"
    assert held <= listed, f"cookies set but not listed on the cookie page: {held - listed}"
    assert page.get_by_text("Analytics allowed").first.is_visible()
    both_sizes(page, "cookie-page")

    # Change of mind on the same page.
    page.get_by_role("button", name="Essential only").click()
    page.get_by_text("Cookie choice saved: Essential cookies only").wait_for()
    assert not consent_granted(user=person, kind="analytics")


def test_consent_switches_and_pause_then_resume(page, person):
    sign_in(page, person)
    notice(page).get_by_role("button", name="Essential only").click()
    notice(page).wait_for(state="detached")
    page.goto("/privacy/")
    training = page.get_by_role("switch", name=WORDING["training"].title)
    marketing = page.get_by_role("switch", name=WORDING["marketing"].title)
    assert training.get_attribute("aria-checked") == "false"
    assert marketing.get_attribute("aria-checked") == "false"
    assert page.get_by_text(WORDING["training"].text).is_visible()

    training.click()
    page.get_by_role("switch", name=WORDING["training"].title, checked=True).wait_for()
    assert consent_granted(user=person, kind="training")
    page.locator("#choices").scroll_into_view_if_needed()
    page.set_viewport_size(DESKTOP)
    page.locator("#choices").screenshot(path=str(screenshot_path("choices-desktop")))
    page.set_viewport_size(PHONE)
    page.locator("#choices").screenshot(path=str(screenshot_path("choices-phone")))
    page.set_viewport_size(DESKTOP)
    page.reload()  # it stays on
    assert page.get_by_role("switch", name=WORDING["training"].title).get_attribute("aria-checked") == "true"
    page.get_by_role("switch", name=WORDING["training"].title).click()
    page.get_by_role("switch", name=WORDING["training"].title, checked=False).wait_for()
    assert not consent_granted(user=person, kind="training")
    versions = set(ConsentEvent.objects.filter(user=person, kind="training").values_list("wording_version", flat=True))
    assert versions == {WORDING["training"].version}
    page.get_by_role("link", name="Cookie settings").wait_for()

    # Pause.
    page.get_by_role("button", name="Pause my account").click()
    page.get_by_role("heading", name="Your account is paused").wait_for()
    person.refresh_from_db()
    assert person.is_paused
    page.goto("/create/")
    banner = page.locator(".paused-banner")
    assert "Your account is paused" in banner.inner_text()
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Your account is paused, so no new generations can start.").wait_for()
    assert not person.generations.exists()
    both_sizes(page, "create-paused")

    # Resume from the banner's link.
    banner = page.locator(".paused-banner")
    banner.get_by_role("link", name="Resume in the privacy centre").click()
    page.wait_for_url("**/privacy/#pause")
    page.get_by_role("button", name="Resume my account").click()
    page.get_by_role("button", name="Pause my account").wait_for()
    person.refresh_from_db()
    assert not person.is_paused
    page.goto("/create/")
    page.get_by_role("heading", name="Create").wait_for()
    assert page.locator(".paused-banner").count() == 0
    # The activity log shows it all.
    page.goto("/privacy/")
    log = page.locator("#activity").inner_text()
    for line in ("Allowed training use", "Withdrew consent for training use", "Account paused", "Account resumed"):
        assert line in log


def screenshot_path(name: str) -> Path:
    from tests.fixtures import ARTIFACTS

    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _copy_element_shots():
    yield
    for name in ("choices-desktop", "choices-phone"):
        path = screenshot_path(name)
        if path.exists() and NOTES_SHOTS.is_dir():
            shutil.copy(path, NOTES_SHOTS / path.name)
