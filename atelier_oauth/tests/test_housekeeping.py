"""Beat's OAuth sweep: expired tokens go, self-registered clients nobody connected go after
OAUTH_UNUSED_CLIENT_DAYS, clients in use and staff-made clients stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from atelier_oauth.tasks import oauth_housekeeping
from atelier_oauth.tests.conftest import token_in_process

pytestmark = pytest.mark.django_db


def dcr_app(name: str, *, days_old: int):
    Application = get_application_model()
    app = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1:1234/cb",
        registration_source=Application.RegistrationSource.DCR,
    )
    Application.objects.filter(pk=app.pk).update(created=timezone.now() - timedelta(days=days_old))
    return app


def test_sweep_removes_unused_old_registrations_and_expired_tokens(gpt_client, alice, bob, settings):
    settings.OAUTH_UNUSED_CLIENT_DAYS = 7
    old_unused = dcr_app("abandoned", days_old=8)
    new_unused = dcr_app("just registered", days_old=1)
    token_in_process(Client(), gpt_client, alice)
    AccessToken = get_access_token_model()
    # An hour-old access token whose refresh token is alive stays (it anchors the refresh token's
    # idle expiry); one idle past REFRESH_TOKEN_EXPIRE_SECONDS goes with its refresh token.
    AccessToken.objects.filter(user=alice).update(expires=timezone.now() - timedelta(hours=1))
    bob_token = token_in_process(Client(), gpt_client, bob)
    AccessToken.objects.filter(user=bob).update(expires=timezone.now() - timedelta(days=31))
    Grant = get_grant_model()
    Grant.objects.create(
        application=gpt_client.application,
        user=alice,
        code="abandoned-code",
        expires=timezone.now() - timedelta(minutes=5),
        redirect_uri="https://chat.openai.com/aip/g-1/oauth/callback",
        scope="read",
    )

    assert oauth_housekeeping.delay().get() == {"unused_clients_removed": 1}

    names = set(get_application_model().objects.values_list("name", flat=True))
    assert names == {"ChatGPT", "just registered"}
    assert old_unused.name not in names and new_unused.name in names
    assert AccessToken.objects.filter(user=alice).exists()
    assert get_refresh_token_model().objects.filter(user=alice, revoked__isnull=True).exists()
    assert not get_refresh_token_model().objects.filter(user=bob).exists()
    assert not Grant.objects.exists()
    refreshed = Client().post(
        "/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": bob_token["refresh_token"],
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
    )
    assert refreshed.status_code == 400
    assert oauth_housekeeping.delay().get() == {"unused_clients_removed": 0}


def test_unused_registrations_go_after_a_day_by_default():
    dcr_app("yesterday's", days_old=2)
    dcr_app("this morning's", days_old=0)
    assert oauth_housekeeping.delay().get() == {"unused_clients_removed": 1}
    assert list(get_application_model().objects.values_list("name", flat=True)) == ["this morning's"]
