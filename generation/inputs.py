"""Turn what a person gives us (an upload or an image link) into a clean image we can store and send on.

Everything here treats its input as hostile:

* Size first. Uploads over `INPUT_MAX_BYTES` are refused before any decoding (the declared size,
  and again while reading); downloads are streamed and cut off as soon as they pass the limit.
* Decoded by content, never by name or declared content type: Pillow must recognise PNG, JPEG or
  WebP (a camera's multi-picture JPEG, which Pillow calls MPO, counts as JPEG). The file is
  `verify()`-ed, reopened and fully `load()`-ed, so truncated or corrupt files are refused
  (`ImageFile.LOAD_TRUNCATED_IMAGES` must stay False). Width x height is checked against
  `INPUT_MAX_PIXELS` before any pixel is decoded; Pillow's own decompression-bomb error and
  warning become the same refusal.
* Re-encoded: EXIF orientation is applied, then every piece of metadata (EXIF with GPS, XMP,
  ICC, comments, text chunks) is dropped; animated images keep their first frame; the longest
  side is scaled down to `INPUT_MAX_SIDE`. The format stays what it was.
* Links are fetched by our own small HTTP client over urllib3, with an SSRF guard: http/https
  only, no user:password, the host is resolved once and *every* resolved address must be
  public (the `host:port` pairs in `INPUT_URL_ALLOWED_PRIVATE_HOSTS` excepted), and the
  connection goes to the address we checked — the original name is sent as the Host header and,
  for https, as SNI and as the name the certificate must match. A second DNS answer (rebinding)
  is never consulted. Redirects are followed by hand, at most `INPUT_URL_MAX_REDIRECTS`, and each
  new address goes through the same guard. If a name has several (all public) addresses and one
  refuses the connection, the next is tried. Connect and read each time out after
  `INPUT_URL_TIMEOUT`; the whole fetch, redirects included, has a deadline of `_DEADLINE_FACTOR`
  times that, at most `INPUT_URL_DEADLINE` (`fetch_deadline`), taken from the monotonic clock and
  enforced on *every* socket operation: the connect, the TLS handshake and each single read of
  the status line, the headers and the body get `min(INPUT_URL_TIMEOUT, time left)` as their
  timeout. A server that drips its headers one
  byte at a time is cut off at the deadline like one that drips its body (the body was the only
  part checked before, so such a server could hold a web worker for minutes). We ask for an
  uncompressed body; a server that compresses anyway is decoded in bounded pieces by urllib3, and
  the size cap counts decoded bytes.

Why our own client rather than a library (weighed in issue 9): requests-hardened (Saleor) pins the
address it filtered and sends the name as Host/SNI like we do, but its timeouts are requests'
per-operation ones (no overall deadline), it has no size cap, it filters with its own address
table (no NAT64/6to4 embedded-address checks, loopback allowed globally rather than one host:port
for tests) and it picks one address instead of trying each checked one. It would cover neither the
deadline nor our address rules, so we would keep most of this code and add a dependency. The
client stays; the deadline is the two small classes `_DeadlineConnection` / `_DeadlineReader` on
top of urllib3's documented extension points (a pool's `ConnectionCls`, http.client's
`response_class`).

Residual risks, written down on purpose:

* Name resolution uses the system resolver, which has its own timeouts; a slow DNS server can
  make a fetch last longer than the deadline (the lookup counts against it but cannot be cut off).
* Environment proxies (HTTP_PROXY, …) are ignored: a proxy would resolve the name itself and undo
  the address pinning. A deployment that must use an egress proxy needs a different design.
* `warnings.catch_warnings()` changes process-wide state (Python 3.11), so under threads another
  request may briefly see the decompression-bomb warning as an error, or miss it. The explicit
  `INPUT_MAX_PIXELS` check, which is lower than Pillow's limits, is the guard we rely on.
* The upload size check runs once Django has received the upload (spooled to a temporary file
  above 2.5 MB); the request body itself should be capped in front of Django (proxy body limit).
* Only the Pillow errors we know of are caught (`_DECODE_ERRORS`); a Pillow bug raising something
  else on a malformed file would surface as a server error rather than a wrong answer.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import ipaddress
import socket
import ssl
import struct
import time
import warnings
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import SSLError as Urllib3SSLError

from generation.errors import InvalidInput

UPLOAD_FIELD = "image"
URL_FIELD = "image_url"

FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
# Pillow names a JPEG that carries extra pictures (cameras' multi-picture format) "MPO";
# it is a JPEG, and we keep its first picture like any other JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}
JPEG_QUALITY = 92
WEBP_QUALITY = 90

USER_AGENT = "AtelierImageFetcher/1.0"
MAX_URL_LENGTH = 2048
_DEADLINE_FACTOR = 3  # the whole fetch, redirects included, may take this many timeouts
_CHUNK = 64 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
# requests' `requote_uri` safe set: re-quote what a person pasted without double-quoting escapes.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"

# Pillow reports malformed files with these; anything here means "damaged", never a server error.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    ZeroDivisionError,
)
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # WebP is checked by its RIFF header below

NOT_AN_IMAGE = "That file is not a PNG, JPEG or WebP image."
DAMAGED = "The image looks damaged or incomplete."
UPLOAD_UNREADABLE = "We could not read the upload. Please try again."
BAD_LINK = "That image link is not a valid web address."
LINK_TOO_LONG = "That image link is too long."
SCHEME_NOT_ALLOWED = "Only http and https image links are supported."
CREDENTIALS_NOT_ALLOWED = "Image links with a user name or password are not supported."
PRIVATE_ADDRESS = "That address points to a private or local network, which we don't fetch."
HOST_NOT_FOUND = "We could not find the server of that image link. Check the address."
CONNECT_FAILED = "We could not connect to the server of that image link."
TLS_FAILED = "The image link's secure connection could not be verified (HTTPS certificate problem)."
DOWNLOAD_FAILED = "The image download was interrupted. Try again, or upload the file instead."
TIMED_OUT = "The image link took too long to answer."
TOO_MANY_REDIRECTS = "Too many redirects."
REDIRECT_WITHOUT_LOCATION = "The image link redirected without saying where to."

# Checked in addition to `is_global` and friends, so the guard does not depend on which Python
# patch release fixed which `ipaddress` table (several did, e.g. CVE-2024-4032).
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped: judged by the embedded address before we get here
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class CleanImage:
    content: bytes  # re-encoded bytes (metadata stripped)
    mime: str  # "image/png" | "image/jpeg" | "image/webp"
    ext: str  # "png" | "jpg" | "webp"
    width: int
    height: int
    sha256: str  # hex of content


# --- public API ---------------------------------------------------------------------------------------


def clean_image_bytes(data: bytes) -> CleanImage:
    """Check, decode and re-encode image bytes. Raises InvalidInput with a sentence for the person."""
    return _clean(data, field=UPLOAD_FIELD)


def image_from_upload(upload) -> CleanImage:
    """Clean a Django UploadedFile. Oversized uploads are refused before anything is decoded."""
    max_bytes = settings.INPUT_MAX_BYTES
    declared = getattr(upload, "size", None)
    if declared is not None and declared > max_bytes:
        raise _invalid(_too_big(), UPLOAD_FIELD)
    data = bytearray()
    try:
        for chunk in upload.chunks():
            data += chunk
            if len(data) > max_bytes:  # the declared size can be wrong
                raise _invalid(_too_big(), UPLOAD_FIELD)
    except (OSError, ValueError) as exc:
        raise _invalid(UPLOAD_UNREADABLE, UPLOAD_FIELD) from exc
    return _clean(bytes(data), field=UPLOAD_FIELD)


def image_from_url(url: str) -> CleanImage:
    """Fetch an image link through the SSRF guard (see the module docstring) and clean it."""
    return _clean(_fetch(url), field=URL_FIELD)


# --- decoding and re-encoding -------------------------------------------------------------------------


def _invalid(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _amount(value: float) -> str:
    return f"{round(value, 2):g}"  # 10.0 -> "10", 0.01 -> "0.01"


def _too_big() -> str:
    max_bytes = settings.INPUT_MAX_BYTES
    if max_bytes >= 1024 * 1024:
        return f"The image is larger than {_amount(max_bytes / (1024 * 1024))} MB."
    if max_bytes >= 1024:
        return f"The image is larger than {_amount(max_bytes / 1024)} KB."
    return f"The image is larger than {max_bytes} bytes."


def _too_many_pixels() -> str:
    return f"The image is too large to process (over {_amount(settings.INPUT_MAX_PIXELS / 1_000_000)} megapixels)."


def _looks_like_supported_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _clean(data: bytes, *, field: str) -> CleanImage:
    if len(data) > settings.INPUT_MAX_BYTES:
        raise _invalid(_too_big(), field)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A global someone flipped: with it, truncated files would decode as half-grey pictures.
        raise ImproperlyConfigured("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for input checks.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image, image_format = _decode(data, field=field)
            image = _prepare(image, image_format)
            content = _encode(image, image_format)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _invalid(_too_many_pixels(), field) from exc
        except _DECODE_ERRORS as exc:
            raise _invalid(DAMAGED, field) from exc
    mime, ext = FORMATS[image_format]
    return CleanImage(
        content=content,
        mime=mime,
        ext=ext,
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(content).hexdigest(),
    )


def _open(data: bytes, *, field: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError as exc:
        # Our formats' signatures but unreadable headers: a broken file rather than a wrong one.
        message = DAMAGED if _looks_like_supported_image(data) else NOT_AN_IMAGE
        raise _invalid(message, field) from exc
    if _FORMAT_ALIASES.get(image.format, image.format) not in FORMATS:
        raise _invalid(NOT_AN_IMAGE, field)
    return image


def _decode(data: bytes, *, field: str) -> tuple[Image.Image, str]:
    """Open twice: `verify()` checks structure (and PNG checksums) but leaves the image unusable;
    the second open decodes the first frame in full, which catches truncated pixel data."""
    probe = _open(data, field=field)
    width, height = probe.size
    if width * height > settings.INPUT_MAX_PIXELS:  # before a single pixel is decoded
        raise _invalid(_too_many_pixels(), field)
    probe.verify()
    image = _open(data, field=field)
    if image.size != (width, height) or image.format != probe.format:
        raise _invalid(DAMAGED, field)
    image.seek(0)  # animated images: the first frame only
    image.load()
    return image, _FORMAT_ALIASES.get(image.format, image.format)


def _target_mode(image: Image.Image, image_format: str) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if image_format == "JPEG":
        return "RGB"
    if image_format == "WEBP":
        return "RGBA" if has_alpha else "RGB"
    if image.mode in ("RGBA", "RGB", "L", "LA") and "transparency" not in image.info:
        return image.mode
    if image.mode == "P" or has_alpha:
        return "RGBA"
    if image.mode == "1" or image.mode.startswith("I"):
        return "L"
    return "RGB"


def _prepare(image: Image.Image, image_format: str) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    mode = _target_mode(image, image_format)
    if image.mode.startswith("I") and mode == "L":
        image = image.convert("I").point(lambda value: value / 256)  # 16-bit grey: scale, don't clip
    if image.mode != mode:
        image = image.convert(mode)
    max_side = settings.INPUT_MAX_SIDE
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # Savers copy some metadata from `info` unless told otherwise (PNG: ICC profile and transparency,
    # JPEG: the comment). Start from nothing, so nothing we did not decide to keep gets written.
    image.info = {}
    return image


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    elif image_format == "WEBP":
        image.save(buffer, format="WEBP", quality=WEBP_QUALITY)
    else:
        image.save(buffer, format="PNG")  # zlib level 6: "optimize" costs seconds on big images for a few %
    return buffer.getvalue()


# --- fetching links -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One URL that passed the guard, with the addresses it may be fetched from."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) name or IP literal, without brackets
    port: int
    request_target: str  # path and query, quoted
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _ascii_host(hostname: str) -> str:
    if ":" in hostname:  # an IPv6 literal
        return hostname
    try:
        return hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _invalid(BAD_LINK, URL_FIELD) from exc


def _is_allowed_private(host: str, port: int, entries=None) -> bool:
    """The test suite's own local servers, listed as host:port (`entries`, by default the image
    links' INPUT_URL_ALLOWED_PRIVATE_HOSTS)."""
    if entries is None:
        entries = settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS
    allowed = {entry.strip().lower().rstrip(".") for entry in entries}
    host = host.lower().rstrip(".")
    return f"{host}:{port}" in allowed or f"[{host}]:{port}" in allowed


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for addresses on the public internet. Addresses that embed an IPv4 address
    (::ffff:127.0.0.1, 6to4, NAT64) are judged by the embedded one as well."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not _is_public_address(embedded):
            return False
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return True  # only the embedded address is ever reached (Python calls 64:ff9b::/96 reserved)
        if ip.is_site_local:
            return False
    if any(ip in network for network in _BLOCKED_NETWORKS if network.version == ip.version):
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone id ("%25eth0") is not part of the address
    except ValueError:
        return None


