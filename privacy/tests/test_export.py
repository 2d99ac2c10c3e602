"""Export ("Download my data"): the ZIP (data.json valid against its schema, media byte-equal to
the stored objects, README), streamed to S3 by multipart upload, owner-only download, the 24-hour
limit, expiry, the email and the privacy-centre section."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import timedelta

import jsonschema
import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason, Payment, PaymentKind
from generation import services as generation_services
from generation.models import Asset, AssetRole, CatalogEntry, Generation, Kind, PendingUpload
from privacy.models import (
    ActivityEvent,
    ActivityKind,
    Consent,
    ConsentEvent,
    ConsentKind,
    ConsentMethod,
    DataExport,
    ExportStatus,
)
from privacy.services import export as service
from privacy.tasks.export import expire_exports

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------------


def png(color=(90, 140, 200), size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def generate(user, capture, prompt: str, slug: str = "local-canvas") -> Generation:
    """A real generation through the offline models: its files are in the configured storage."""
    entry = CatalogEntry.objects.get(slug=slug)
    upload = None
    if entry.kind != Kind.TEXT_TO_IMAGE:
        upload = SimpleUploadedFile("holiday photo.png", png(), content_type="image/png")
    spec = generation_services.GenerationSpec(model=entry, values={"prompt": prompt}, image_upload=upload)
    with capture(execute=True):
        generation = generation_services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def history(user, capture) -> list[Generation]:
    """A person with a bit of everything: credits, two real generations (one with an input picture),
    a kept upload, a consent and its history, a payment with a receipt link, activity."""
    billing.credits_grant(user=user, amount=20, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"t-{user.pk}")
    made = [
        generate(user, capture, "A lighthouse at dawn, oil on canvas"),
        generate(user, capture, "make it snowy", slug="local-restyle"),
    ]
    key = f"users/{user.public_id}/uploads/kept-1.png"
    default_storage.save(key, ContentFile(png((200, 80, 40))))
    PendingUpload.objects.create(
        owner=user, filename="my cat.png", storage_key=key, mime_type="image/png", bytes=len(png((200, 80, 40))),
        width=320, height=240,
    )  # fmt: skip
    Consent.objects.create(user=user, kind=ConsentKind.MARKETING, granted=True, wording_version="2026-11")
    ConsentEvent.objects.create(
        user=user, kind=ConsentKind.MARKETING, granted=True, wording_version="2026-11",
        method=ConsentMethod.PRIVACY_CENTRE,
    )  # fmt: skip
    Payment.objects.create(
        user=user, kind=PaymentKind.PACK, amount_cents=900, currency="usd", credits=100,
        receipt_url="https://pay.stripe.com/receipts/acct_1/ch_1/rcpt_1", idempotency_key=f"pay-{user.pk}",
        stripe_charge_id="ch_1",
    )  # fmt: skip
    ActivityEvent.objects.create(user=user, kind=ActivityKind.SIGN_IN, device="Firefox on Linux")
    return made


def build(user, capture) -> DataExport:
    with capture(execute=True):
        export = service.export_request(user=user)
    export.refresh_from_db()
    return export


def read_stored(key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        return handle.read()


def open_zip(export: DataExport) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(read_stored(export.storage_key)))


# --- the ZIP ---------------------------------------------------------------------------------------


def test_the_zip_has_data_json_valid_against_its_schema_readme_and_every_file(
    alice, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    export = build(alice, django_capture_on_commit_callbacks)

    assert export.status == ExportStatus.READY
    assert export.storage_key == f"users/{alice.public_id}/exports/{export.uuid}.zip"
    assert export.size_bytes == default_storage.size(export.storage_key)
    archive = open_zip(export)
    assert archive.testzip() is None
    names = archive.namelist()
    assert {"data.json", "data.schema.json", "README.txt"} <= set(names)

    data = json.loads(archive.read("data.json"))
    schema = json.loads(archive.read("data.schema.json"))
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    assert data["profile"]["email"] == "alice@example.com"
    assert [c["kind"] for c in data["consents"]["current"]] == ["marketing"]
    assert data["consents"]["history"][0]["method"] == "privacy_centre"
    assert data["payments"]["invoices"][0]["url"].startswith("https://pay.stripe.com/receipts/")
    assert data["credits"]["ledger"][0]["amount"] == 20
    assert [g["prompt"] for g in data["generations"]] == [g.prompt for g in made]
    assert data["generations"][1]["parameters"] == made[1].params

    # Every input, output and poster is in media/, byte for byte, where data.json says it is.
    stored = Asset.objects.filter(generation__owner=alice).exclude(role=AssetRole.THUMBNAIL)
    assert stored.filter(role=AssetRole.INPUT).exists()
    listed = {a["uuid"]: a["file"] for g in data["generations"] for a in g["assets"]}
    for asset in stored:
        name = listed[str(asset.uuid)]
        assert name.startswith("media/") and name in names
        assert archive.read(name) == read_stored(asset.storage_key)
    output = stored.get(generation=made[0], role=AssetRole.OUTPUT)
    day = timezone.localtime(made[0].queued_at).strftime("%Y-%m-%d")
    assert (
        listed[str(output.uuid)]
        == f"media/{day}_a-lighthouse-at-dawn-oil-on-canvas_{str(made[0].uuid)[:8]}/output-1.png"
    )
    # Thumbnails are listed without a file; the kept upload is there under its own name.
    thumbs = [a for g in data["generations"] for a in g["assets"] if a["role"] == "thumbnail"]
    assert thumbs and all(a["file"] is None for a in thumbs)
    kept = data["kept_uploads"][0]
    assert kept["file"].startswith("media/kept-uploads/") and kept["file"].endswith("_my cat.png")
    assert archive.read(kept["file"]) == read_stored(PendingUpload.objects.get(owner=alice).storage_key)
    media = [n for n in names if n.startswith("media/")]
    assert len(media) == stored.count() + 1
    assert export.files_total == export.files_done == len(media) + 3

    readme = archive.read("README.txt").decode()
    assert "YOUR ATELIER DATA" in readme and "data.json" in readme and "alice@example.com" in readme
    assert "{%" not in readme and "{{" not in readme


def test_secrets_are_left_out(alice, django_capture_on_commit_callbacks):
    from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken

    from billing.models import CheckoutKind, CheckoutSession

    account = SocialAccount.objects.create(
        user=alice, provider="google", uid="1234",
        extra_data={"name": "Alice", "email": "alice@example.com", "id_token": "eyJ-secret", "access_token": "ya29"},
    )  # fmt: skip
    app = SocialApp.objects.create(provider="google", name="Google", client_id="cid", secret="app-secret")
    SocialToken.objects.create(app=app, account=account, token="ya29.TOKEN", token_secret="refresh-SECRET")
    CheckoutSession.objects.create(
        user=alice, stripe_session_id="cs_test_1", kind=CheckoutKind.PACK,
        url="https://checkout.stripe.com/c/pay/cs_test_1#fidkdWxOYHwnPyd1blpxYHZxWjA0SECRET",
    )  # fmt: skip
    export = build(alice, django_capture_on_commit_callbacks)
    raw = open_zip(export).read("data.json").decode()
    data = json.loads(raw)
    assert data["connected_accounts"][0]["profile_data"] == {"name": "Alice", "email": "alice@example.com"}
    assert data["payments"]["checkout_sessions"][0]["stripe_session_id"] == "cs_test_1"
    for secret in ("ya29", "SECRET", "eyJ-secret", "app-secret", "fidkdWx", alice.password):
        assert secret not in raw


def test_a_file_gone_from_storage_is_listed_without_a_file(alice, django_capture_on_commit_callbacks):
    made = history(alice, django_capture_on_commit_callbacks)
    output = Asset.objects.get(generation=made[0], role=AssetRole.OUTPUT)
    default_storage.delete(output.storage_key)
    export = build(alice, django_capture_on_commit_callbacks)
    assert export.status == ExportStatus.READY
    data = json.loads(open_zip(export).read("data.json"))
    listed = {a["uuid"]: a["file"] for g in data["generations"] for a in g["assets"]}
    assert listed[str(output.uuid)] is None
    assert "could not be found" in open_zip(export).read("README.txt").decode()


# --- S3: multipart, streamed ------------------------------------------------------------------------


@pytest.fixture
def small_parts(monkeypatch):
    """S3's smallest part size, so a few MiB make several parts."""
    monkeypatch.setattr(service, "PART_SIZE", 5 * 1024 * 1024)


