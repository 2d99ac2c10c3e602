"""Our copy of every input and output, in the default storage (private S3, or local files).

Keys are `users/<user-uuid>/generations/<generation-uuid>/<file>`. Nothing is public: a
reader gets a short-lived presigned S3 URL, or, with local files, a signed Django URL.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.urls import reverse

from generation.errors import ProviderError, StorageUnavailable

try:
    from botocore.exceptions import BotoCoreError, ClientError

    STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)
except ImportError:  # pragma: no cover - boto3 is a pinned dependency
    STORAGE_ERRORS = (OSError,)

logger = logging.getLogger(__name__)

_SIGNER_SALT = "generation.asset"


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str
    head: bytes  # the first bytes, to check what the file really is


def save_bytes(key: str, content: bytes) -> StoredFile:
    try:
        saved = default_storage.save(key, ContentFile(content))
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"save {key}: {exc!r}") from exc
    return StoredFile(key=saved, size=len(content), sha256=hashlib.sha256(content).hexdigest(), head=content[:64])


@dataclass
class Spool:
    """A downloaded stream held in a spooled temp file (memory, then disk), with its digest."""

    file: tempfile.SpooledTemporaryFile
    size: int
    sha256: str
    head: bytes

    def read_all(self, limit: int = 32 * 1024 * 1024) -> bytes | None:
        """The whole content when at most `limit` bytes (for images), else None."""
        if self.size > limit:
            return None
        self.file.seek(0)
        return self.file.read()

    def save(self, key: str) -> StoredFile:
        self.file.seek(0)
        try:
            saved = default_storage.save(key, File(self.file, name=key.rsplit("/", 1)[-1]))
        except STORAGE_ERRORS as exc:
            raise StorageUnavailable(f"save {key}: {exc!r}") from exc
        return StoredFile(key=saved, size=self.size, sha256=self.sha256, head=self.head)


@contextmanager
def spooled(chunks: Iterable[bytes], *, max_bytes: int) -> Iterator[Spool]:
    """Stream into a temp file without holding it all in memory; refuse it past max_bytes."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise ProviderError("The result was larger than we accept.", detail=f"output over {max_bytes} bytes")
            if len(head) < 64:
                head += chunk[: 64 - len(head)]
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise ProviderError("The provider returned an empty result.", detail="empty output")
        yield Spool(file=spool, size=size, sha256=digest.hexdigest(), head=head)


class Peek:
    """A stream of chunks whose first `head_bytes` are read ahead (to tell what the file is
    before choosing its name); iterating yields everything, head included, once."""

    def __init__(self, chunks: Iterable[bytes], *, head_bytes: int):
        self._rest = iter(chunks)
        buffered: list[bytes] = []
        size = 0
        self.complete = False
        while size < head_bytes:
            chunk = next(self._rest, None)
            if chunk is None:
                self.complete = True
                break
            buffered.append(chunk)
            size += len(chunk)
        self._buffered = buffered
        self.head = b"".join(buffered)[:head_bytes]

    def __iter__(self) -> Iterator[bytes]:
        buffered, self._buffered = self._buffered, []
        yield from buffered
        yield from self._rest


class _StreamReader(io.RawIOBase):
    """A read-only, non-seekable file over a chunk iterator that hashes, counts and caps what
    passes through, so a download streams into storage without being held in memory."""

    def __init__(self, chunks: Iterable[bytes], *, max_bytes: int):
        self._chunks = iter(chunks)
        self._pending = b""
        self._max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.size += len(chunk)
            if self.size > self._max_bytes:
                raise ProviderError(
                    "The result was larger than we accept.", detail=f"output over {self._max_bytes} bytes"
                )
            self.digest.update(chunk)
            self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def save_stream(key: str, chunks: Iterable[bytes], *, max_bytes: int) -> StoredFile:
    """Stream chunks into storage under `key`. Raises ProviderError past `max_bytes` (or for an
    empty stream) and StorageUnavailable when storage fails; the caller deletes the key then."""
    reader = _StreamReader(chunks, max_bytes=max_bytes)
    buffered = io.BufferedReader(reader, buffer_size=256 * 1024)
    try:
        saved = default_storage.save(key, File(buffered, name=key.rsplit("/", 1)[-1]))
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"save {key}: {exc!r}") from exc
    if reader.size == 0:
        delete_keys([saved])
        raise ProviderError("The provider returned an empty result.", detail="empty output")
    return StoredFile(key=saved, size=reader.size, sha256=reader.digest.hexdigest(), head=b"")