def _check_url(url: str, *, allowed_private_hosts=None, field: str = URL_FIELD) -> _Target:
    """Parse and guard one URL. Nothing here opens a connection. `allowed_private_hosts` (host:port
    entries) may be private; by default the image links' setting."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(LINK_TOO_LONG, field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid(BAD_LINK, field) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid(SCHEME_NOT_ALLOWED, field)
    if parts.username is not None or parts.password is not None:
        raise _invalid(CREDENTIALS_NOT_ALLOWED, field)
    if not parts.hostname:
        raise _invalid(BAD_LINK, field)
    host = _ascii_host(parts.hostname)
    port = port or (443 if scheme == "https" else 80)
    allowed_private = _is_allowed_private(host, port, allowed_private_hosts)
    if not allowed_private:
        literal = _ip_literal(host)
        if literal is not None and not _is_public_address(literal):
            raise _invalid(PRIVATE_ADDRESS, field)  # no need to ask the resolver
    addresses = _resolve(host, port)
    if not allowed_private:
        for address in addresses:
            if not _is_public_address(ipaddress.ip_address(address)):
                raise _invalid(PRIVATE_ADDRESS, field)
    request_target = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        request_target += "?" + quote(parts.query, safe=_URL_SAFE)
    return _Target(url=url, scheme=scheme, host=host, port=port, request_target=request_target, addresses=addresses)


def _resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address the name resolves to, in the resolver's order (numeric forms such as
    2130706433, 0x7f000001 or 127.1 come back normalised, so the checks see the real address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise _invalid(HOST_NOT_FOUND, URL_FIELD) from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise _invalid(HOST_NOT_FOUND, URL_FIELD) from exc
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _invalid(HOST_NOT_FOUND, URL_FIELD)
    return tuple(addresses)


def fetch_deadline() -> float:
    """Seconds the whole fetch of a link may take: `_DEADLINE_FACTOR` per-step timeouts, capped by
    INPUT_URL_DEADLINE (the fetch runs on a web worker)."""
    return min(_DEADLINE_FACTOR * float(settings.INPUT_URL_TIMEOUT), float(settings.INPUT_URL_DEADLINE))


def _fetch(url: str) -> bytes:
    timeout = float(settings.INPUT_URL_TIMEOUT)
    deadline = time.monotonic() + fetch_deadline()
    current = url
    for _hop in range(settings.INPUT_URL_MAX_REDIRECTS + 1):
        target = _check_url(current)
        pool, response = _request(target, timeout=timeout, deadline=deadline)
        try:
            if response.status in _REDIRECTS:
                location = response.headers.get("Location", "").strip()
                if not location:
                    raise _invalid(REDIRECT_WITHOUT_LOCATION, URL_FIELD)
                current = urljoin(target.url, location)
                continue
            if not 200 <= response.status < 300:
                raise _invalid(f"The image link answered with HTTP {response.status}.", URL_FIELD)
            return _read_body(response)
        finally:
            response.close()
            pool.close()
    raise _invalid(TOO_MANY_REDIRECTS, URL_FIELD)


def _time_left(deadline: float) -> float:
    """Seconds until the deadline; a TimeoutError once it has passed (urllib3 reports it as a
    read timeout, and a zero timeout would make the socket non-blocking rather than stop it)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the image fetch deadline passed")
    return remaining


