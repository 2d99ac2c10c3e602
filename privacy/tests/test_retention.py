"""Retention: each category is purged at its period and not before, storage before rows, in
bounded batches, idempotently; and the history retention a person chooses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import EventStatus, StripeEvent
from generation import storage
from generation.models import Asset, AssetRole, Generation, Status
from generation.tests.test_gallery import bucket_keys, fund, submit
from privacy.models import ActivityEvent, ActivityKind, PrivacySettings
from privacy.services import retention
from privacy.services.activity import activity_record
from privacy.tasks.retention import apply_retention

pytestmark = pytest.mark.django_db


def days_ago(n: float):
    return timezone.now() - timedelta(days=n)


def test_error_details_of_finished_jobs_go_after_their_period(alice, settings, django_capture_on_commit_callbacks):
    settings.PRIVACY_RETENTION_ERROR_DETAILS_DAYS = 30
    fund(alice, 5)
    old, recent, running = (submit(alice, django_capture_on_commit_callbacks, run=False, prompt="x") for _ in range(3))
    Generation.objects.filter(pk=old.pk).update(
        status=Status.FAILED, finished_at=days_ago(31), error_message="The model failed.", error_detail="HTTP 500 {..}"
    )
    Generation.objects.filter(pk=recent.pk).update(
        status=Status.FAILED, finished_at=days_ago(29), error_detail="HTTP 500 recent"
    )
    Generation.objects.filter(pk=running.pk).update(status=Status.RUNNING, error_detail="retrying after 429")

    assert apply_retention.delay().get()["error_details"] == 1

    old.refresh_from_db(), recent.refresh_from_db(), running.refresh_from_db()
    assert old.error_detail == "" and old.error_message == "The model failed."
    assert recent.error_detail == "HTTP 500 recent"
    assert running.error_detail == "retrying after 429"
    assert retention.retention_error_details_purge() == 0  # a second run finds nothing


def test_stripe_payloads_are_blanked_once_processed_and_old_and_the_id_stays(settings):
    settings.PRIVACY_RETENTION_WEBHOOK_PAYLOADS_DAYS = 30
    payload = {"id": "evt_1", "data": {"object": {"customer_email": "alice@example.com"}}}

    def event(event_id, status, age):
        row = StripeEvent.objects.create(event_id=event_id, type="charge.refunded", payload=payload, status=status)
        StripeEvent.objects.filter(pk=row.pk).update(received_at=days_ago(age))
        return row

    old = event("evt_old", EventStatus.PROCESSED, 31)
    ignored = event("evt_ignored", EventStatus.IGNORED, 40)
    recent = event("evt_recent", EventStatus.PROCESSED, 29)
    unprocessed = event("evt_waiting", EventStatus.FAILED, 40)  # staff may still need to reprocess it

    assert retention.retention_webhook_payloads_purge() == 2
    values = dict(StripeEvent.objects.values_list("event_id", "payload"))
    assert values == {"evt_old": {}, "evt_ignored": {}, "evt_recent": payload, "evt_waiting": payload}
    assert StripeEvent.objects.filter(pk__in=[old.pk, ignored.pk, recent.pk, unprocessed.pk]).count() == 4


def test_ip_addresses_in_the_log_go_after_their_period_and_the_device_stays(alice, settings, monkeypatch):
    settings.PRIVACY_RETENTION_IP_DAYS = 30
    old = [ActivityEvent.objects.create(user=alice, kind="sign_in", ip="203.0.113.7", device="Firefox on Linux",
                                        at=days_ago(31 + i)) for i in range(3)]  # fmt: skip
    recent = ActivityEvent.objects.create(user=alice, kind="sign_in", ip="203.0.113.8", at=days_ago(29))
    monkeypatch.setattr(retention, "BATCH", 2)

    assert retention.retention_ips_purge() == 2  # bounded per run
    assert retention.retention_ips_purge() == 1  # the next run finishes
    assert retention.retention_ips_purge() == 0
    for row in old:
        row.refresh_from_db()
        assert row.ip is None and row.device == "Firefox on Linux"
    recent.refresh_from_db()
    assert recent.ip == "203.0.113.8"


def test_inputs_of_finished_jobs_go_after_their_period_storage_first(
    alice, settings, s3_storage, django_capture_on_commit_callbacks
):
    settings.PRIVACY_RETENTION_INPUTS_DAYS = 90
    fund(alice, 10)
    old = submit(alice, django_capture_on_commit_callbacks, slug="local-restyle", prompt="old edit")
    recent = submit(alice, django_capture_on_commit_callbacks, slug="local-restyle", prompt="recent edit")
    assert old.status == recent.status == Status.SUCCEEDED
    Generation.objects.filter(pk=old.pk).update(finished_at=days_ago(91))
    Generation.objects.filter(pk=recent.pk).update(finished_at=days_ago(89))
    old_input = old.assets.get(role=AssetRole.INPUT)
    old_output = old.assets.get(role=AssetRole.OUTPUT)
    recent_input = recent.assets.get(role=AssetRole.INPUT)

    assert retention.retention_inputs_purge() == 1

    keys = bucket_keys(s3_storage)
    assert old_input.storage_key not in keys
    assert old_output.storage_key in keys and recent_input.storage_key in keys
    assert not Asset.objects.filter(pk=old_input.pk).exists()
    assert Asset.objects.filter(pk=recent_input.pk).exists()
    client = Client()
    client.force_login(alice)
    page = client.get(f"/g/{old.uuid}/").content.decode()
    assert "The input picture was removed 90 days after the job finished" in page
    assert "Download" in page  # the result is still there
    assert retention.retention_inputs_purge() == 0


def test_an_input_whose_object_could_not_be_deleted_keeps_its_row_for_the_next_run(
    alice, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PRIVACY_RETENTION_INPUTS_DAYS = 90
    fund(alice, 5)
    job = submit(alice, django_capture_on_commit_callbacks, slug="local-restyle", prompt="edit")
    Generation.objects.filter(pk=job.pk).update(finished_at=days_ago(100))
    monkeypatch.setattr(storage, "delete_keys", lambda keys: False)  # storage is down
    assert retention.retention_inputs_purge() == 0
    assert job.assets.filter(role=AssetRole.INPUT).exists()
    monkeypatch.undo()
    assert retention.retention_inputs_purge() == 1
    assert not job.assets.filter(role=AssetRole.INPUT).exists()


def test_history_kept_7_days_deletes_older_items_files_and_rows(
    alice, bob, s3_storage, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fund(alice, 10), fund(bob, 5)
    client = Client()
    client.force_login(alice)
    response = client.post("/privacy/retention/", {"days": "7"})
    assert response.status_code == 302
    assert PrivacySettings.objects.get(user=alice).history_retention_days == 7
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.RETENTION_CHANGED, detail__days=7).count() == 1

    old = [submit(alice, capture, prompt="old one"), submit(alice, capture, slug="local-restyle", prompt="old two")]
    new = submit(alice, capture, prompt="new")
    bobs = submit(bob, capture, prompt="bob keeps everything")
    Generation.objects.filter(pk__in=[g.pk for g in old] + [bobs.pk]).update(queued_at=days_ago(8))
    Generation.objects.filter(pk=new.pk).update(queued_at=days_ago(6))
    old_keys = set(Asset.objects.filter(generation__in=old).values_list("storage_key", flat=True))
    assert old_keys and old_keys <= bucket_keys(s3_storage)

    with capture(execute=True):
        done = apply_retention.delay().get()

    assert done["history"] == 2
    assert not old_keys & bucket_keys(s3_storage)
    assert list(Generation.objects.filter(owner=alice)) == [new]
    assert Generation.objects.filter(pk=bobs.pk).exists()
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.GENERATIONS_DELETED)
    assert event.detail == {"count": 2, "reason": "retention", "days": 7}
    assert retention.retention_history_purge() == 0  # idempotent

    page = client.get("/privacy/").content.decode()
    assert "2 generations deleted automatically (history kept 7 days)" in page
    assert "History retention set to: delete after 7 days" in page


def test_retention_choice_is_only_one_of_the_offered_ones(alice):
    client = Client()
    client.force_login(alice)
    client.post("/privacy/retention/", {"days": "1"})
    assert not PrivacySettings.objects.filter(user=alice).exists()
    client.post("/privacy/retention/", {"days": "0"})  # the default already: nothing recorded
    assert not ActivityEvent.objects.filter(user=alice, kind=ActivityKind.RETENTION_CHANGED).exists()


def test_activity_record_helper_still_works_for_the_log(alice):
    activity_record(user=alice, kind=ActivityKind.SIGN_IN)
    assert ActivityEvent.objects.filter(user=alice).count() == 1


def test_run_again_on_an_edit_whose_input_was_purged_is_refused_and_charges_nothing(
    alice, settings, django_capture_on_commit_callbacks
):
    from billing.models import Wallet

    settings.PRIVACY_RETENTION_INPUTS_DAYS = 90
    fund(alice, 5)
    job = submit(alice, django_capture_on_commit_callbacks, slug="local-restyle", prompt="edit")
    Generation.objects.filter(pk=job.pk).update(finished_at=days_ago(91))
    assert retention.retention_inputs_purge() == 1
    balance = Wallet.objects.get(user=alice).balance
    client = Client()
    client.force_login(alice)
    page = client.post(f"/g/{job.uuid}/again/", follow=True).content.decode()
    assert "The input picture of this job was removed 90 days after it finished" in page
    assert Generation.objects.filter(owner=alice).count() == 1
    assert Wallet.objects.get(user=alice).balance == balance


def test_one_beat_run_works_off_a_backlog_larger_than_a_batch(alice, settings, monkeypatch):
    settings.PRIVACY_RETENTION_IP_DAYS = 30
    for i in range(5):
        ActivityEvent.objects.create(user=alice, kind="sign_in", ip="203.0.113.7", at=days_ago(31 + i))
    monkeypatch.setattr(retention, "BATCH", 2)
    done = retention.retention_apply()
    assert done["ips"] == 5
    assert not ActivityEvent.objects.filter(ip__isnull=False).exists()


def test_history_purge_reaches_everyone_not_only_the_first_people(
    alice, bob, monkeypatch, django_capture_on_commit_callbacks
):
    """With room for one person a run, the next run starts after the last one reached."""
    capture = django_capture_on_commit_callbacks
    fund(alice, 5), fund(bob, 5)
    made = {}
    for person in (alice, bob):
        PrivacySettings.objects.create(user=person, history_retention_days=7)
        made[person.pk] = submit(person, capture, prompt="old")
    Generation.objects.update(queued_at=days_ago(8))
    monkeypatch.setattr(retention, "HISTORY_PEOPLE", 1)

    assert retention.retention_history_purge() == 1
    assert retention.retention_history_purge() == 1
    assert not Generation.objects.exists()