def read_bytes(key: str) -> bytes:
    try:
        with default_storage.open(key, "rb") as handle:
            return handle.read()
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"read {key}: {exc!r}") from exc


def delete_keys(keys: Iterable[str]) -> bool:
    """Best effort clean-up: a failed delete is logged (with the key, to sweep later), not raised.
    False if any delete failed, for callers that must know (deleting history keeps such rows)."""
    ok = True
    for key in keys:
        try:
            default_storage.delete(key)
        except STORAGE_ERRORS as exc:
            logger.error("could not delete stored object %s: %r", key, exc)
            ok = False
    return ok


def keys_under(prefix: str) -> set[str]:
    """Every object directly under `prefix` (e.g. a generation's, including a copy in flight that
    no Asset row names yet). Raises StorageUnavailable when the listing fails."""
    try:
        _, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return set()
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"list {prefix}: {exc!r}") from exc
    return {f"{prefix}/{name}" for name in files}


def _is_local() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def safe_filename(filename: str, key: str) -> str:
    """The name a file is saved under. It may come from a person's upload ("x\".html"): ASCII
    letters, digits and a few marks only, so it can't break a Content-Disposition header (ours or
    S3's), and the stored file's real extension, from the key we chose."""
    stored = key.rsplit("/", 1)[-1]
    extension = stored.rsplit(".", 1)[-1].lower() if "." in stored else ""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    stem = "".join(c for c in stem if c.isascii() and (c.isalnum() or c in " -_()")).strip()[:120] or "atelier"
    return f"{stem}.{extension}" if extension else stem


def access_url(key: str, *, filename: str, download: bool = False, ttl: int | None = None) -> str:
    """A short-lived URL for the owner to view or download one object (local files: valid `ttl`
    seconds, LOCAL_FILE_URL_TTL by default)."""
    filename = safe_filename(filename, key)
    disposition = f'{"attachment" if download else "inline"}; filename="{filename}"'
    if _is_local():
        return reverse("generation:file", args=[_local_token(_local_signer(), key, filename, download, ttl)])
    if settings.AWS_S3_PUBLIC_ENDPOINT_URL:
        return _public_presigned_url(key, disposition)
    return default_storage.url(key, parameters={"ResponseContentDisposition": disposition})


def access_urls(files: Iterable[tuple[str, str]]) -> list[str]:
    """`access_url` (to view, default lifetime) for many objects at once, e.g. a gallery page's
    pictures: the same URLs, but the route and the signer are worked out once, not per picture."""
    files = list(files)
    if not _is_local():
        return [_recent_links.get(key, filename) for key, filename in files]
    signer = _local_signer()
    # reverse() costs more than the signing; the token is only URL-safe characters, which reverse
    # would leave as they are, so the route is reversed once around a placeholder.
    head, tail = reverse("generation:file", args=["TOKEN"]).split("TOKEN")
    return [f"{head}{_local_token(signer, key, safe_filename(name, key), False, None)}{tail}" for key, name in files]


