"""Export ("Download my data"): one ZIP with everything Atelier holds about a person.

The archive holds `data.json` (every row about the person, described by `data.schema.json`), that
schema, a `README.txt` in plain words and every stored file under `media/` with a readable name
(`media/2026-11-25_a-lighthouse-at-dawn_ab12cd34/output-1.png`).

It is streamed: `zipfile` writes to a non-seekable writer (so each entry ends with a data
descriptor and nothing is rewound), and each media file is read from storage in chunks. The
writer sends the archive straight to storage: on S3 a multipart upload (one 5 MiB part buffer,
reused; see UPLOADS_IN_FLIGHT), on local storage a file renamed into place when complete.
Neither the archive nor any whole file is held in memory; `data.json` itself is written row by
row.

What is in `data.json` and what is not is decided here, in `EXPORTED` and `EXCLUSIONS`; the
completeness test (privacy/tests/test_export_completeness.py) walks every model linked to the
user and fails when one is in neither.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import smtplib
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import slugify

from config.errors import ApplicationError
from generation import storage
from privacy.models import ActivityKind, DataExport, ExportStatus
from privacy.services.activity import activity_record

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "export_schema.json"
FORMAT_VERSION = 1
# S3 needs parts of at least 5 MiB (but the last) and at most 10,000 of them: 5 MiB, or more for
# a very big archive. Memory: one part being filled plus UPLOADS_IN_FLIGHT more being sent by
# threads. 0 sends each part inline: bench/export.py measured no slower that way against a local S3
# server (reading the next files ahead hides it) and 5.5 MiB less; against remote S3, 1 overlaps
# the upload with the reading at the cost of one more part buffer.
PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 9_000
UPLOADS_IN_FLIGHT = 0
# Stored files asked for ahead of the one being copied (their bodies wait in the socket).
PREFETCH = 4
READ_CHUNK = 256 * 1024
# Rows loaded at a time while writing data.json (a generation's assets are loaded with its batch).
ROWS_PER_BATCH = 250
# Progress is saved at most this often (seconds), not per file.
PROGRESS_EVERY = 1.0
# A build that has been "running" this long died with its worker; a redelivered task takes it over.
STALE_AFTER = timedelta(minutes=70)
# Roles whose files go in the ZIP. Thumbnails are smaller copies Atelier made of the outputs; the
# outputs themselves are there, so the thumbnails are listed in data.json but not copied.
MEDIA_ROLES = ("input", "output", "poster")


# --- errors --------------------------------------------------------------------------------------


class ExportError(ApplicationError):
    """Base class. `str(exc)` is a sentence for the person; `status` the HTTP status it maps to."""

    status = 400
    type = "export_refused"


class ExportTooSoon(ExportError):
    """An export was already made (or is being made) within PRIVACY_EXPORT_MIN_INTERVAL_HOURS."""

    status = 429
    type = "rate_limited"

    def __init__(self, *, next_at: datetime, in_progress: bool):
        self.next_at = next_at
        self.in_progress = in_progress
        when = date_format(timezone.localtime(next_at), "j M Y, H:i T")
        if in_progress:
            message = "Your export is already being prepared; we will email you when it is ready."
        else:
            hours = settings.PRIVACY_EXPORT_MIN_INTERVAL_HOURS
            message = f"You can ask for one export every {hours} hours. The next one is possible from {when}."
        super().__init__(message)


class ExportExpired(ExportError):
    status = 410

    def __init__(self):
        super().__init__("This export has expired and its file was deleted. You can ask for a new one.")


class ExportNotReady(ExportError):
    status = 409

    def __init__(self):
        super().__init__("This export is not ready yet.")


# --- request ---------------------------------------------------------------------------------------


@transaction.atomic
def export_request(*, user, request=None) -> DataExport:
    """Ask for a new export: one per PRIVACY_EXPORT_MIN_INTERVAL_HOURS unless the last one failed.
    Records EXPORT_REQUESTED and queues the build once the transaction commits."""
    # The person's row lock makes two clicks at once one export, not two.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    now = timezone.now()
    last = DataExport.objects.filter(user=user).order_by("-requested_at", "-id").first()
    if last is not None and last.status != ExportStatus.FAILED:
        next_at = last.requested_at + timedelta(hours=settings.PRIVACY_EXPORT_MIN_INTERVAL_HOURS)
        if next_at > now:
            in_progress = last.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)
            raise ExportTooSoon(next_at=next_at, in_progress=in_progress)
    export = DataExport.objects.create(user=user, requested_at=now)
    activity_record(user=user, kind=ActivityKind.EXPORT_REQUESTED, request=request, export=str(export.uuid))
    from privacy.tasks.export import build_export

    transaction.on_commit(lambda: build_export.delay(export.pk))
    return export


def export_key(export: DataExport) -> str:
    return f"users/{export.user.public_id}/exports/{export.uuid}.zip"


def export_next_allowed_at(*, user) -> datetime | None:
    """When the person may ask again (None: now)."""
    last = DataExport.objects.filter(user=user).order_by("-requested_at", "-id").first()
    if last is None or last.status == ExportStatus.FAILED:
        return None
    next_at = last.requested_at + timedelta(hours=settings.PRIVACY_EXPORT_MIN_INTERVAL_HOURS)
    return next_at if next_at > timezone.now() else None


# --- download --------------------------------------------------------------------------------------


def export_open(*, export: DataExport, request=None) -> str:
    """A short-lived signed URL (PRIVACY_EXPORT_LINK_SECONDS) for the owner to download the ZIP;
    records EXPORT_DOWNLOADED for this click. The caller checked ownership."""
    if export.status == ExportStatus.EXPIRED or (export.expires_at and export.expires_at <= timezone.now()):
        raise ExportExpired()
    if export.status != ExportStatus.READY:
        raise ExportNotReady()
    now = timezone.now()
    DataExport.objects.filter(pk=export.pk).update(downloaded_at=now)
    activity_record(user=export.user, kind=ActivityKind.EXPORT_DOWNLOADED, request=request, export=str(export.uuid))
    filename = f"atelier-export-{timezone.localtime(export.requested_at):%Y-%m-%d}.zip"
    return _signed_url(export.storage_key, filename=filename, ttl=settings.PRIVACY_EXPORT_LINK_SECONDS)


def _signed_url(key: str, *, filename: str, ttl: int) -> str:
    """S3: a presigned GET valid `ttl` seconds; local files: the signed file link (valid `ttl`)."""
    s3 = _s3()
    if s3 is None or settings.AWS_S3_PUBLIC_ENDPOINT_URL:
        # Local files, or a bucket browsers reach at another address: the generation files' signer
        # (for the public endpoint it signs for the storage's querystring_expire).
        return storage.access_url(key, filename=filename, download=True, ttl=ttl)
    disposition = f'attachment; filename="{storage.safe_filename(filename, key)}"'
    parameters = {"ResponseContentDisposition": disposition, "ResponseContentType": "application/zip"}
    return default_storage.url(key, parameters=parameters, expire=ttl)


# --- build -----------------------------------------------------------------------------------------


def export_build(*, export_id: int) -> DataExport | None:
    """Build the ZIP of one export (the task's body). Idempotent: a ready, failed or expired export
    is left alone, and a running one only taken over when its worker is gone (STALE_AFTER)."""
    now = timezone.now()
    claimable = Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, started_at__lt=now - STALE_AFTER)
    # An account being erased (deactivated at once) gets no new archive.
    claimed = DataExport.objects.filter(claimable, pk=export_id, user__is_active=True).update(
        status=ExportStatus.RUNNING, started_at=now, files_done=0, error=""
    )
    if not claimed:
        return None
    export = DataExport.objects.select_related("user").get(pk=export_id)
    key = export_key(export)
    try:
        size = _write_archive(export, key)
    except Exception as exc:  # noqa: BLE001 - any failure fails the export; the person may retry at once
        logger.exception("export %s failed", export.uuid)
        storage.delete_keys([key])
        message = "We could not prepare your export. Please ask again; if it keeps failing, write to us."
        if isinstance(exc, storage.STORAGE_ERRORS):
            message = "Our file storage was unavailable while preparing your export. Please ask again."
        DataExport.objects.filter(pk=export.pk, status=ExportStatus.RUNNING).update(
            status=ExportStatus.FAILED, finished_at=timezone.now(), error=message[:300]
        )
        export.refresh_from_db()
        return export
    finished = timezone.now()
    # Erasure may have started while the archive was written, after its storage sweep had looked:
    # then the row is gone or its person deactivated, and the archive must not outlive them.
    moved = DataExport.objects.filter(pk=export.pk, status=ExportStatus.RUNNING, user__is_active=True).update(
        status=ExportStatus.READY,
        finished_at=finished,
        expires_at=finished + timedelta(days=settings.PRIVACY_EXPORT_TTL_DAYS),
        storage_key=key,
        size_bytes=size,
        files_done=export.files_total,
    )
    if not moved:
        storage.delete_keys([key])
        return DataExport.objects.filter(pk=export.pk).first()
    export.refresh_from_db()
    _email_ready(export)
    return export


def _write_archive(export: DataExport, key: str) -> int:
    """Write the whole ZIP to storage under `key`; returns its size in bytes."""
    plan = Plan(export.user)
    DataExport.objects.filter(pk=export.pk).update(files_total=plan.files + 3)
    export.files_total = plan.files + 3
    progress = _Progress(export.pk)
    # The media plus room for data.json: sizes the upload's parts (S3 allows 10,000 of them).
    expected = plan.bytes + 256 * 1024 * 1024
    with _open_writer(key, expected_size=expected) as writer:
        with zipfile.ZipFile(writer, mode="w", allowZip64=True) as archive:
            missing: set[str] = set()
            for item, chunks in _sources(plan.media()):
                if not _copy_media(archive, item, chunks):
                    missing.add(item.key)
                progress.step()
            _write_text(archive, "data.json", _data_json_chunks(export, plan, missing))
            progress.step()
            _write_text(archive, "data.schema.json", [SCHEMA_PATH.read_bytes()])
            progress.step()
            readme = render_to_string(
                "privacy/export_readme.txt",
                {
                    "export": export,
                    "user": export.user,
                    "files": plan.files,
                    "missing": len(missing),
                    "site": settings.SITE_URL.rstrip("/"),
                    "contact": settings.PRIVACY_CONTACT_EMAIL,
                    "ttl_days": settings.PRIVACY_EXPORT_TTL_DAYS,
                },
            )
            _write_text(archive, "README.txt", [readme.encode()])
            progress.step()
        progress.flush()
        return writer.size


class _Progress:
    """files_done, saved at most every PROGRESS_EVERY seconds."""

    def __init__(self, pk: int):
        self.pk = pk
        self.done = 0
        self.saved_at = time.monotonic()

    def step(self) -> None:
        self.done += 1
        if time.monotonic() - self.saved_at >= PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        DataExport.objects.filter(pk=self.pk).update(files_done=self.done)
        self.saved_at = time.monotonic()


# --- what goes in: the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaItem:
    key: str  # in storage
    name: str  # in the ZIP
    size: int
    modified: datetime


class Plan:
    """What goes under media/, without holding it: the stored files are listed in batches while
    they are copied (their names follow from their rows, see media_name); only the few kept
    uploads, whose names may repeat, are named up front."""

    def __init__(self, user):
        from generation.models import Asset, PendingUpload

        self.user = user
        self.assets = Asset.objects.filter(generation__owner=user, role__in=MEDIA_ROLES)
        self.uploads = _kept_upload_items(PendingUpload.objects.filter(owner=user))
        self.upload_names = {item.key: item.name for item in self.uploads}
        totals = self.assets.aggregate(files=Count("id"), bytes=Sum("bytes"))
        self.files = (totals["files"] or 0) + len(self.uploads)
        self.bytes = (totals["bytes"] or 0) + sum(item.size for item in self.uploads)

    def media(self) -> Iterator[MediaItem]:
        last = 0
        while True:
            rows = list(
                self.assets.filter(pk__gt=last)
                .order_by("pk")
                .values_list("pk", "storage_key", "bytes", "role", "index", "created_at", "generation__uuid",
                             "generation__queued_at", "generation__prompt")[:ROWS_PER_BATCH]
            )  # fmt: skip
            if not rows:
                break
            for _, key, size, role, index, created, gen_uuid, queued_at, prompt in rows:
                yield MediaItem(key, media_name(queued_at, prompt, gen_uuid, role, index, key), size, created)
            last = rows[-1][0]
        yield from self.uploads

    def name_of(self, key: str, *, role: str, generation, index: int) -> str | None:
        """An asset's name in the ZIP (None for roles not copied, e.g. thumbnails)."""
        if role not in MEDIA_ROLES:
            return None
        return media_name(generation.queued_at, generation.prompt, generation.uuid, role, index, key)


def _kept_upload_items(uploads) -> list[MediaItem]:
    """Kept uploads under media/kept-uploads/ by day and their own (safe) name, numbered when two
    share one."""
    seen: set[str] = set()
    items = []
    for key, size, filename, created in uploads.order_by("created_at", "pk").values_list(
        "storage_key", "bytes", "filename", "created_at"
    ):
        base = f"media/kept-uploads/{created:%Y-%m-%d}_{storage.safe_filename(filename, key)}"
        stem, dot, ext = base.rpartition(".")
        name, n = base, 2
        while name in seen:
            name = f"{stem}-{n}{dot}{ext}" if dot else f"{base}-{n}"
            n += 1
        seen.add(name)
        items.append(MediaItem(key, name, size, created))
    return items


def media_name(queued_at: datetime, prompt: str, gen_uuid, role: str, index: int, key: str) -> str:
    """`media/2026-11-25_a-lighthouse-at-dawn_ab12cd34/output-1.png`: the day, the prompt's first
    words (ASCII), the start of the generation's id; then the file's role and number with the
    stored file's extension."""
    day = timezone.localtime(queued_at).strftime("%Y-%m-%d")
    words = slugify(prompt or "")[:48].rstrip("-") or "untitled"
    stored = key.rsplit("/", 1)[-1]
    ext = stored.rsplit(".", 1)[-1].lower() if "." in stored else "bin"
    return f"media/{day}_{words}_{str(gen_uuid)[:8]}/{role}-{index + 1}.{ext}"


# --- reading from and writing to storage ----------------------------------------------------------------


def _s3():
    """(client, bucket, name) for the S3 storage, or None for local files."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is a pinned dependency
        return None
    if not isinstance(default_storage, S3Storage):
        return None
    # The storage's own client and its key normalisation (its `location` prefix), without going
    # through S3File, which would download each whole object into a temp file first.
    return default_storage.connection.meta.client, default_storage.bucket_name, default_storage._normalize_name


def _sources(media: Iterator[MediaItem]) -> Iterator[tuple[MediaItem, Iterator[bytes] | None]]:
    """Each stored file with its bytes in chunks (None when the object is gone). On S3 the next
    PREFETCH objects are asked for ahead, by threads, so the server prepares them while the
    current one is copied; a response's body is read only when its turn comes (until then it waits
    in the socket, not in memory)."""
    s3 = _s3()
    if s3 is None:
        for item in media:
            yield item, _local_chunks(item.key)
        return
    client, bucket, name = s3

    def get(item: MediaItem):
        try:
            return client.get_object(Bucket=bucket, Key=name(item.key))["Body"]
        except client.exceptions.NoSuchKey:
            return None

    upcoming = iter(media)
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="export-read") as pool:
        try:
            for item in islice(upcoming, PREFETCH):
                pending.append((item, pool.submit(get, item)))
            while pending:
                item, future = pending.popleft()
                body = future.result()
                following = next(upcoming, None)
                if following is not None:
                    pending.append((following, pool.submit(get, following)))
                yield item, (None if body is None else _closing_chunks(body.iter_chunks(READ_CHUNK), body))
        finally:
            for _, future in pending:  # a failure halfway: let go of the responses asked for ahead
                if not future.cancel() and future.exception() is None and future.result() is not None:
                    future.result().close()


def _local_chunks(key: str) -> Iterator[bytes] | None:
    try:
        handle = default_storage.open(key, "rb")
    except FileNotFoundError:
        return None
    return _closing_chunks(iter(lambda: handle.read(READ_CHUNK), b""), handle)


def _closing_chunks(chunks, closable) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        closable.close()


def _zipinfo(name: str, modified: datetime, compress: int) -> zipfile.ZipInfo:
    stamp = timezone.localtime(modified).timetuple()[:6] if modified else (1980, 1, 1, 0, 0, 0)
    info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def _copy_media(archive: zipfile.ZipFile, item: MediaItem, chunks: Iterator[bytes] | None) -> bool:
    """Copy one stored file into the ZIP, stored as is (pictures and models are compressed
    already). False when the object is missing."""
    if chunks is None:
        logger.warning("export: stored object %s is missing; listed in data.json without a file", item.key)
        return False
    info = _zipinfo(item.name, item.modified, zipfile.ZIP_STORED)
    # The expected size lets zipfile choose ZIP64 headers up front for files over 2 GiB.
    info.file_size = item.size
    with archive.open(info, mode="w", force_zip64=item.size > 2**31) as entry:
        for chunk in chunks:
            entry.write(chunk)
    return True


def _write_text(archive: zipfile.ZipFile, name: str, chunks) -> None:
    info = _zipinfo(name, timezone.now(), zipfile.ZIP_DEFLATED)
    with archive.open(info, mode="w", force_zip64=True) as entry:
        for chunk in chunks:
            entry.write(chunk)


class _Writer(io.RawIOBase):
    """A write-only, non-seekable file. `size` counts what was written."""

    def __init__(self):
        self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:  # zipfile asks; refusing makes it count for itself (no rewinding)
        raise io.UnsupportedOperation("not seekable")

    def complete(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.complete()
        except BaseException:
            # A multipart upload that never completes keeps its parts (the whole archive) in the
            # bucket, invisible to object listings: abort it whatever failed.
            self.abort()
            raise


class S3MultipartWriter(_Writer):
    """Bytes written become parts of a multipart upload: one part is filled while up to
    UPLOADS_IN_FLIGHT earlier parts are sent by background threads (0: each is sent inline). `complete()` finishes the
    upload; `abort()` (on any failure) cancels it, so no half object or stray parts remain.

    The part buffers are allocated once and reused (at most UPLOADS_IN_FLIGHT + 1): filling,
    trimming and sending them never reallocates, so memory stays flat however big the archive
    (a fresh multi-MiB buffer per part fragments the heap, and the worker's resident size creeps up
    by tens of MiB over a few thousand files)."""

    def __init__(self, client, bucket: str, key: str, *, part_size: int | None = None):
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = part_size or PART_SIZE
        # Room for a part plus the write that fills it; a trim to at least half keeps the allocation.
        self.capacity = self.part_size + 2 * READ_CHUNK
        self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/zip")[
            "UploadId"
        ]
        self.futures: list[Future] = []
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.buffers = 1
        self.buffer = bytearray(self.capacity)
        self.filled = 0
        # UPLOADS_IN_FLIGHT = 0 sends each part inline (one buffer in all: the least memory).
        self.pool = (
            ThreadPoolExecutor(max_workers=UPLOADS_IN_FLIGHT, thread_name_prefix="export-upload")
            if UPLOADS_IN_FLIGHT
            else None
        )

    def write(self, data) -> int:
        size = len(data)
        # Overwrites in place, and grows within the allocation past the previous part's end.
        self.buffer[self.filled : self.filled + size] = data
        self.filled += size
        self.size += size
        if self.filled >= self.part_size:  # parts may differ in size; each is at least part_size
            self._send()
        return size

    def _send(self) -> None:
        for future in self.futures:  # fail early when an earlier part failed
            if future.done() and future.exception():
                raise future.exception()
        body = self.buffer
        del body[self.filled :]  # the part's exact length (no reallocation: it is over half)
        if self.pool is None:
            sent: Future = Future()
            sent.set_result(self._upload(len(self.futures) + 1, body))
            self.futures.append(sent)
        else:
            self.futures.append(self.pool.submit(self._upload, len(self.futures) + 1, body))
        if self.buffers <= UPLOADS_IN_FLIGHT:
            self.buffers += 1
            self.buffer = bytearray(self.capacity)
        else:
            self.buffer = self.free.get()  # waits until a part has been sent
        self.filled = 0

    def _upload(self, number: int, body: bytearray) -> dict:
        try:
            response = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
            )
        finally:
            self.free.put(body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def complete(self) -> None:
        if self.filled or not self.futures:
            self._send()
        try:
            parts = [future.result() for future in self.futures]
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except storage.STORAGE_ERRORS:
            logger.exception("could not abort the multipart upload of %s", self.key)


class LocalFileWriter(_Writer):
    """Local storage: written to `<name>.part` beside the target, renamed into place when complete."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.partial = f"{path}.part"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.handle = open(self.partial, "wb")  # noqa: SIM115 - closed in complete/abort

    def write(self, data) -> int:
        self.handle.write(data)
        self.size += len(data)
        return len(data)

    def complete(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.partial)