def big_output(user, generation, size: int) -> tuple[Asset, bytes]:
    """A large output (incompressible bytes) stored next to the generation's own."""
    content = os.urandom(size)
    key = f"{generation.storage_prefix}/output-9.glb"
    default_storage.save(key, ContentFile(content))
    asset = Asset.objects.create(
        generation=generation, role=AssetRole.OUTPUT, index=9, storage_key=key, mime_type="model/gltf-binary",
        bytes=size, sha256="0" * 64,
    )  # fmt: skip
    return asset, content


def test_on_s3_the_zip_is_a_multipart_upload_under_the_users_prefix(
    alice, s3_storage, small_parts, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    asset, content = big_output(alice, made[0], 7 * 1024 * 1024)
    export = build(alice, django_capture_on_commit_callbacks)

    assert export.status == ExportStatus.READY
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"users/{alice.public_id}/exports/")
    assert [o["Key"] for o in listed["Contents"]] == [export.storage_key]
    head = client.head_object(Bucket=bucket, Key=export.storage_key)
    assert head["ETag"].strip('"').endswith("-2")  # S3's mark of a two-part multipart upload
    assert head["ContentLength"] == export.size_bytes > 7 * 1024 * 1024
    assert head["ContentType"] == "application/zip"
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    body = client.get_object(Bucket=bucket, Key=export.storage_key)["Body"].read()
    archive = zipfile.ZipFile(io.BytesIO(body))
    data = json.loads(archive.read("data.json"))
    jsonschema.validate(data, json.loads(archive.read("data.schema.json")))
    name = next(a["file"] for g in data["generations"] for a in g["assets"] if a["uuid"] == str(asset.uuid))
    assert name.endswith("/output-10.glb")
    assert archive.read(name) == content
    for other in Asset.objects.filter(generation__owner=alice).exclude(role=AssetRole.THUMBNAIL).exclude(pk=asset.pk):
        stored = client.get_object(Bucket=bucket, Key=other.storage_key)["Body"].read()
        assert (
            archive.read(
                next(a["file"] for g in data["generations"] for a in g["assets"] if a["uuid"] == str(other.uuid))
            )
            == stored
        )