class _RecentLinks:
    """Presigned view links handed out again for a fifth of their lifetime (60 s of 300), in
    this process. botocore takes ~0.3 ms to presign one URL, ~7 ms for a gallery page; a page
    seen again within the minute (back, reload, filters on and off) reuses its links, and the
    browser can then reuse the pictures it already has (a fresh signature is a new URL).

    Links stay short-lived: a link is reused only within the time window it was signed in,
    so each one handed out has at least 4/5 of its lifetime left, and never outlives it. Only
    the owner's own pages ask for them (the key names their files), as before.
    """

    def __init__(self) -> None:
        self.window = -1
        self.links: dict[tuple, str] = {}

    def get(self, key: str, filename: str) -> str:
        options = settings.STORAGES["default"].get("OPTIONS", {})
        reuse = int(options.get("querystring_expire", 300)) // 5
        if reuse < 1:
            return access_url(key, filename=filename)
        window = int(time.time() // reuse)
        if window != self.window or len(self.links) > 20_000:
            self.links, self.window = {}, window  # the last window's links are no longer handed out
        config = (options.get("bucket_name"), options.get("endpoint_url"), settings.AWS_S3_PUBLIC_ENDPOINT_URL)
        link = self.links.get((config, key, filename))
        if link is None:
            link = self.links[(config, key, filename)] = access_url(key, filename=filename)
        return link


_recent_links = _RecentLinks()


def _local_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SIGNER_SALT)


def _local_token(signer: signing.TimestampSigner, key: str, filename: str, download: bool, ttl: int | None) -> str:
    """What `signing.dumps(payload, salt=_SIGNER_SALT, compress=True)` gives; `unsign` reads it."""
    payload = {"k": key, "d": int(download), "f": filename}
    if ttl is not None:
        payload["t"] = int(ttl)
    return signer.sign_object(payload, compress=True)


def _public_presigned_url(key: str, disposition: str) -> str:
    """Sign for the address browsers use (the signature covers the host), e.g. localhost:9000."""
    options = settings.STORAGES["default"]["OPTIONS"]
    client = _public_client(
        settings.AWS_S3_PUBLIC_ENDPOINT_URL,
        options.get("region_name"),
        options.get("access_key"),
        options.get("secret_key"),
    )
    params = {"Bucket": options["bucket_name"], "Key": key, "ResponseContentDisposition": disposition}
    expires = options.get("querystring_expire", 300)
    return client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)


@functools.lru_cache(maxsize=4)
def _public_client(endpoint_url: str, region_name: str | None, access_key: str | None, secret_key: str | None):
    """One S3 client per configuration, kept: making one takes ~20 ms (it loads the service
    model), signing a URL with it ~0.3 ms — a gallery page signs 24. Clients are thread-safe."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def provider_links_available(*, public_site: bool) -> bool:
    """Can a provider on the internet fetch our copies by URL? From S3 always (presigned); from
    local files only through our own site, so only when the site is public."""
    return not _is_local() or public_site


def provider_url(key: str) -> str | None:
    """A short-lived URL a provider can fetch our copy of an input from: presigned S3, or with
    local files a signed link on our own site (absolute, SITE_URL; valid LOCAL_FILE_URL_TTL)."""
    if _is_local():
        name = key.rsplit("/", 1)[-1]
        return settings.SITE_URL.rstrip("/") + access_url(key, filename=name, ttl=settings.PROVIDER_INPUT_URL_TTL)
    return default_storage.url(key, expire=settings.PROVIDER_INPUT_URL_TTL)


def unsign(token: str) -> dict:
    """The object a signed local URL points to. Raises signing.BadSignature when tampered or
    older than its own lifetime (LOCAL_FILE_URL_TTL unless the link was made with another)."""
    longest = max(settings.LOCAL_FILE_URL_TTL, settings.PROVIDER_INPUT_URL_TTL)
    data = signing.loads(token, salt=_SIGNER_SALT, max_age=longest)
    ttl = int(data.get("t") or settings.LOCAL_FILE_URL_TTL)
    signing.loads(token, salt=_SIGNER_SALT, max_age=min(ttl, longest))  # raises SignatureExpired
    return data


def open_local(key: str) -> io.BufferedReader:
    return default_storage.open(key, "rb")
