"""The staff-created GPT Action client: the management command and the admin."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from oauth2_provider.models import get_application_model

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_command_creates_confidential_client_for_both_chatgpt_hosts():
    out = io.StringIO()
    call_command(
        "create_gpt_action_client",
        "--redirect-uri",
        "https://chat.openai.com/aip/g-abc123/oauth/callback",
        "--name",
        "Atelier GPT",
        stdout=out,
    )
    text = out.getvalue()
    client_id = re.search(r"Client ID:\s+(\S+)", text).group(1)
    secret = re.search(r"Client secret:\s+(\S+)", text).group(1)
    app = get_application_model().objects.get(client_id=client_id)
    assert app.name == "Atelier GPT"
    assert app.client_type == "confidential" and app.authorization_grant_type == "authorization-code"
    assert app.redirect_uris.split() == [
        "https://chat.openai.com/aip/g-abc123/oauth/callback",
        "https://chatgpt.com/aip/g-abc123/oauth/callback",
    ]
    assert app.registration_source == "manual" and not app.skip_authorization
    # Shown once: only a hash is kept, and it matches.
    assert secret not in app.client_secret
    from django.contrib.auth.hashers import check_password

    assert check_password(secret, app.client_secret)


@pytest.mark.parametrize(
    "uri",
    [
        "http://chat.openai.com/aip/g-1/oauth/callback",
        "javascript:alert(1)",
        # One argument that DOT's whitespace-separated field would read as a second URI.
        "https://chat.openai.com/aip/g-1/oauth/callback http://evil.example/cb",
        "https://chat.openai.com/aip/g-1/oauth/callback\nhttps://evil.example/cb",
    ],
)
def test_command_refuses_unsafe_redirect(uri):
    with pytest.raises(CommandError):
        call_command("create_gpt_action_client", "--redirect-uri", uri, stdout=io.StringIO())
    assert not get_application_model().objects.exists()


def test_admin_lists_and_opens_applications(client):
    call_command(
        "create_gpt_action_client",
        "--redirect-uri",
        "https://chatgpt.com/aip/g-xyz/oauth/callback",
        stdout=io.StringIO(),
    )
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    listing = client.get("/admin/oauth2_provider/application/")
    assert listing.status_code == 200 and "ChatGPT" in listing.content.decode()
    app = get_application_model().objects.get()
    assert client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").status_code == 200
    assert client.get("/admin/oauth2_provider/accesstoken/").status_code == 200