def test_a_failure_on_s3_aborts_the_upload_and_allows_a_retry_at_once(
    alice, s3_storage, small_parts, monkeypatch, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    big_output(alice, made[0], 6 * 1024 * 1024)
    real_copy = service._copy_media
    calls = []

    def breaks_on_the_second_file(archive, item, chunks):
        calls.append(item)
        if len(calls) == 2:
            raise ConnectionResetError("storage went away")
        return real_copy(archive, item, chunks)

    monkeypatch.setattr(service, "_copy_media", breaks_on_the_second_file)
    export = build(alice, django_capture_on_commit_callbacks)

    assert export.status == ExportStatus.FAILED
    assert "storage was unavailable" in export.error
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    assert client.list_objects_v2(Bucket=bucket, Prefix=f"users/{alice.public_id}/exports/").get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert mail.outbox == []

    monkeypatch.setattr(service, "_copy_media", real_copy)
    retry = build(alice, django_capture_on_commit_callbacks)  # no 24-hour wait after a failure
    assert retry.status == ExportStatus.READY


def test_the_signed_link_on_s3_downloads_the_zip(alice, client, s3_storage, django_capture_on_commit_callbacks):
    import urllib.request

    history(alice, django_capture_on_commit_callbacks)
    export = build(alice, django_capture_on_commit_callbacks)
    client.force_login(alice)
    response = client.get(reverse("privacy:export_download", args=[export.uuid]))
    assert response.status_code == 302
    url = response["Location"]
    assert url.startswith(s3_storage["endpoint"]) and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the local S3 API server
        assert answer.headers["Content-Disposition"].startswith("attachment;")
        assert zipfile.ZipFile(io.BytesIO(answer.read())).testzip() is None


# --- asking, the limit, the task ---------------------------------------------------------------------


def test_one_export_per_day_with_a_clear_reason_and_when(alice, django_capture_on_commit_callbacks):
    first = build(alice, django_capture_on_commit_callbacks)
    assert first.status == ExportStatus.READY
    with pytest.raises(service.ExportTooSoon) as refused:
        service.export_request(user=alice)
    assert refused.value.next_at == first.requested_at + timedelta(hours=24)
    assert "one export every 24 hours" in str(refused.value)
    assert refused.value.status == 429
    assert DataExport.objects.filter(user=alice).count() == 1
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.EXPORT_REQUESTED).count() == 1

    DataExport.objects.filter(pk=first.pk).update(requested_at=timezone.now() - timedelta(hours=24, minutes=1))
    assert build(alice, django_capture_on_commit_callbacks).status == ExportStatus.READY


