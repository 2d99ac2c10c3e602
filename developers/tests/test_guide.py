"""The /developers guide: every value a GPT Action or an MCP client needs, with the site's own
addresses; each API error type documented where its `type` URL points; the retention promise
with the configured period."""

from __future__ import annotations

import pytest
from django.urls import reverse

from config.errors import ApplicationError

pytestmark = pytest.mark.django_db


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def test_the_guide_has_every_value_a_gpt_action_needs_with_this_sites_addresses(client, settings):
    settings.SITE_URL = "https://atelier.example"
    page = client.get(reverse("developers:index")).content.decode()  # no sign-in needed to read it

    for value in (
        "https://atelier.example/api/v1/openapi.json",
        "https://atelier.example/oauth/authorize/",
        "https://atelier.example/oauth/token/",
        "read generate",
        "https://atelier.example/privacy/policy/",
        "https://atelier.example/mcp",
        "create_gpt_action_client --redirect-uri",
        "Prefer: wait=30",
        "Idempotency-Key",
        "/cancel",
    ):
        assert value in page, value
    assert page.count('data-copy-target="') >= 12  # copy buttons beside the values and examples
    links = (reverse("developers:keys"), reverse("developers:webhooks"), reverse("oauth:connections"), "/api/v1/docs")
    for link in links:
        assert f'href="{link}' in page, link


def test_the_guide_states_the_assistant_retention_period_from_the_setting(client, settings):
    settings.ASSISTANT_PROMPT_RETENTION_DAYS = 17
    page = client.get(reverse("developers:index")).content.decode()
    assert "kept <strong>17 days</strong>, then blanked" in page
    assert "stay in your gallery until you delete them" in page
    assert reverse("privacy:centre") + "#activity" in page


def test_every_error_type_the_code_can_send_is_documented_at_its_type_url(client):
    from accounts.api import TITLES, problem_type_url

    page = client.get(reverse("developers:errors")).content.decode()  # where problem `type` URLs point
    assert problem_type_url("not_found").endswith("/developers/errors#not_found")
    types = {cls.type for cls in all_subclasses(ApplicationError)} | set(TITLES)
    # Refusals of the web pages only, never sent by the API.
    types -= {"export_refused", "payments_error", "payments_unavailable", "invalid_request", "webhook_endpoint_limit"}
    missing = sorted(slug for slug in types if f'<tr id="{slug}">' not in page)
    assert not missing, f"error types without a row on /developers/errors: {missing}"


def test_the_footer_links_to_the_guide_and_the_account_menu_has_developers_and_webhooks(client, alice):
    client.force_login(alice)
    page = client.get(reverse("developers:keys")).content.decode()
    assert f'<a href="{reverse("developers:index")}">Developers &amp; API</a>' in page
    assert '<a href="/api/v1/docs">API</a>' not in page
    assert f'href="{reverse("developers:webhooks")}"' in page
