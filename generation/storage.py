"""Our copy of every input and output, in the default storage (private S3, or local files).

Keys are `users/<user-uuid>/generations/<generation-uuid>/<file>`. Nothing is public: a
reader gets a short-lived presigned S3 URL, or, with local files, a signed Django URL.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import io
import logging
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

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


def _bucket_prefix(prefix: str) -> tuple[object, str, str]:
    """For S3: the bucket, the storage's location ("" or "media") and the full key prefix of
    `prefix` as a folder ("media/users/<uuid>/"). (None, "", "") for other storages."""
    bucket = getattr(default_storage, "bucket", None)
    if bucket is None:
        return None, "", ""
    location = (getattr(default_storage, "location", "") or "").strip("/")
    folder = f"{prefix.rstrip('/')}/"
    return bucket, location, f"{location}/{folder}" if location else folder


def objects_under(prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under `prefix`, at any depth (keys_under looks one level
    down). Raises StorageUnavailable when the listing fails."""
    prefix = prefix.rstrip("/")
    bucket, location, full = _bucket_prefix(prefix)
    try:
        if bucket is not None:  # S3: one listing gives keys and sizes, 1,000 at a time
            return [
                (obj.key[len(location) + 1 :] if location else obj.key, obj.size)
                for obj in bucket.objects.filter(Prefix=full)
            ]
        found: list[tuple[str, int]] = []
        pending = [prefix]
        while pending:
            current = pending.pop()
            try:
                dirs, files = default_storage.listdir(current)
            except FileNotFoundError:
                continue
            pending.extend(f"{current}/{name}" for name in dirs)
            found.extend((f"{current}/{name}", default_storage.size(f"{current}/{name}")) for name in files)
        return found
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"list {prefix}: {exc!r}") from exc


def uploads_abort_under(prefix: str) -> int:
    """S3 keeps the parts of an unfinished multipart upload (an export cut short) out of object
    listings: abort every one under the prefix, so "nothing is left" is true of them too.
    Returns how many went (always 0 for other storages)."""
    bucket, _, full = _bucket_prefix(prefix)
    if bucket is None:
        return 0
    aborted = 0
    try:
        for upload in bucket.multipart_uploads.filter(Prefix=full):
            upload.abort()
            aborted += 1
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"list uploads {prefix}: {exc!r}") from exc
    return aborted


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
    fast = _default_presigner()
    if fast is not None:
        return fast.url(_storage_key(key), disposition)
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
    fast = _presigner(client, options["bucket_name"], expires)
    if fast is not None:
        return fast.url(key, disposition)
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


# --- SigV4 presigned GET links, without botocore's per-request machinery ---------------------------
#
# botocore takes ~0.3 ms to presign one URL (event hooks, parameter validation, serialization,
# endpoint resolution); the signature itself is a few HMACs. `_Presigner` produces exactly the URL
# `generate_presigned_url("get_object", Params={Bucket, Key, ResponseContentDisposition},
# ExpiresIn=...)` gives (generation/tests/test_presign.py proves it for path and virtual-hosted
# addressing, custom and AWS endpoints, with and without a session token), for a client of an
# allowed configuration only. Where the link goes (scheme, host, the path before the key, the
# signing region) is taken from botocore itself: one URL presigned by the client for a probe key,
# which is also signed here and must come out identical, character for character, or the
# configuration keeps using botocore. Anything not allowed below also keeps using botocore.

_SIGV4_SAFE = "-_.~"  # botocore.utils.SAFE_CHARS: query keys and values
_PROBE_KEY = "atelier-presign-probe/ü +%~;=&.txt"
_PROBE_DISPOSITION = 'inline; filename="probe (1).txt"'


@dataclass(frozen=True)
class _Presigner:
    origin: str  # scheme://netloc as botocore writes it
    prefix: str  # the path before the key: "" (virtual-hosted) or "/bucket" (path-style)
    host: str  # the signed host header: lowercase, without a default port
    region: str
    expires: int
    credentials: object  # botocore Credentials (static or refreshable)

    def url(self, key: str, disposition: str, now: datetime.datetime | None = None) -> str:
        frozen = self.credentials.get_frozen_credentials()
        if now is None:
            now = _utcnow()
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        path = f"{self.prefix}/{quote(key.encode('utf-8'), safe='/~')}"
        credential = quote(f"{frozen.access_key}/{day}/{self.region}/s3/aws4_request", safe=_SIGV4_SAFE)
        token = None if frozen.token is None else quote(str(frozen.token), safe=_SIGV4_SAFE)
        disposition = quote(disposition.encode("utf-8"), safe=_SIGV4_SAFE)
        auth = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(self.expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if token is not None:
            auth.append(("X-Amz-Security-Token", token))
        pairs = [("response-content-disposition", disposition), *auth]
        canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
        canonical_request = f"GET\n{path}\n{canonical_query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{day}/{self.region}/s3/aws4_request\n"
            + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        )
        signing_key = _signing_key(frozen.secret_key, day, self.region)
        signature = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        query = "&".join(f"{k}={v}" for k, v in pairs)
        return f"{self.origin}{path}?{query}&X-Amz-Signature={signature}"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