def test_an_export_in_progress_says_so(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        service.export_request(user=alice)  # its task not run: stays queued
    with pytest.raises(service.ExportTooSoon) as refused:
        service.export_request(user=alice)
    assert refused.value.in_progress
    assert "already being prepared" in str(refused.value)


def test_the_task_is_idempotent(alice, django_capture_on_commit_callbacks):
    from privacy.tasks.export import build_export

    export = build(alice, django_capture_on_commit_callbacks)
    finished = export.finished_at
    build_export.delay(export.pk)  # a redelivery
    export.refresh_from_db()
    assert (export.status, export.finished_at) == (ExportStatus.READY, finished)
    assert len(mail.outbox) == 1


def test_a_stale_running_export_is_taken_over(alice):
    export = DataExport.objects.create(
        user=alice, status=ExportStatus.RUNNING, started_at=timezone.now() - timedelta(hours=2)
    )
    assert service.export_build(export_id=export.pk).status == ExportStatus.READY
    fresh = DataExport.objects.create(user=alice, status=ExportStatus.RUNNING, started_at=timezone.now())
    assert service.export_build(export_id=fresh.pk) is None


# --- email and download -------------------------------------------------------------------------------


def test_the_person_gets_an_email_with_the_owner_only_link(alice, django_capture_on_commit_callbacks, settings):
    settings.SITE_URL = "https://atelier.example"
    export = build(alice, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "[Atelier] Your data export is ready"
    assert f"https://atelier.example/privacy/exports/{export.uuid}/" in message.body
    assert export.storage_key not in message.body  # the link, never the file's address


def test_download_is_owner_only_and_each_click_is_recorded(client, alice, bob, django_capture_on_commit_callbacks):
    export = build(alice, django_capture_on_commit_callbacks)
    url = reverse("privacy:export_download", args=[export.uuid])

    assert client.get(url).status_code == 302  # signed out: to the sign-in page
    assert "/accounts/login/" in client.get(url)["Location"]
    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert client.get(reverse("privacy:export_status", args=[export.uuid])).status_code == 404

    client.force_login(alice)
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Cache-Control"] == "no-store"
    file_response = client.get(response["Location"])  # local storage: the signed file link
    assert file_response.status_code == 200
    assert 'filename="atelier-export-' in file_response["Content-Disposition"]
    assert zipfile.ZipFile(io.BytesIO(b"".join(file_response.streaming_content))).read("README.txt")
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.EXPORT_DOWNLOADED).count() == 2
    assert ActivityEvent.objects.filter(user=bob, kind=ActivityKind.EXPORT_DOWNLOADED).count() == 0
    export.refresh_from_db()
    assert export.downloaded_at is not None


def test_a_download_before_it_is_ready_goes_back_to_the_centre(client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        export = service.export_request(user=alice)
    client.force_login(alice)
    response = client.get(reverse("privacy:export_download", args=[export.uuid]))
    assert response.status_code == 302 and response["Location"] == reverse("privacy:centre")


# --- expiry ----------------------------------------------------------------------------------------------


def test_expiry_deletes_the_zip_and_the_link_says_expired(client, alice, django_capture_on_commit_callbacks):
    export = build(alice, django_capture_on_commit_callbacks)
    assert export.expires_at - export.finished_at == timedelta(days=7)
    assert default_storage.exists(export.storage_key)
    assert expire_exports.delay().get() == 0  # not due yet

    DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert expire_exports.delay().get() == 1
    export.refresh_from_db()
    assert export.status == ExportStatus.EXPIRED
    assert not default_storage.exists(export.storage_key)

    client.force_login(alice)
    response = client.get(reverse("privacy:export_download", args=[export.uuid]))
    assert response.status_code == 410
    assert "This export has expired" in response.content.decode()
    assert not ActivityEvent.objects.filter(user=alice, kind=ActivityKind.EXPORT_DOWNLOADED).exists()
    section = client.get(reverse("privacy:centre")).content.decode()
    assert 'data-export-status="expired"' in section


def test_expiry_on_s3_deletes_the_object(alice, s3_storage, django_capture_on_commit_callbacks):
    export = build(alice, django_capture_on_commit_callbacks)
    DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert expire_exports.delay().get() == 1
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    assert client.list_objects_v2(Bucket=bucket, Prefix=f"users/{alice.public_id}/exports/").get("KeyCount") == 0


# --- the privacy-centre section ----------------------------------------------------------------------------


def test_the_section_asks_polls_and_offers_the_download(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice)
    page = client.get(reverse("privacy:centre")).content.decode()
    assert "Download my data" in page
    assert f'action="{reverse("privacy:export_request")}"' in page

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(reverse("privacy:export_request"))
    assert response.status_code == 302
    export = DataExport.objects.get(user=alice)
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.EXPORT_REQUESTED)
    assert event.detail == {"export": str(export.uuid)}
    status_url = reverse("privacy:export_status", args=[export.uuid])
    page = client.get(reverse("privacy:centre")).content.decode()
    assert f'hx-get="{status_url}"' in page and "Queued" in page
    assert "Download my data</button>" not in page

    for callback in queued:
        callback()
    fragment = client.get(status_url).content.decode()
    assert "hx-get" not in fragment  # final: polling stops
    assert "Ready" in fragment and reverse("privacy:export_download", args=[export.uuid]) in fragment
    assert "the next is possible from" in fragment

    again = client.post(reverse("privacy:export_request"), follow=True).content.decode()
    assert "one export every 24 hours" in again
    assert DataExport.objects.filter(user=alice).count() == 1


def test_a_failed_export_shows_the_reason_and_a_retry(client, alice):
    DataExport.objects.create(
        user=alice, status=ExportStatus.FAILED, error="Our file storage was unavailable while preparing your export."
    )
    client.force_login(alice)
    page = client.get(reverse("privacy:centre")).content.decode()
    assert "Our file storage was unavailable" in page
    assert "Try again</button>" in page


def test_asking_needs_a_post_with_csrf(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.get(reverse("privacy:export_request")).status_code == 405
    assert strict.post(reverse("privacy:export_request")).status_code == 403
    assert not DataExport.objects.filter(user=alice).exists()


def test_staff_see_exports_read_only_in_the_admin(client, alice, django_capture_on_commit_callbacks):
    from tests.factories import UserFactory

    build(alice, django_capture_on_commit_callbacks)
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = client.get("/admin/privacy/dataexport/")
    assert page.status_code == 200 and "alice@example.com" in page.content.decode()
    assert client.get("/admin/privacy/dataexport/add/").status_code == 403


@pytest.mark.parametrize("in_flight", [0, 1, 2])
def test_the_multipart_writer_sends_parts_in_order_whatever_is_in_flight(s3_storage, monkeypatch, in_flight):
    monkeypatch.setattr(service, "UPLOADS_IN_FLIGHT", in_flight)
    client, bucket = s3_storage["client"], s3_storage["bucket"]
    content = os.urandom(11 * 1024 * 1024 + 123)
    with service.S3MultipartWriter(client, bucket, "users/x/exports/t.zip") as writer:
        for start in range(0, len(content), 100_000):
            writer.write(content[start : start + 100_000])
    stored = client.get_object(Bucket=bucket, Key="users/x/exports/t.zip")
    assert stored["ETag"].strip('"').endswith("-3")
    assert stored["Body"].read() == content


def test_an_export_that_never_finished_is_failed_by_beat_so_the_person_can_ask_again(alice):
    old = timezone.now() - timedelta(hours=2)
    queued = DataExport.objects.create(user=alice, requested_at=old)
    running = DataExport.objects.create(user=alice, status=ExportStatus.RUNNING, requested_at=old, started_at=old)
    recent = DataExport.objects.create(user=alice, status=ExportStatus.RUNNING, started_at=timezone.now())
    expire_exports.delay()
    for export in (queued, running, recent):
        export.refresh_from_db()
    assert (queued.status, running.status, recent.status) == ("failed", "failed", "running")
    assert "took too long" in queued.error
    assert service.export_build(export_id=queued.pk) is None  # a late delivery does nothing


def test_an_account_being_erased_mid_build_keeps_no_archive(alice, monkeypatch):
    """Erasure deactivates the account at once and sweeps its storage prefix; an export that was
    being written meanwhile must not leave its ZIP behind after the sweep."""
    export = DataExport.objects.create(user=alice)
    real_write = service._write_archive

    def write_then_erasure_starts(export, key):
        size = real_write(export, key)
        type(alice).objects.filter(pk=alice.pk).update(is_active=False)  # account_erasure_start
        return size

    monkeypatch.setattr(service, "_write_archive", write_then_erasure_starts)
    service.export_build(export_id=export.pk)

    export.refresh_from_db()
    assert export.status == ExportStatus.RUNNING and not export.storage_key
    assert not default_storage.exists(service.export_key(export))
    assert len(mail.outbox) == 0


def test_no_archive_is_built_for_a_deactivated_account(alice):
    export = DataExport.objects.create(user=alice)
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    assert service.export_build(export_id=export.pk) is None
    assert not default_storage.exists(service.export_key(export))
