"""The developers pages in Chromium, at desktop and phone width: the guide, the webhooks list and
an endpoint with its delivery log (screenshots in test-artifacts/screenshots/)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from developers import services
from developers.models import WebhookDelivery, WebhookEndpoint
from tests.browser import screenshot, sign_in
from tests.fixtures import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_guide_page_desktop_and_phone(page):
    page.goto("/developers/")
    assert page.get_by_role("heading", name="Build with Atelier").is_visible()
    copy = page.locator('[data-copy-target="v-gpt-schema"]')
    assert copy.is_visible()  # shown where the clipboard works
    screenshot(page, "developers-guide-desktop")
    for section in ("start", "auth", "gpt-action", "mcp", "curl", "webhooks", "errors", "chat-retention"):
        page.locator(f"#{section}").screenshot(path=str(ARTIFACTS / "screenshots" / f"developers-guide-{section}.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/developers/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    screenshot(page, "developers-guide-phone")
    for section in ("start", "auth", "gpt-action", "mcp", "curl", "webhooks"):
        path = ARTIFACTS / "screenshots" / f"developers-guide-phone-{section}.png"
        page.locator(f"#{section}").screenshot(path=str(path))


def test_webhook_pages_desktop_and_phone(page, alice, receiver):
    sign_in(page, alice)
    page.goto("/developers/webhooks/")
    page.get_by_label("Endpoint URL").fill("http://10.0.0.1/hook")
    page.get_by_role("button", name="Add endpoint").click()
    assert page.get_by_text("private or local network").is_visible()
    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Description").fill("Staging server")
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_url("**/developers/webhooks/*/")
    endpoint = WebhookEndpoint.objects.get(owner=alice)
    assert page.get_by_text(endpoint.secret).is_visible()

    # A log with one delivered event and one being retried after a 500.
    page.get_by_role("button", name="Send test event").click()
    page.get_by_text("Test event delivered (HTTP 200)").wait_for()
    receiver.status = 500
    delivery = services.webhook_test_send(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(event_type="generation.succeeded")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending", next_attempt_at=timezone.now())
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    page.reload()
    page.locator(".delivery summary").first.click()
    assert page.get_by_text("HTTP 500").first.is_visible()
    screenshot(page, "developers-webhook-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator(".delivery summary").first.click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "developers-webhook-phone")
    page.goto("/developers/webhooks/")
    screenshot(page, "developers-webhooks-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/developers/webhooks/")
    screenshot(page, "developers-webhooks-desktop")
