"""Regressions found in review: each test failed before its fix."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation import services as generation_services
from generation.models import PendingUpload
from privacy.models import ConsentKind, ConsentMethod, ExportStatus
from privacy.services import export as service
from privacy.services.consents import consent_set
from privacy.services.restriction import account_pause
from privacy.services.training import training_dataset_export
from privacy.tests.test_export import big_output, build, history
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class _CompleteFails:
    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def complete_multipart_upload(self, **kwargs):
        raise EndpointConnectionError(endpoint_url="http://s3")


def test_a_multipart_upload_that_fails_to_complete_is_aborted(
    alice, s3_storage, monkeypatch, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    big_output(alice, made[0], 6 * 1024 * 1024)
    real_open = service._open_writer

    def open_writer(key, *, expected_size):
        writer = real_open(key, expected_size=expected_size)
        writer.client = _CompleteFails(writer.client)
        return writer

    monkeypatch.setattr(service, "_open_writer", open_writer)
    export = build(alice, django_capture_on_commit_callbacks)

    assert export.status == ExportStatus.FAILED
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    # The parts (the whole archive) would otherwise stay in the bucket, invisible to listings.
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("whole_history", [True, False])
def test_deleting_from_history_removes_a_ready_export_that_holds_it(
    client, alice, whole_history, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    export = build(alice, django_capture_on_commit_callbacks)
    assert export.status == ExportStatus.READY and default_storage.exists(export.storage_key)
    key = export.storage_key

    with django_capture_on_commit_callbacks(execute=True):
        if whole_history:
            generation_services.generation_history_delete_request(user=alice)
        else:
            generation_services.generations_delete_request(user=alice, ids=[made[0].pk])

    export.refresh_from_db()
    assert not default_storage.exists(key)
    assert export.status == ExportStatus.FAILED and "since deleted" in export.error
    client.force_login(alice)
    page = client.get("/privacy/").content.decode()
    assert "since deleted" in page
    with django_capture_on_commit_callbacks(execute=True):
        again = service.export_request(user=alice)  # a new one at once, without the deleted items
    again.refresh_from_db()
    assert again.status == ExportStatus.READY


def test_the_cookie_notice_can_be_answered_before_the_age_gate(client, db):
    person = UserFactory(age_confirmed_at=None)
    client.force_login(person)
    response = client.post("/privacy/cookies/choice/", {"choice": "essential", "next": "/"})
    assert "atelier_consent" in response.cookies
    assert client.get("/privacy/cookies/").status_code == 200


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_paused_person_with_an_invalid_form_gets_no_upload_kept(client, alice):
    account_pause(user=alice)
    client.force_login(alice)
    upload = SimpleUploadedFile("photo.png", _png(), content_type="image/png")
    response = client.post(
        "/create/?tab=edit",
        {"tab": "edit", "model": "local-restyle", "prompt": "make it winter", "strength": "7", "image": upload},
    )
    assert response.status_code in (200, 400)
    assert PendingUpload.objects.filter(owner=alice).count() == 0


def test_the_training_dataset_leaves_out_someone_whose_erasure_started(alice, tmp_path, monkeypatch):
    consent_set(user=alice, kind=ConsentKind.TRAINING, granted=True, method=ConsentMethod.PRIVACY_CENTRE)
    from privacy.services import training

    # The people query ran while alice was active; erasure (which deactivates at once) started
    # before her turn came.
    monkeypatch.setattr(training, "users_with_consent", lambda **kwargs: type(alice).objects.filter(pk=alice.pk))
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    report = training_dataset_export(out_dir=tmp_path / "set")
    assert report.skipped_people == 1