def _open_writer(key: str, *, expected_size: int) -> _Writer:
    s3 = _s3()
    if s3 is not None:
        client, bucket, name = s3
        part_size = max(PART_SIZE, -(-expected_size // MAX_PARTS))
        return S3MultipartWriter(client, bucket, name(key), part_size=part_size)
    if not isinstance(default_storage, FileSystemStorage):  # pragma: no cover - only S3 and files are configured
        raise RuntimeError(f"exports cannot stream to {type(default_storage).__name__}")
    return LocalFileWriter(default_storage.path(key))


# --- data.json ----------------------------------------------------------------------------------------


# Every model that holds a row about the person and where it is in data.json: label -> (the section
# of data.json, dotted; "[]" walks into a list) and the lookup from that model to the person (its
# first step is the field that links it). The completeness test checks each against the database.
EXPORTED: dict[str, tuple[str, str]] = {
    "accounts.User": ("profile", "pk"),
    "accounts.User_groups": ("profile.groups", "user"),
    "accounts.User_user_permissions": ("profile.permissions", "user"),
    "account.EmailAddress": ("email_addresses", "user"),
    "socialaccount.SocialAccount": ("connected_accounts", "user"),
    "accounts.ApiKey": ("api_keys", "owner"),
    "oauth2_provider.AccessToken": ("connected_apps", "user"),
    "oauth2_provider.Application": ("oauth_applications", "user"),
    "developers.WebhookEndpoint": ("webhook_endpoints", "owner"),
    "generation.Generation": ("generations", "owner"),
    "generation.Asset": ("generations[].assets", "generation__owner"),
    "generation.PendingUpload": ("kept_uploads", "owner"),
    "billing.Wallet": ("credits.wallet", "user"),
    "billing.LedgerEntry": ("credits.ledger", "wallet__user"),
    "billing.CreditReservation": ("credits.reservations", "wallet__user"),
    "billing.CreditAdjustment": ("credits.staff_adjustments", "user"),
    "billing.Customer": ("payments.stripe_customer", "user"),
    "billing.Payment": ("payments.payments", "user"),
    "billing.Subscription": ("payments.subscriptions", "user"),
    "billing.CheckoutSession": ("payments.checkout_sessions", "user"),
    "privacy.ActivityEvent": ("activity", "user"),
    "privacy.Consent": ("consents.current", "user"),
    "privacy.ConsentEvent": ("consents.history", "user"),
    "privacy.PolicyAcceptance": ("policy_acceptances", "user"),
    "privacy.PolicyNotice": ("policy_notices", "user"),
    "privacy.PrivacySettings": ("privacy_settings", "user"),
    "privacy.DataExport": ("data_exports", "user"),
}

# Models (or single links "app.Model.field") linked to the person that data.json leaves out, and why.
EXCLUSIONS: dict[str, str] = {
    # Secrets: OAuth access and refresh tokens for a connected account (Atelier does not store
    # them, SOCIALACCOUNT_STORE_TOKENS is off, but the table exists). The account itself is exported.
    "socialaccount.SocialToken": "OAuth tokens are secrets; the connected account is exported without them",
    # A pending email verification: a one-time secret key, deleted once used.
    "account.EmailConfirmation": "one-time verification keys are secrets; the address itself is exported",
    # The staff member who made a change on someone else's account: that is the other person's log.
    "privacy.ActivityEvent.actor": "events where this person acted as staff on other people's accounts",
    "billing.CreditAdjustment.staff": "adjustments this person made as staff to other people's accounts",
    # The same rows reached by another path (already exported through their owner).
    "billing.CreditAdjustment.ledger_entry": "the ledger entry is exported in credits.ledger",
    "generation.Generation.retry_of": "the retried generation is the person's own; exported as retry_of",
    # The back office's change log of a staff member's admin actions (object names of other people).
    "admin.LogEntry": "staff back-office actions on other people's data, not data about this person",
    # OAuth (issue 12): the connections are exported (connected_apps) without any token.
    "oauth2_provider.AccessToken.application": "other people's access to an OAuth app this person registered",
    "oauth2_provider.AccessToken.id_token": "OpenID Connect is not enabled, so no token has an ID token",
    "oauth2_provider.AccessToken.source_refresh_token": "the same connection, exported through its user",
    "oauth2_provider.RefreshToken": "refresh tokens are secrets; each connection is exported in connected_apps",
    "oauth2_provider.Grant": "one-time authorization codes (secrets) that expire within minutes",
    "oauth2_provider.IDToken": "OpenID Connect is not enabled, so none are issued",
    "oauth2_provider.DeviceGrant": "the device authorization flow is not enabled, so none are issued",
    # The API's replay guard: the key a program sent and the generation it made (exported).
    "apiv1.IdempotencyRecord": "replay records of API requests (the generation made is exported), swept after a day",
    # Each attempt to post an event about a generation (exported) to the person's own endpoint.
    "developers.WebhookDelivery": "delivery attempts of events about generations that are exported; the endpoints are",
    # Written only after the account is erased; no personal data stays on it.
    "privacy.ErasureReceipt": "exists only once the account is being erased",
}
# Not linked by a foreign key, so the walk never meets them, but worth saying: sessions hold only
# the signed-in user's id (and end with it), PageViewCount counts views per path with no person.


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _clean_extra(value):
    """Provider profile data without anything that looks like a token or secret."""
    if isinstance(value, dict):
        return {
            k: _clean_extra(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in ("token", "secret", "code", "password"))
        }
    if isinstance(value, list):
        return [_clean_extra(v) for v in value]
    return value


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _data_json_chunks(export: DataExport, plan: Plan, missing: set[str]) -> Iterator[bytes]:
    """data.json, written section by section and (for long lists) row by row."""
    for text in _data_json_text(export, plan, missing):
        yield text.encode()


def _array(rows) -> Iterator[str]:
    yield "["
    first = True
    for row in rows:
        yield ("" if first else ",") + _dumps(row)
        first = False
    yield "]"


def _data_json_text(export: DataExport, plan: Plan, missing: set[str]) -> Iterator[str]:
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from billing.models import (
        CheckoutSession,
        CreditAdjustment,
        CreditReservation,
        Customer,
        LedgerEntry,
        Payment,
        Subscription,
        Wallet,
    )
    from privacy.models import ActivityEvent, Consent, ConsentEvent, PolicyAcceptance, PrivacySettings

    user = get_user_model().objects.get(pk=export.user_id)

    def file_of(key: str, name: str | None) -> str | None:
        return None if key in missing else name

    head = {
        "format_version": FORMAT_VERSION,
        "schema": "data.schema.json",
        "exported_at": _iso(timezone.now()),
        "export_id": str(export.uuid),
        "site": settings.SITE_URL,
    }
    yield _dumps(head)[:-1]  # an object left open: the sections follow

    profile = {
        "public_id": str(user.public_id),
        "email": user.email,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "date_joined": _iso(user.date_joined),
        "last_login": _iso(user.last_login),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "age_confirmed_at": _iso(user.age_confirmed_at),
        "policy_accepted_at": _iso(user.policy_accepted_at),
        "policy_version": user.policy_version,
        "paused_at": _iso(user.paused_at),
        "groups": [{"name": g.name} for g in user.groups.order_by("name")],
        "permissions": [
            {"app": p.content_type.app_label, "codename": p.codename, "name": p.name}
            for p in user.user_permissions.select_related("content_type").order_by("codename")
        ],
    }
    yield ',"profile":' + _dumps(profile)

    yield ',"email_addresses":'
    yield from _array(
        {"email": e.email, "primary": e.primary, "verified": e.verified}
        for e in EmailAddress.objects.filter(user=user).order_by("-primary", "email")
    )
    yield ',"connected_accounts":'
    yield from _array(
        {
            "provider": a.provider,
            "uid": a.uid,
            "date_joined": _iso(a.date_joined),
            "last_login": _iso(a.last_login),
            "profile_data": _clean_extra(a.extra_data or {}),
        }
        for a in SocialAccount.objects.filter(user=user).order_by("date_joined")
    )
    # API keys without their secrets (only a hash is stored; it is left out too).
    from accounts.models import ApiKey

    yield ',"api_keys":'
    yield from _array(
        {
            "name": k.name,
            "prefix": k.prefix,
            "scopes": list(k.scopes),
            "created_at": _iso(k.created_at),
            "last_used_at": _iso(k.last_used_at),
            "revoked_at": _iso(k.revoked_at),
        }
        for k in ApiKey.objects.filter(owner=user).order_by("created_at", "id")
    )
    # Programs the person let act for them through OAuth (ChatGPT, MCP clients), without tokens.
    from oauth2_provider.models import get_access_token_model, get_application_model

    yield ',"connected_apps":'
    yield from _array(
        {
            "application": t.application.name if t.application else None,
            "scope": t.scope,
            "authorized_at": _iso(t.created),
            "expires_at": _iso(t.expires),
        }
        for t in get_access_token_model()
        .objects.filter(user=user)
        .select_related("application")
        .order_by("created", "id")
    )
    yield ',"oauth_applications":'
    yield from _array(
        {
            "name": a.name,
            "client_id": a.client_id,
            "client_type": a.client_type,
            "redirect_uris": a.redirect_uris.split(),
            "created_at": _iso(a.created),
        }
        for a in get_application_model().objects.filter(user=user).order_by("created", "id")
    )
    from developers.models import WebhookEndpoint

    yield ',"webhook_endpoints":'
    yield from _array(
        {
            "url": w.url,
            "description": w.description,
            "events": list(w.events or []),
            "enabled": w.enabled,
            "created_at": _iso(w.created_at),
        }
        for w in WebhookEndpoint.objects.filter(owner=user).order_by("created_at", "id")
    )

    consents = {
        "current": [
            {"kind": c.kind, "label": c.get_kind_display(), "granted": c.granted,
             "wording_version": c.wording_version, "updated_at": _iso(c.updated_at)}
            for c in Consent.objects.filter(user=user).order_by("kind")
        ],
        "history": [
            {"kind": e.kind, "granted": e.granted, "wording_version": e.wording_version, "method": e.method,
             "at": _iso(e.at)}
            for e in ConsentEvent.objects.filter(user=user).order_by("at", "id")
        ],
    }  # fmt: skip
    yield ',"consents":' + _dumps(consents)
    yield ',"policy_acceptances":'
    yield from _array(
        {"version": a.policy.version, "title": a.policy.title, "accepted_at": _iso(a.accepted_at)}
        for a in PolicyAcceptance.objects.filter(user=user).select_related("policy").order_by("accepted_at")
    )
    # The emails we sent about material policy changes.
    from privacy.models import PolicyNotice

    yield ',"policy_notices":'
    yield from _array(
        {"version": n.policy.version, "sent_at": _iso(n.sent_at)}
        for n in PolicyNotice.objects.filter(user=user).select_related("policy").order_by("sent_at")
    )
    settings_row = PrivacySettings.objects.filter(user=user).first()
    yield ',"privacy_settings":' + _dumps(
        {
            "history_retention_days": settings_row.history_retention_days,
            "history_retention": settings_row.get_history_retention_days_display(),
            "keep_assistant_history": settings_row.keep_assistant_history,
            "updated_at": _iso(settings_row.updated_at),
        }
        if settings_row
        else None
    )

    yield ',"generations":'
    yield from _array(_generations(user, plan, file_of))
    yield ',"kept_uploads":'
    from generation.models import PendingUpload

    yield from _array(
        {"uuid": str(u.uuid), "filename": u.filename, "mime_type": u.mime_type, "bytes": u.bytes,
         "width": u.width, "height": u.height, "created_at": _iso(u.created_at),
         "file": file_of(u.storage_key, plan.upload_names.get(u.storage_key))}
        for u in PendingUpload.objects.filter(owner=user).order_by("created_at")
    )  # fmt: skip

    wallet = Wallet.objects.filter(user=user).first()
    yield ',"credits":{"wallet":' + _dumps(
        {"balance": wallet.balance, "debt": wallet.debt, "disputed_at": _iso(wallet.disputed_at),
         "created_at": _iso(wallet.created_at)}
        if wallet else None
    )  # fmt: skip
    yield ',"ledger":'
    yield from _array(
        {"at": _iso(e.created_at), "amount": e.amount, "balance_after": e.balance_after, "reason": e.reason,
         "reason_label": e.get_reason_display(), "reference": e.reference, "memo": e.memo}
        for e in LedgerEntry.objects.filter(wallet__user=user).order_by("created_at", "id").iterator(
            chunk_size=ROWS_PER_BATCH
        )
    )  # fmt: skip
    yield ',"reservations":'
    yield from _array(
        {"reference": r.reference, "amount": r.amount, "status": r.status, "created_at": _iso(r.created_at),
         "settled_at": _iso(r.settled_at)}
        for r in CreditReservation.objects.filter(wallet__user=user).order_by("created_at", "id").iterator(
            chunk_size=ROWS_PER_BATCH
        )
    )  # fmt: skip
    yield ',"staff_adjustments":'
    yield from _array(
        {"at": _iso(a.created_at), "amount": a.amount, "reason": a.reason}
        for a in CreditAdjustment.objects.filter(user=user).order_by("created_at", "id")
    )
    yield "}"

    customer = Customer.objects.filter(user=user).first()
    payments = Payment.objects.filter(user=user).order_by("created_at", "id")
    yield ',"payments":{"stripe_customer":' + _dumps(
        {"stripe_customer_id": customer.stripe_customer_id, "created_at": _iso(customer.created_at)}
        if customer
        else None
    )
    yield ',"payments":'
    yield from _array(
        {"at": _iso(p.created_at), "kind": p.kind, "amount_cents": p.amount_cents, "currency": p.currency,
         "credits": p.credits, "credits_reversed": p.credits_reversed, "state": p.state,
         "dispute_status": p.dispute_status, "stripe_payment_intent_id": p.stripe_payment_intent_id,
         "stripe_invoice_id": p.stripe_invoice_id, "stripe_charge_id": p.stripe_charge_id,
         "receipt_url": p.receipt_url}
        for p in payments
    )  # fmt: skip
    # Invoices and receipts live at Stripe; Atelier keeps the link to each one.
    yield ',"invoices":'
    yield from _array(
        {"at": _iso(p.created_at), "kind": p.kind, "stripe_invoice_id": p.stripe_invoice_id, "url": p.receipt_url}
        for p in payments
        if p.receipt_url
    )
    yield ',"subscriptions":'
    yield from _array(
        {"plan": s.plan.title if s.plan else None, "stripe_subscription_id": s.stripe_subscription_id,
         "status": s.status, "current_period_end": _iso(s.current_period_end),
         "cancel_at_period_end": s.cancel_at_period_end, "cancel_at": _iso(s.cancel_at),
         "created_at": _iso(s.created_at)}
        for s in Subscription.objects.filter(user=user).select_related("plan").order_by("created_at")
    )  # fmt: skip
    # Checkout sessions without their hosted-page URL (it carries the session's client secret).
    yield ',"checkout_sessions":'
    yield from _array(
        {"stripe_session_id": c.stripe_session_id, "kind": c.kind, "pack": c.pack.title if c.pack else None,
         "plan": c.plan.title if c.plan else None, "status": c.status, "created_at": _iso(c.created_at),
         "fulfilled_at": _iso(c.fulfilled_at)}
        for c in CheckoutSession.objects.filter(user=user).select_related("pack", "plan").order_by("created_at")
    )  # fmt: skip
    yield "}"

    yield ',"activity":'
    yield from _array(
        {"at": _iso(e.at), "kind": e.kind, "label": e.get_kind_display(), "by_staff": e.actor_id is not None,
         "ip": e.ip, "device": e.device, "detail": e.detail}
        for e in ActivityEvent.objects.filter(user=user).order_by("at", "id").iterator(chunk_size=ROWS_PER_BATCH)
    )  # fmt: skip
    yield ',"data_exports":'
    yield from _array(
        {"uuid": str(x.uuid), "status": x.status, "requested_at": _iso(x.requested_at),
         "finished_at": _iso(x.finished_at), "expires_at": _iso(x.expires_at), "size_bytes": x.size_bytes,
         "downloaded_at": _iso(x.downloaded_at)}
        for x in DataExport.objects.filter(user=user).order_by("requested_at", "id")
    )  # fmt: skip
    yield "}"


def _generations(user, plan: Plan, file_of) -> Iterator[dict]:
    """Each generation with its model, prompt, every parameter and its files; in batches, with
    their assets loaded per batch (no query per generation)."""
    from generation.models import Asset, Generation

    rows = (
        Generation.objects.filter(owner=user)
        .select_related("model", "retry_of")
        .order_by("queued_at", "id")
        .iterator(chunk_size=ROWS_PER_BATCH)
    )
    batch: list = []
    for generation in rows:
        batch.append(generation)
        if len(batch) == ROWS_PER_BATCH:
            yield from _generation_batch(batch, plan, file_of, Asset)
            batch = []
    if batch:
        yield from _generation_batch(batch, plan, file_of, Asset)


def _generation_batch(batch, plan: Plan, file_of, Asset) -> Iterator[dict]:
    by_pk = {g.pk: g for g in batch}
    assets: dict[int, list] = {}
    for asset in Asset.objects.filter(generation__in=list(by_pk)).order_by("role", "index"):
        name = plan.name_of(
            asset.storage_key, role=asset.role, generation=by_pk[asset.generation_id], index=asset.index
        )
        assets.setdefault(asset.generation_id, []).append(
            {"uuid": str(asset.uuid), "role": asset.role, "index": asset.index, "mime_type": asset.mime_type,
             "bytes": asset.bytes, "sha256": asset.sha256, "width": asset.width, "height": asset.height,
             "created_at": _iso(asset.created_at), "file": file_of(asset.storage_key, name)}
        )  # fmt: skip
    for g in batch:
        yield {
            "uuid": str(g.uuid),
            "kind": g.kind,
            "model": {"slug": g.model.slug, "title": g.model.title, "provider": g.model.provider,
                      "provider_model": g.model.provider_model},
            "provider_version": g.provider_version,
            "provider_prediction_id": g.provider_prediction_id,
            "prompt": g.prompt,
            "negative_prompt": g.negative_prompt,
            "parameters": g.params or {},
            "seed": g.seed,
            "source": g.source,
            "prompt_removed_at": _iso(g.prompt_purged_at),
            "status": g.status,
            "error_message": g.error_message,
            "error_detail": g.error_detail,
            "cost": g.cost,
            "attempts": g.attempts,
            "retry_of": str(g.retry_of.uuid) if g.retry_of else None,
            "favorite": g.favorite,
            "queued_at": _iso(g.queued_at),
            "started_at": _iso(g.started_at),
            "finished_at": _iso(g.finished_at),
            "assets": assets.get(g.pk, []),
        }  # fmt: skip


# --- email ------------------------------------------------------------------------------------------


def _email_ready(export: DataExport) -> None:
    """Tell the person their export is ready, with the owner-only link (not the file URL itself)."""
    user = export.user
    link = settings.SITE_URL.rstrip("/") + reverse("privacy:export_download", args=[export.uuid])
    context = {
        "user": user,
        "export": export,
        "link": link,
        "centre": settings.SITE_URL.rstrip("/") + reverse("privacy:centre"),
        "contact": settings.PRIVACY_CONTACT_EMAIL,
    }
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + "Your data export is ready"
    body = render_to_string("privacy/email/export_ready.txt", context)
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
    except (OSError, smtplib.SMTPException):
        # The export is ready either way; the privacy centre shows the link too.
        logger.exception("could not send the export-ready email for export %s", export.uuid)


# --- expiry -----------------------------------------------------------------------------------------


def exports_expire(*, now: datetime | None = None) -> int:
    """Beat: delete the ZIPs of exports past their expiry from storage and mark them expired (a
    failed delete leaves the row ready, retried next hour). Exports that never started or whose
    worker died are marked failed, so the page stops waiting and the person may ask again."""
    now = now or timezone.now()
    done = 0
    due = DataExport.objects.filter(status=ExportStatus.READY, expires_at__lte=now).values_list("pk", "storage_key")
    for pk, key in list(due[:1000]):
        if key and not storage.delete_keys([key]):
            continue
        done += DataExport.objects.filter(pk=pk, status=ExportStatus.READY).update(status=ExportStatus.EXPIRED)
    lost = Q(status=ExportStatus.QUEUED, requested_at__lt=now - STALE_AFTER) | Q(
        status=ExportStatus.RUNNING, started_at__lt=now - STALE_AFTER
    )
    DataExport.objects.filter(lost).update(
        status=ExportStatus.FAILED,
        finished_at=now,
        error="Preparing your export took too long and was stopped. Please ask again.",
    )
    return done


__all__ = [
    "EXCLUSIONS",
    "EXPORTED",
    "ExportError",
    "ExportExpired",
    "ExportNotReady",
    "ExportTooSoon",
    "export_build",
    "export_key",
    "export_next_allowed_at",
    "export_open",
    "export_request",
    "exports_expire",
    "media_name",
]


DISCARDED_MESSAGE = (
    "This export held items you have since deleted, so we removed it. Ask for a new one whenever you like."
)


def exports_discard(*, user) -> int:
    """Remove the person's finished exports after they delete items from their history: an
    archive must not keep what they deleted. Storage first, then the rows are marked failed (so a
    new export can be asked for at once, with the reason shown). Returns how many went."""
    ready = list(DataExport.objects.filter(user=user, status=ExportStatus.READY).exclude(storage_key=""))
    if not ready:
        return 0
    gone = [export.pk for export in ready if storage.delete_keys([export.storage_key])]
    DataExport.objects.filter(pk__in=gone, status=ExportStatus.READY).update(
        status=ExportStatus.FAILED, error=DISCARDED_MESSAGE, storage_key="", expires_at=None
    )
    return len(gone)
