"""The signed 3D viewer in Chromium, signed out: the model loads in <model-viewer> with no CSP
violation, the page fits a phone, and an expired link says so."""

from __future__ import annotations

import time

import pytest

from apiv1 import engine
from generation.models import Source, Status
from tests.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_loaded(page, timeout: float = 20.0) -> None:
    """Until <model-viewer> says the GLB is loaded (`loaded`). Polled from here: Playwright's
    wait_for_function evaluates a string, which the page's CSP rightly forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate("() => document.querySelector('model-viewer')?.loaded === true"):
        assert time.monotonic() < deadline, "the model never loaded"
        page.wait_for_timeout(100)


def test_the_viewer_shows_the_model_signed_out_on_desktop_and_phone(page, funded, picture_server, settings):
    generation, _ = engine.generation_create(
        user=funded, model="local-relief", image_url=picture_server.url + "/chair.png", source=Source.GPT_ACTION
    )
    generation = engine.generation_wait(generation, 20)
    assert generation.status == Status.SUCCEEDED
    path = "/" + engine.generation_json(generation)["viewer_url"].split("/", 3)[3]

    page.goto(path)
    page.get_by_role("button", name="Essential only").click()  # the cookie notice, answered once
    wait_loaded(page)
    assert page.get_by_role("heading", name="A 3D model made with Atelier").is_visible()
    assert page.get_by_role("link", name="Download GLB").is_visible()
    assert page.locator("[data-viewer-error]").is_hidden()
    assert page.get_by_role("link", name="Sign in").count() >= 1  # nobody is signed in
    assert funded.email not in page.content()
    page.wait_for_timeout(500)  # a rendered frame, for the picture
    screenshot(page, "api-viewer-desktop")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    wait_loaded(page)
    page.wait_for_timeout(1000)  # the loading bar fades out
    screenshot(page, "api-viewer-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    settings.API_VIEWER_LINK_SECONDS = -1
    response = page.goto(path)
    assert response.status == 410
    assert page.get_by_role("heading", name="This 3D viewer link has expired").is_visible()
    screenshot(page, "api-viewer-expired-phone")
