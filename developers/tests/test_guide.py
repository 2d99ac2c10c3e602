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


def test_the_python_webhook_example_runs_as_printed_and_verifies_a_real_delivery(monkeypatch, settings):
    """The snippet, executed as a developer would paste it, accepts a body Atelier signed."""
    from developers import delivery, guide, services

    secret = services.webhook_secret_generate()
    monkeypatch.setenv("ATELIER_WEBHOOK_SECRET", secret)
    code = guide.examples(site="https://atelier.example", mcp_url="https://atelier.example/mcp")["verify_python"]
    saved = []
    namespace = {"save": lambda *args: saved.append(args)}
    exec(compile(code, "verify_python", "exec"), namespace)  # a NameError here if an import is missing

    body = b'{"type":"generation.succeeded","data":{"id":"g1","outputs":[]}}'
    timestamp = int(__import__("time").time())

    class Request:
        def __init__(self):
            self.body = body
            self.headers = {
                "webhook-id": "msg_1",
                "webhook-timestamp": str(timestamp),
                "webhook-signature": delivery.sign(secret=secret, message_id="msg_1", timestamp=timestamp, body=body),
            }

    assert namespace["receive"](Request()) == 204
    assert saved == [("g1", [])]


def test_the_guide_says_what_the_settings_say_and_what_a_client_meets(client, settings):
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 4.0
    page = client.get(reverse("developers:index")).content.decode()
    assert "Answer 2xx within 4 seconds</strong>" in page
    assert "answer 2xx within 4 seconds; do slow work afterwards" in page
    assert "10 seconds" not in page
    assert '<code>"status": "queued"</code> or <code>"running"</code>' in page
    assert "If ChatGPT sends no PKCE challenge, staff also add that client ID to" in page
    assert "<code>OAUTH_PKCE_EXEMPT_CLIENT_IDS</code>; it still authenticates with its secret" in page
    assert 'refused with <code>403</code> <a href="#account_paused">account_paused</a> until you resume it' in page