_signing_keys: dict[tuple[str, str, str], bytes] = {}


def _signing_key(secret: str, day: str, region: str) -> bytes:
    """SigV4's derived key, the same for a whole UTC day: four HMACs saved per link."""
    cache_key = (secret, day, region)
    derived = _signing_keys.get(cache_key)
    if derived is None:
        derived = f"AWS4{secret}".encode()
        for part in (day, region, "s3", "aws4_request"):
            derived = hmac.new(derived, part.encode("utf-8"), hashlib.sha256).digest()
        if len(_signing_keys) > 64:
            _signing_keys.clear()
        _signing_keys[cache_key] = derived
    return derived


def _storage_key(name: str) -> str:
    """The object key S3Storage.url presigns for `name` (cleaned, under the storage's location)."""
    from storages.utils import clean_name

    return default_storage._normalize_name(clean_name(name))


def _default_presigner() -> _Presigner | None:
    """A presigner for the default storage when it is a private S3Storage of an allowed
    configuration (see `_presigner`), else None: S3Storage.url (botocore) is used."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is a pinned dependency
        return None
    storage = default_storage
    if storage.__class__ is not S3Storage:  # a subclass may sign differently (LazyObject: the real class)
        return None
    if storage.custom_domain or not storage.querystring_auth or storage.cloudfront_signer:
        return None
    expires = storage.querystring_expire
    return _presigner(storage.connection.meta.client, storage.bucket_name, expires)


_presigners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> {(bucket, expires): ...}


def _presigner(client, bucket: str, expires) -> _Presigner | None:
    """A `_Presigner` for (client, bucket, expires), checked against the client's own presigned
    URL for a probe key, or None (use botocore) for any configuration not verified to match."""
    config = client.meta.config
    s3_config = config.s3 or {}
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if (
        not isinstance(expires, int)
        or isinstance(expires, bool)
        or not 1 <= expires <= 604800
        or not bucket
        or credentials is None
        or config.signature_version != "s3v4"
        or set(s3_config) - {"addressing_style"}
        or s3_config.get("addressing_style") not in (None, "auto", "path", "virtual")
        or client.meta.service_model.service_name != "s3"
    ):
        return None
    known = _presigners.setdefault(client, {})
    found = known.get((bucket, expires), False)
    if found is False or (found is not None and found.credentials is not credentials):
        found = known[(bucket, expires)] = _probe(client, bucket, expires, credentials)
    return found


def _probe(client, bucket: str, expires: int, credentials) -> _Presigner | None:
    try:
        expected = client.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": _PROBE_KEY, "ResponseContentDisposition": _PROBE_DISPOSITION},
            ExpiresIn=expires,
        )
        parts = urlsplit(expected)
        quoted_key = "/" + quote(_PROBE_KEY.encode("utf-8"), safe="/~")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        scope = query["X-Amz-Credential"].split("/")
        if not parts.path.endswith(quoted_key) or scope[-2:] != ["s3", "aws4_request"] or parts.fragment:
            return None
        host = parts.hostname
        if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
            host = f"{host}:{parts.port}"
        if not host or "[" in parts.netloc or "@" in parts.netloc:
            return None  # IPv6 literals and user info: left to botocore
        presigner = _Presigner(
            origin=f"{parts.scheme}://{parts.netloc}",
            prefix=parts.path[: -len(quoted_key)],
            host=host,
            region=scope[-3],
            expires=expires,
            credentials=credentials,
        )
        when = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        mine = presigner.url(_PROBE_KEY, _PROBE_DISPOSITION, now=when)
    except Exception:  # noqa: BLE001 - anything unexpected: botocore keeps signing
        logger.warning("presigned links: this S3 configuration is left to botocore", exc_info=True)
        return None
    if mine != expected:
        logger.warning("presigned links: our signature differs from botocore's here; botocore signs them")
        return None
    return presigner


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
