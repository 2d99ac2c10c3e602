"""The activity log's sources outside privacy (sign-in, password, email, deletions, staff credit
adjustments, the dispute flag) and how the privacy centre and the admin show it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import Payment
from billing.services import credits_grant, payment_credits_settle
from generation.tests.test_gallery import fund, make
from privacy.models import ActivityEvent, ActivityKind
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def kinds(user) -> list[str]:
    return list(ActivityEvent.objects.filter(user=user).order_by("at", "id").values_list("kind", flat=True))


def test_sign_in_is_recorded_with_a_coarse_device_and_the_ip(alice):
    client = Client(HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="203.0.113.9")
    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert response.status_code == 302
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.SIGN_IN)
    assert event.device == "Firefox on Windows"
    assert event.ip == "203.0.113.9"
    assert event.actor is None


def test_a_failed_sign_in_records_nothing(alice):
    Client().post("/accounts/login/", {"login": alice.email, "password": "wrong"})
    assert not ActivityEvent.objects.filter(user=alice).exists()


def test_password_change_and_email_added_are_recorded(alice):
    client = Client(HTTP_USER_AGENT=FIREFOX)
    client.force_login(alice)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": "another-long-passphrase-9", "password2": "another-long-passphrase-9"},
    )
    assert response.status_code == 302
    client.post("/accounts/email/", {"action_add": "", "email": "alice.second@example.com"})
    assert ActivityKind.PASSWORD_CHANGED in kinds(alice)
    assert ActivityKind.EMAIL_ADDED in kinds(alice)
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.EMAIL_ADDED)
    assert event.device == "Firefox on Windows"
    assert "alice.second" not in str(event.detail)


def test_deleting_generations_and_the_whole_history_is_recorded_once(alice, django_capture_on_commit_callbacks):
    rows = make(alice, 3)
    client = Client()
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/gallery/delete/", {"selected": [str(rows[0].uuid)], "next": "/gallery/"})
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/gallery/delete-history/", {"confirmation": "delete my history"})
    deleted = ActivityEvent.objects.get(user=alice, kind=ActivityKind.GENERATIONS_DELETED)
    history = ActivityEvent.objects.get(user=alice, kind=ActivityKind.HISTORY_DELETED)
    assert deleted.detail == {"count": 1}
    assert history.detail == {"count": 2}


def test_staff_credit_adjustment_is_recorded_with_the_staff_member_as_actor(client, alice):
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.post(
        "/admin/billing/creditadjustment/add/", {"user": alice.pk, "amount": 40, "reason": "Apology for an outage"}
    )
    assert response.status_code == 302
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.STAFF_CREDITS_ADJUSTED)
    assert event.actor == staff
    assert event.detail == {"amount": 40, "reason": "Apology for an outage"}

    alice_client = Client()
    alice_client.force_login(alice)
    page = alice_client.get("/privacy/").content.decode()
    assert "Added 40 credits: Apology for an outage" in page
    assert "by Atelier staff" in page
    assert "staff@example.com" not in page  # who on the staff is for the back office, not the person


def test_grants_by_the_system_are_not_staff_events(alice):
    credits_grant(user=alice, amount=5, reason="admin_grant", idempotency_key="x")
    assert not ActivityEvent.objects.filter(user=alice, kind=ActivityKind.STAFF_CREDITS_ADJUSTED).exists()


def test_dispute_flag_and_its_clearing_are_recorded(alice):
    fund(alice, 100)
    payment = Payment.objects.create(
        user=alice, kind="pack", stripe_payment_intent_id="pi_1", amount_cents=500, currency="usd", credits=100
    )
    payment_credits_settle(payment=payment, target=100, dispute_status="needs_response", reason="dispute opened")
    payment_credits_settle(payment=payment, target=0, dispute_status="won", reason="dispute won")
    assert kinds(alice)[-2:] == [ActivityKind.STAFF_ACCOUNT_FLAGGED, ActivityKind.STAFF_ACCOUNT_UNFLAGGED]
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.STAFF_ACCOUNT_FLAGGED).get().actor is None


def test_privacy_centre_log_relative_times_device_empty_state_and_show_more(alice, bob):
    client = Client()
    client.force_login(bob)
    ActivityEvent.objects.filter(user=bob).delete()
    page = client.get("/privacy/").content.decode()
    assert "Nothing recorded yet." in page

    now = timezone.now()
    for i in range(14):
        ActivityEvent.objects.create(user=alice, kind="sign_in", device="Safari on iOS", at=now - timedelta(hours=i))
    client.force_login(alice)
    page = client.get("/privacy/").content.decode()
    assert "Safari on iOS" in page
    assert "hours ago" in page
    assert "Show 5 more" in page  # 14 made here + the sign-in force_login records, ten shown
    assert page.count('class="activity-item"') == 15
    assert "203.0.113" not in page


def test_staff_read_the_log_in_the_admin_filtered_by_kind_and_searched_by_email(client, alice, bob):
    ActivityEvent.objects.create(user=alice, kind="sign_in", device="Firefox on Linux")
    ActivityEvent.objects.create(user=bob, kind="export_requested")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    found = client.get("/admin/privacy/activityevent/", {"q": alice.email}).content.decode()
    assert alice.email in found and bob.email not in found
    by_kind = client.get("/admin/privacy/activityevent/", {"kind__exact": "export_requested"}).content.decode()
    assert bob.email in by_kind and alice.email not in by_kind
    event = ActivityEvent.objects.filter(user=alice).first()
    assert client.get(f"/admin/privacy/activityevent/{event.pk}/change/").status_code == 200
    assert client.post(f"/admin/privacy/activityevent/{event.pk}/delete/").status_code == 403
