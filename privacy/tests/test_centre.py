from __future__ import annotations

import pytest
from django.urls import reverse

from privacy.models import ActivityKind
from privacy.services import activity_record, device_label

pytestmark = pytest.mark.django_db

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36 Edg/131.0.0.0"
)


def test_privacy_centre_needs_sign_in(client):
    response = client.get(reverse("privacy:centre"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_privacy_centre_shows_what_is_held_and_the_activity_log(client, alice):
    activity_record(user=alice, kind=ActivityKind.SIGN_IN)
    client.force_login(alice)
    response = client.get(reverse("privacy:centre"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Privacy centre" in page
    assert "Sign-ins recorded" in page
    assert "Signed in" in page


def test_someone_elses_activity_is_not_shown(client, alice, bob):
    activity_record(user=bob, kind=ActivityKind.EXPORT_REQUESTED)
    client.force_login(alice)
    page = client.get(reverse("privacy:centre")).content.decode()
    assert "Data export requested" not in page


@pytest.mark.parametrize(
    ("agent", "label"),
    [(FIREFOX_WINDOWS, "Firefox on Windows"), (SAFARI_IPHONE, "Safari on iOS"), (EDGE, "Edge on Windows"), ("", "")],
)
def test_device_label_is_coarse(agent, label):
    assert device_label(agent) == label


def test_activity_record_keeps_ip_and_device_from_the_request(rf, alice):
    request = rf.get("/", HTTP_USER_AGENT=FIREFOX_WINDOWS, REMOTE_ADDR="203.0.113.9")
    event = activity_record(user=alice, kind=ActivityKind.SIGN_IN, request=request, method="password")
    assert (event.ip, event.device, event.detail) == ("203.0.113.9", "Firefox on Windows", {"method": "password"})