class _DeadlineReader(io.RawIOBase):
    """The response's view of the socket: before each single read, the socket's timeout becomes
    the per-read timeout or the time left, whichever is shorter. http.client reads the status line,
    the headers and the body through this, so a server that drips any of them stops at the deadline."""

    def __init__(self, sock: socket.socket, *, timeout: float, deadline: float):
        super().__init__()
        self._sock = sock
        # The socket's own reader, counted by the socket like any makefile(): the connection may
        # close its socket while the response is still being read (Connection: close).
        self._raw = sock.makefile("rb", buffering=0)
        self._timeout = timeout
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        self._sock.settimeout(min(self._timeout, _time_left(self._deadline)))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """Handed to http.client's response instead of the socket: all it asks of it is makefile()."""

    def __init__(self, sock: socket.socket, *, timeout: float, deadline: float):
        self._sock, self._timeout, self._deadline = sock, timeout, deadline

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, timeout=self._timeout, deadline=self._deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, timeout: float, deadline: float, **kwargs):
        super().__init__(_DeadlineSocket(sock, timeout=timeout, deadline=deadline), *args, **kwargs)


class _DeadlineConnectionMixin:
    """A connection whose TLS handshake and response reads end at the fetch's deadline."""

    def __init__(self, *args, fetch_timeout: float, deadline: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._fetch_deadline = deadline
        self.response_class = functools.partial(_DeadlineResponse, timeout=fetch_timeout, deadline=deadline)

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # the TCP connect, already bounded by the time left
        try:
            # What follows on this socket before the response (TLS handshake, sending the request)
            # gets what is left; CPython bounds a whole handshake by the socket timeout.
            sock.settimeout(min(sock.gettimeout() or float("inf"), _time_left(self._fetch_deadline)))
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(self, "the image fetch deadline passed while connecting") from exc
        return sock


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def pinned_pool(
    target: _Target, address: str, timeout: urllib3.Timeout, *, deadline: float
) -> urllib3.HTTPConnectionPool:
    """A pool bound to one checked address of `target` (from `public_url_check`). urllib3 connects
    to `host`; the name the person gave travels as the Host header and, for https, as SNI and the
    name the certificate is checked against, so a DNS answer that changed since the check is never
    used. Its connections stop at `deadline` (a `time.monotonic()` value) whatever the server does:
    the TLS handshake and sending get the time left, and every read of the status line, headers and
    body is bounded by it (`_DeadlineReader`). The image fetch and the developer webhooks use it."""
    limits = {"fetch_timeout": timeout.read_timeout, "deadline": deadline}
    if target.scheme == "https":
        return _DeadlineHTTPSPool(
            host=address,
            port=target.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
            **limits,
        )
    return _DeadlineHTTPPool(host=address, port=target.port, timeout=timeout, maxsize=1, retries=False, **limits)


def _request(target: _Target, *, timeout: float, deadline: float):
    """Send the GET to the first checked address that accepts a connection. Returns (pool, response)
    with the body not read yet; the caller closes both."""
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "image/png, image/jpeg, image/webp;q=0.9, */*;q=0.1",
        "Accept-Encoding": "identity",
    }
    failure: Exception | None = None
    for address in target.addresses:
        try:
            remaining = _time_left(deadline)
        except TimeoutError:
            break
        limit = urllib3.Timeout(connect=min(timeout, remaining), read=min(timeout, remaining))
        pool = pinned_pool(target, address, limit, deadline=deadline)
        try:
            response = pool.urlopen(
                "GET",
                target.request_target,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
                timeout=limit,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            pool.close()
            failure = exc  # try the next address of the same name
            continue
        except (Urllib3HTTPError, http.client.HTTPException, OSError) as exc:
            pool.close()
            raise _network_error(exc) from exc
        return pool, response
    if failure is None:
        raise _invalid(TIMED_OUT, URL_FIELD)
    raise _network_error(failure) from failure


def _read_body(response) -> bytes:
    """The body, up to INPUT_MAX_BYTES. The deadline needs no check here: every socket read under
    it is bounded by the time left (`_DeadlineReader`), and one past it raises a timeout."""
    max_bytes = settings.INPUT_MAX_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > max_bytes:
        raise _invalid(_too_big(), URL_FIELD)
    body = bytearray()
    try:
        # read1: at most one read from the socket per call, so the size cap is checked as the
        # bytes come (stream() would wait for a full chunk).
        while chunk := response.read1(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise _invalid(_too_big(), URL_FIELD)
    except (Urllib3HTTPError, http.client.HTTPException, OSError) as exc:
        raise _network_error(exc) from exc
    return bytes(body)


def _timed_out(exc: BaseException) -> bool:
    """A timeout, also when urllib3 or http.client wrapped it (e.g. ProtocolError("Connection
    aborted.", TimeoutError) when the deadline ends a read of the status line)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
            return not isinstance(error, NewConnectionError)
        stack.extend([error.__cause__, error.__context__, *error.args])
    return False


def _network_error(exc: BaseException) -> InvalidInput:
    """One sentence for each way the network can fail."""
    if isinstance(exc, NewConnectionError):  # a subclass of ConnectTimeoutError in urllib3
        message = CONNECT_FAILED
    elif _timed_out(exc):
        message = TIMED_OUT
    elif isinstance(exc, Urllib3SSLError | ssl.SSLError | ssl.CertificateError):
        message = TLS_FAILED
    else:
        message = DOWNLOAD_FAILED
    return _invalid(message, URL_FIELD)


# --- the guard for URLs other code connects to ---------------------------------------------------------

_PUBLIC_URL_MESSAGES = {
    BAD_LINK: "That is not a valid web address.",
    LINK_TOO_LONG: "That address is too long.",
    HOST_NOT_FOUND: "We could not find the server at that address. Check the URL.",
    SCHEME_NOT_ALLOWED: "That is not a valid web address.",
    CREDENTIALS_NOT_ALLOWED: "Addresses with a user name or password are not supported.",
}


def public_url_check(
    url: str, *, schemes: tuple[str, ...] = ("https",), allowed_private_hosts=(), field: str = "url"
) -> _Target:
    """The image links' SSRF guard for a URL some other code will connect to (developer
    webhooks), without connecting: no user:password, the name resolved once and *every* address
    public, except the `host:port` pairs in `allowed_private_hosts` (a test suite's own servers),
    which are also the only ones that may use a scheme outside `schemes`.

    Returns the checked target. Connect only to one of its `addresses` (pinned, so a second DNS
    answer is never consulted), sending `host_header` as Host and, for https, `host` as SNI and
    as the certificate's name, as `pinned_pool` does. Raises InvalidInput (on `field`) with a sentence
    that does not talk about images."""
    allowed_private_hosts = tuple(allowed_private_hosts)  # none by default, not the image links' setting
    try:
        target = _check_url(url, allowed_private_hosts=allowed_private_hosts, field=field)
        if target.scheme not in schemes and not _is_allowed_private(target.host, target.port, allowed_private_hosts):
            names = " or ".join(f"{allowed}://" for allowed in schemes)
            raise _invalid(f"The address must start with {names}.", field)
    except InvalidInput as exc:
        message = str(exc)
        if message == CREDENTIALS_NOT_ALLOWED and not urlsplit(url.strip()).hostname:
            message = BAD_LINK  # no host at all: not a web address, whatever else it holds
        raise _invalid(_PUBLIC_URL_MESSAGES.get(message, message), field) from exc
    return target
