"""generation.inputs: uploads and image links become clean images, or a sentence saying why not.

Uploads are built in memory with Pillow; links are fetched from real local HTTP(S) servers on
127.0.0.1. Nothing here needs the database.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import random
import select
import socket
import ssl
import struct
import threading
import time
import warnings
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from PIL import Image, ImageFile, PngImagePlugin

from generation import inputs
from generation.errors import InvalidInput

NOT_AN_IMAGE = "That file is not a PNG, JPEG or WebP image."
DAMAGED = "The image looks damaged or incomplete."
TOO_BIG = "The image is larger than 10 MB."
TOO_MANY_PIXELS = "The image is too large to process (over 40 megapixels)."
PRIVATE = "That address points to a private or local network, which we don't fetch."
SCHEME = "Only http and https image links are supported."
CREDENTIALS = "Image links with a user name or password are not supported."
TIMED_OUT = "The image link took too long to answer."
TOO_MANY_REDIRECTS = "Too many redirects."


# --- helpers ------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def picture(size=(64, 48), mode="RGB", color=(200, 120, 40)) -> Image.Image:
    return Image.new(mode, size, color)


def noise(size=(256, 256)) -> Image.Image:
    """Incompressible pixels, so a file cut in half really misses half its data."""
    return Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))


def upload(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def reopen(clean: inputs.CleanImage) -> Image.Image:
    image = Image.open(io.BytesIO(clean.content))
    image.load()
    return image


def refused(call, *args) -> InvalidInput:
    """Run the call, insist it raised InvalidInput (and so returned nothing usable), return the error."""
    result = None
    with pytest.raises(InvalidInput) as caught:
        result = call(*args)
    assert result is None
    return caught.value


def solid_png(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG of any dimensions, written by hand: all-zero rows compress about
    1000:1, so even 20000x20000 (400 megapixels) is a file of a few dozen kilobytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg_with_gps_and_rotation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"  # camera make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 7.5)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 12.0)
    return encode(picture((40, 20)), "JPEG", exif=exif, comment=b"shot at home")


# --- uploads ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "ext", "mode"),
    [("PNG", "image/png", "png", "RGB"), ("JPEG", "image/jpeg", "jpg", "RGB"), ("WEBP", "image/webp", "webp", "RGB")],
)
def test_valid_upload_is_reencoded_in_its_own_format(fmt, mime, ext, mode):
    data = encode(picture((64, 48)), fmt)
    clean = inputs.image_from_upload(upload(data, name="whatever.bin", content_type="application/octet-stream"))
    assert (clean.mime, clean.ext, clean.width, clean.height) == (mime, ext, 64, 48)
    image = reopen(clean)
    assert (image.format, image.size, image.mode) == (fmt, (64, 48), mode)
    red, green, blue = image.getpixel((10, 10))[:3]
    assert abs(red - 200) < 8 and abs(green - 120) < 8 and abs(blue - 40) < 8
    assert clean.sha256 == hashlib.sha256(clean.content).hexdigest()


def test_jpeg_with_gps_exif_comes_out_upright_and_without_metadata():
    source = jpeg_with_gps_and_rotation()
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(0x8825)  # the input really carries GPS

    clean = inputs.image_from_upload(upload(source, name="holiday.jpg", content_type="image/jpeg"))

    image = reopen(clean)
    assert not image.getexif()
    assert not image.getexif().get_ifd(0x8825)
    assert (clean.width, clean.height) == (20, 40) == image.size  # orientation applied, then dropped
    assert b"Exif" not in clean.content and b"PhoneMaker" not in clean.content
    assert "comment" not in image.info and b"shot at home" not in clean.content


def test_png_text_exif_and_icc_are_dropped():
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Alice Example")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    icc = b"\x00" * 128  # not a valid profile, but Pillow carries whatever `info` holds
    data = encode(picture(mode="RGBA", color=(1, 2, 3, 128)), "PNG", pnginfo=text, exif=exif, icc_profile=icc)

    clean = inputs.clean_image_bytes(data)

    image = reopen(clean)
    assert not image.getexif()
    assert not {"Author", "exif", "icc_profile"} & set(image.info)
    assert b"Alice Example" not in clean.content
    assert image.mode == "RGBA" and image.getpixel((0, 0)) == (1, 2, 3, 128)


@pytest.mark.parametrize(
    ("mode", "color", "expected_mode", "expected_pixel"),
    [
        ("P", 3, "RGBA", None),
        ("LA", (90, 40), "LA", (90, 40)),
        ("L", 77, "L", 77),
        ("1", 1, "L", 255),
        ("I;16", 40000, "L", 156),  # 16-bit grey is scaled to 8 bits, not clipped to white
    ],
)
def test_png_modes_are_normalised(mode, color, expected_mode, expected_pixel):
    clean = inputs.clean_image_bytes(encode(Image.new(mode, (8, 8), color), "PNG"))
    image = reopen(clean)
    assert image.mode == expected_mode
    if expected_pixel is not None:
        assert image.getpixel((0, 0)) == expected_pixel


def test_transparent_webp_keeps_its_alpha():
    clean = inputs.clean_image_bytes(encode(picture(mode="RGBA", color=(10, 200, 10, 0)), "WEBP", lossless=True))
    assert reopen(clean).mode == "RGBA"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_image_keeps_only_the_first_frame(fmt):
    frames = [picture((32, 32), color=(255, 0, 0)), picture((32, 32), color=(0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 2

    image = reopen(inputs.clean_image_bytes(data))

    assert getattr(image, "n_frames", 1) == 1
    red, _green, blue = image.getpixel((5, 5))[:3]
    assert red > 240 and blue < 15  # the red first frame, give or take lossy re-encoding


def test_multi_picture_jpeg_from_a_camera_is_a_jpeg_of_its_first_picture():
    first, second = picture((40, 30), color=(255, 0, 0)), picture((40, 30), color=(0, 0, 255))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"

    clean = inputs.clean_image_bytes(data)

    image = reopen(clean)
    assert (clean.mime, image.format, getattr(image, "n_frames", 1)) == ("image/jpeg", "JPEG", 1)
    red, _green, blue = image.getpixel((5, 5))
    assert red > 240 and blue < 15


def test_large_image_is_scaled_down_to_the_longest_side_setting(settings):
    assert settings.INPUT_MAX_SIDE == 2048
    clean = inputs.image_from_upload(upload(encode(picture((4000, 1000)), "JPEG"), name="wide.jpg"))
    assert (clean.width, clean.height) == (2048, 512) == reopen(clean).size


def test_longest_side_follows_the_setting(settings):
    settings.INPUT_MAX_SIDE = 100
    clean = inputs.clean_image_bytes(encode(picture((300, 450)), "WEBP"))
    assert (clean.width, clean.height) == (67, 100)


@pytest.mark.parametrize(
    "size",
    [
        (7000, 7000),  # 49 MP: over our 40 MP limit, under Pillow's own
        (10000, 10000),  # 100 MP: Pillow warns (DecompressionBombWarning)
        (20000, 20000),  # 400 MP: Pillow refuses (DecompressionBombError)
    ],
)
def test_decompression_bomb_is_refused(size):
    data = solid_png(*size)
    assert len(data) < 100_000  # tiny on disk, huge in memory
    error = refused(inputs.image_from_upload, upload(data, name="bomb.png"))
    assert str(error) == TOO_MANY_PIXELS
    assert error.field == "image"


def test_pixel_limit_is_checked_before_decoding(settings, monkeypatch):
    settings.INPUT_MAX_PIXELS = 10_000
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    error = refused(inputs.clean_image_bytes, encode(picture((200, 200)), "PNG"))
    assert str(error) == "The image is too large to process (over 0.01 megapixels)."
    assert decoded == []


def test_pillow_bomb_warning_is_refused_even_when_our_own_limit_is_higher(settings):
    settings.INPUT_MAX_PIXELS = 10**9
    error = refused(inputs.clean_image_bytes, solid_png(10000, 10000))
    assert str(error) == "The image is too large to process (over 1000 megapixels)."


def test_decoding_leaves_pillow_and_warning_globals_alone():
    filters = list(warnings.filters)
    max_pixels = Image.MAX_IMAGE_PIXELS
    refused(inputs.clean_image_bytes, solid_png(10000, 10000))
    inputs.clean_image_bytes(encode(picture(), "PNG"))
    assert warnings.filters == filters
    assert max_pixels == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_loading_truncated_images_globally_is_a_configuration_error(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImproperlyConfigured):
        inputs.clean_image_bytes(encode(picture(), "PNG"))


def test_text_file_named_png_is_refused():
    error = refused(inputs.image_from_upload, upload(b"hello, I am not a picture\n" * 20, name="cat.png"))
    assert str(error) == NOT_AN_IMAGE
    assert error.field == "image"


@pytest.mark.parametrize(
    "data",
    [
        encode(picture(), "GIF"),
        encode(picture(), "BMP"),
        encode(picture(), "TIFF"),
        b"",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["gif", "bmp", "tiff", "empty", "svg"],
)
def test_other_formats_are_refused(data):
    error = refused(inputs.image_from_upload, upload(data, name="picture.png"))
    assert str(error) == NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_refused(fmt):
    data = encode(noise(), fmt)
    error = refused(inputs.image_from_upload, upload(data[: len(data) // 2], name="cut.img"))
    assert str(error) == DAMAGED


def test_png_with_a_bad_checksum_is_refused():
    data = bytearray(encode(noise((32, 32)), "PNG"))
    data[-20] ^= 0xFF  # inside the last IDAT chunk
    assert str(refused(inputs.clean_image_bytes, bytes(data))) == DAMAGED


def test_upload_over_the_size_limit_is_refused_before_decoding(monkeypatch):
    opened = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args))
    error = refused(inputs.image_from_upload, upload(b"\x00" * (20 * 1024 * 1024), name="big.png"))
    assert str(error) == TOO_BIG
    assert opened == []


def test_upload_that_understates_its_size_is_cut_off_while_reading():
    content = io.BytesIO(b"\x00" * (20 * 1024 * 1024))
    lying = UploadedFile(content, name="big.png", content_type="image/png", size=1000)  # read in 64 KB chunks
    assert str(refused(inputs.image_from_upload, lying)) == TOO_BIG
    assert content.tell() < 11 * 1024 * 1024  # stopped soon after the limit


def test_size_limit_follows_the_setting(settings):
    settings.INPUT_MAX_BYTES = 2048
    assert str(refused(inputs.clean_image_bytes, encode(noise((64, 64)), "PNG"))) == "The image is larger than 2 KB."


# --- image links: the guard, with no connection at all -----------------------------------------------


@pytest.fixture
def connections(monkeypatch):
    """Every outgoing connection attempt, refused and recorded."""
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise ConnectionRefusedError("tests: no connections here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def resolve_as(monkeypatch):
    """Make chosen host names resolve to chosen addresses (in order); other names resolve normally.
    Returns the list of names looked up."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def fake(host, port, *args, **kwargs):
        lookups.append(host)
        if host in answers:
            addresses = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in addresses
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)

    def set_answers(host: str, *addresses: list[str]) -> list[str]:
        answers[host] = list(addresses)
        return lookups

    return set_answers


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://10.1.2.3/x.png",
        "http://172.16.0.1/x.png",
        "http://192.168.1.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/x.png",
        "http://0.0.0.0/x.png",
        "http://224.0.0.1/x.png",
        "http://255.255.255.255/x.png",
        "http://[::1]/x.png",
        "http://[::]/x.png",
        "http://[fd00::1]/x.png",
        "http://[fe80::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::7f00:1]/x.png",
        "http://[2002:7f00:1::1]/x.png",
        "http://localhost/x.png",
        "http://LocalHost/x.png",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://017700000001/",
        "https://127.0.0.1:8443/x.png",
    ],
)
def test_private_and_local_addresses_are_refused_without_connecting(url, connections):
    error = refused(inputs.image_from_url, url)
    assert str(error) == PRIVATE
    assert error.field == "image_url"
    assert connections == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x.png", SCHEME),
        ("file:///etc/passwd", SCHEME),
        ("gopher://example.com/", SCHEME),
        ("javascript:alert(1)", SCHEME),
        ("example.com/x.png", SCHEME),
        ("http://user:pw@example.com/x.png", CREDENTIALS),
        ("http://user@example.com/x.png", CREDENTIALS),
        ("http://example.com\\@127.0.0.1/x.png", CREDENTIALS),
        ("http:///x.png", "That image link is not a valid web address."),
        ("http://example.com:99999/x.png", "That image link is not a valid web address."),
        ("http://[::1/x.png", "That image link is not a valid web address."),
        ("http://example.com/" + "a" * 3000, "That image link is too long."),
    ],
)
def test_other_schemes_credentials_and_malformed_links_are_refused_without_connecting(url, message, connections):
    assert str(refused(inputs.image_from_url, url)) == message
    assert connections == []


def test_a_name_with_any_private_address_is_refused(resolve_as, connections):
    resolve_as("mixed.example", ["93.184.215.14", "10.0.0.7"])
    assert str(refused(inputs.image_from_url, "http://mixed.example/x.png")) == PRIVATE
    resolve_as("mapped.example", ["2606:4700::1111", "::ffff:127.0.0.1"])
    assert str(refused(inputs.image_from_url, "https://mapped.example/x.png")) == PRIVATE
    assert connections == []


def test_a_name_that_does_not_resolve_is_refused(connections):
    error = refused(inputs.image_from_url, "http://no-such-host.invalid/x.png")
    assert str(error) == "We could not find the server of that image link. Check the address."
    assert connections == []


# --- image links: real local servers -----------------------------------------------------------------

OK_PNG = encode(picture((64, 48), color=(30, 160, 90)), "PNG")
BIG = 20 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "image/png", **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, content_type="text/plain", Location=location)

    def do_GET(self):
        server = self.server
        server.seen.append({"path": self.path, "host": self.headers.get("Host"), "ua": self.headers.get("User-Agent")})
        path = self.path
        try:
            if path in ("/ok.png", "/ok.png?size=large&x=1"):
                self._send(200, OK_PNG)
            elif path == "/big":  # 20 MB, no Content-Length: only counting can stop it
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                block = b"\x00" * 65536
                for _ in range(BIG // len(block)):
                    self.wfile.write(block)
            elif path == "/big-declared":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(BIG))
                self.end_headers()
                self.wfile.flush()
                # Never sends the body: the header alone must be enough. Wait (bounded) for the
                # client to hang up, and say so.
                self.connection.settimeout(10)
                try:
                    if self.connection.recv(1) == b"":
                        server.hung_up.set()
                except OSError:
                    pass
            elif path == "/slow":
                server.stop.wait(5)
                self._send(200, OK_PNG)
            elif path == "/drip":  # always a byte within the read timeout, never done
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100):
                    if server.stop.wait(0.1):
                        break
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
            elif path == "/gzip-bomb":  # 20 KB on the wire, 20 MB once decompressed
                self._send(200, gzip.compress(b"\x00" * BIG), Content_Encoding="gzip")
            elif path == "/missing":
                self._send(404, b"not here", content_type="text/plain")
            elif path == "/broken":
                self._send(500, b"oops", content_type="text/plain")
            elif path == "/redirect-to-other":
                self._redirect(f"http://127.0.0.1:{server.other_port}/ok.png")
            elif path == "/redirect-to-localhost":
                self._redirect(f"http://localhost:{server.server_port}/ok.png")
            elif path == "/redirect-to-metadata":
                self._redirect("http://169.254.169.254/latest/meta-data/", status=307)
            elif path == "/redirect-ok":
                self._redirect("/ok.png")
            elif path == "/nested/redirect-up":
                self._redirect("../ok.png?size=large&x=1", status=301)
            elif path == "/loop":
                self._redirect("/loop")
            elif path.startswith("/chain/"):
                left = int(path.rsplit("/", 1)[1])
                self._redirect(f"/chain/{left - 1}" if left else "/ok.png", status=308)
            elif path == "/no-location":
                self._send(302, content_type="text/plain")
            elif path == "/text.png":
                self._send(200, b"this is text, whatever the header says\n" * 10, content_type="image/png")
            elif path == "/cut-short":  # promises more than it sends, then hangs up
                self.send_response(200)
                self.send_header("Content-Length", str(len(OK_PNG) * 2))
                self.end_headers()
                self.wfile.write(OK_PNG)
            else:
                self._send(404, b"", content_type="text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address=("127.0.0.1", 0)):
        super().__init__(address, _Handler)
        self.seen: list[dict] = []
        self.stop = threading.Event()
        self.hung_up = threading.Event()  # a client closed the connection before any body byte
        self.other_port = 0

    def start(self) -> _Server:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def servers():
    main, other = _Server().start(), _Server().start()
    main.other_port = other.server_port
    yield main, other
    main.close()
    other.close()


@pytest.fixture
def web(servers, settings):
    """The main server, allowed by the guard; the other server is not."""
    main, other = servers
    main.seen.clear()
    other.seen.clear()
    main.hung_up.clear()
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{main.server_port}"]
    main.base = f"http://127.0.0.1:{main.server_port}"
    return main


def test_image_link_is_fetched_and_reencoded(web):
    clean = inputs.image_from_url(f"{web.base}/ok.png")
    assert (clean.mime, clean.ext, clean.width, clean.height) == ("image/png", "png", 64, 48)
    assert reopen(clean).getpixel((3, 3)) == (30, 160, 90)
    assert web.seen == [{"path": "/ok.png", "host": f"127.0.0.1:{web.server_port}", "ua": "AtelierImageFetcher/1.0"}]


def test_download_over_the_size_limit_is_cut_off(web):
    started = time.monotonic()
    error = refused(inputs.image_from_url, f"{web.base}/big")
    assert str(error) == TOO_BIG
    assert error.field == "image_url"
    assert time.monotonic() - started < 5


def test_compressed_download_is_measured_after_decompression(web):
    assert str(refused(inputs.image_from_url, f"{web.base}/gzip-bomb")) == TOO_BIG


def test_declared_length_over_the_limit_is_refused_without_reading(web, settings):
    # The server never sends the body. Had we tried to read it, we would wait out a read timeout
    # and answer TIMED_OUT; TOO_BIG, and the server seeing us hang up, show we never tried.
    settings.INPUT_URL_TIMEOUT = 30
    assert str(refused(inputs.image_from_url, f"{web.base}/big-declared")) == TOO_BIG
    assert web.hung_up.wait(10)


def test_slow_server_times_out_quickly(web, settings):
    settings.INPUT_URL_TIMEOUT = 0.5
    started = time.monotonic()
    assert str(refused(inputs.image_from_url, f"{web.base}/slow")) == TIMED_OUT
    assert time.monotonic() - started < 3


def test_server_that_drips_bytes_hits_the_overall_deadline(web, settings):
    settings.INPUT_URL_TIMEOUT = 0.5  # each byte comes in time; the whole never does
    started = time.monotonic()
    assert str(refused(inputs.image_from_url, f"{web.base}/drip")) == TIMED_OUT
    assert time.monotonic() - started < 3


class _HeaderDripper:
    """A bare TCP server on 127.0.0.1 for one client: it reads the request, then sends a valid
    response's status line and headers one byte every `interval` seconds, and stops by itself
    after `limit` seconds. It notes how many bytes it sent and whether the client hung up."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: " + str(len(OK_PNG)).encode() + b"\r\n\r\n"
    ) + OK_PNG

    def __init__(self, *, interval: float, limit: float):
        self.interval, self.limit = interval, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(limit)
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.hung_up = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _HeaderDripper:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.done.set()
        self.thread.join(timeout=self.limit + 5)
        self.listener.close()

    def _serve(self) -> None:
        stop_at = time.monotonic() + self.limit
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.limit)
            request = b""
            while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
                request += chunk
            # poll(), not select(): late in a long test run this socket's number can pass 1024,
            # which select() refuses (the thread died and the client saw a broken download).
            watch = select.poll()
            watch.register(conn, select.POLLIN)
            for byte in self.RESPONSE:
                if time.monotonic() > stop_at or self.done.wait(self.interval):
                    return
                if watch.poll(0) and conn.recv(1) == b"":
                    self.hung_up.set()  # the client closed its end
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    self.hung_up.set()
                    return
                self.sent += 1


def test_server_that_drips_its_headers_is_cut_off_at_the_deadline(settings):
    """Each byte of the status line and headers comes well within the per-read timeout; only an
    overall deadline that covers the headers stops it (before the fix it held the thread for as long
    as the server liked: ~40 s here, minutes for a real attacker)."""
    settings.INPUT_URL_TIMEOUT = 2 / 3  # overall deadline: 3 x 2/3 = 2 s; one byte every 0.5 s
    deadline = inputs._DEADLINE_FACTOR * settings.INPUT_URL_TIMEOUT
    with _HeaderDripper(interval=0.5, limit=60) as server:
        settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{server.port}"]
        outcome: dict = {}

        def fetch() -> None:
            try:
                inputs.image_from_url(f"http://127.0.0.1:{server.port}/slow-headers.png")
            except InvalidInput as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=fetch, daemon=True)
        worker.start()
        worker.join(timeout=deadline + 10)  # generous for a slow machine; the server would go on for 60 s
        assert not worker.is_alive(), "the fetch still holds its thread"
        assert str(outcome["error"]) == TIMED_OUT
        assert outcome["error"].field == "image_url"
        assert server.hung_up.wait(5), "we must close the connection, not wait for the server to"
        header_length = len(_HeaderDripper.RESPONSE) - len(OK_PNG)
        assert 0 < server.sent < header_length / 2  # cut off in the headers, long before their end


@pytest.mark.parametrize(("path", "status"), [("/missing", 404), ("/broken", 500)])
def test_error_status_is_named(web, path, status):
    assert str(refused(inputs.image_from_url, web.base + path)) == f"The image link answered with HTTP {status}."


@pytest.mark.parametrize("path", ["/redirect-to-other", "/redirect-to-localhost", "/redirect-to-metadata"])
def test_redirect_to_a_private_address_is_refused(web, servers, path):
    _, other = servers
    assert str(refused(inputs.image_from_url, web.base + path)) == PRIVATE
    assert [hit["path"] for hit in web.seen] == [path]  # the redirect target was never asked
    assert other.seen == []


@pytest.mark.parametrize(
    ("path", "expected_hits"),
    [
        ("/redirect-ok", ["/redirect-ok", "/ok.png"]),
        ("/nested/redirect-up", ["/nested/redirect-up", "/ok.png?size=large&x=1"]),
        ("/chain/2", ["/chain/2", "/chain/1", "/chain/0", "/ok.png"]),  # three redirects: the limit
    ],
)
def test_redirects_are_followed_up_to_the_limit(web, path, expected_hits):
    clean = inputs.image_from_url(web.base + path)
    assert (clean.width, clean.height) == (64, 48)
    assert [hit["path"] for hit in web.seen] == expected_hits


@pytest.mark.parametrize("path", ["/loop", "/chain/3"])
def test_too_many_redirects_are_refused(web, path, settings):
    assert settings.INPUT_URL_MAX_REDIRECTS == 3
    assert str(refused(inputs.image_from_url, web.base + path)) == TOO_MANY_REDIRECTS
    assert len(web.seen) == 4  # the link itself and three redirects, no more


def test_redirect_without_a_location_is_refused(web):
    error = refused(inputs.image_from_url, f"{web.base}/no-location")
    assert str(error) == "The image link redirected without saying where to."


def test_text_served_as_png_is_refused(web):
    assert str(refused(inputs.image_from_url, f"{web.base}/text.png")) == NOT_AN_IMAGE


def test_body_shorter_than_announced_is_refused(web):
    error = refused(inputs.image_from_url, f"{web.base}/cut-short")
    assert str(error) == "The image download was interrupted. Try again, or upload the file instead."


def test_closed_port_is_a_clear_message(settings):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, never listening: connections are refused
        settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{port}"]
        error = refused(inputs.image_from_url, f"http://127.0.0.1:{port}/ok.png")
    assert str(error) == "We could not connect to the server of that image link."


def test_the_allow_list_names_host_and_port_exactly(web, servers):
    _, other = servers
    assert str(refused(inputs.image_from_url, f"http://127.0.0.1:{other.server_port}/ok.png")) == PRIVATE
    assert str(refused(inputs.image_from_url, f"http://localhost:{web.server_port}/ok.png")) == PRIVATE
    assert web.seen == [] and other.seen == []


def test_connects_to_the_checked_address_with_the_original_host_header(web, settings, resolve_as):
    """DNS rebinding: the name answers 127.0.0.1 (allowed here) first and a private address after.
    The fetch must use the first answer and never ask again."""
    lookups = resolve_as("images.example", ["127.0.0.1"], ["10.9.9.9"])
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"images.example:{web.server_port}"]

    clean = inputs.image_from_url(f"http://images.example:{web.server_port}/ok.png")

    assert (clean.width, clean.height) == (64, 48)
    assert lookups.count("images.example") == 1
    assert web.seen[0]["host"] == f"images.example:{web.server_port}"


def test_a_refused_address_is_never_fetched_even_if_another_one_works(web, settings, resolve_as):
    resolve_as("twofaced.example", ["127.0.0.1", "192.168.0.10"])
    assert str(refused(inputs.image_from_url, f"http://twofaced.example:{web.server_port}/ok.png")) == PRIVATE
    assert web.seen == []


def test_ipv6_link_is_fetched_from_the_checked_address(settings):
    class _Server6(_Server):
        address_family = socket.AF_INET6

    try:
        server = _Server6(("::1", 0)).start()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"[::1]:{server.server_port}"]
        clean = inputs.image_from_url(f"http://[::1]:{server.server_port}/ok.png")
        assert (clean.width, clean.height) == (64, 48)
        assert server.seen[0]["host"] == f"[::1]:{server.server_port}"
    finally:
        server.close()


# --- image links over https: pinned address, SNI and certificate checked against the name ------------


def _certificate(subject: str, issuer: x509.Name, public_key, signing_key, *, ca: bool, names=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An https server on 127.0.0.1 whose certificate (from a throwaway CA) names images.example."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Atelier test CA")])
    ca_cert = _certificate("Atelier test CA", ca_name, ca_key.public_key(), ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("images.example", ca_name, leaf_key.public_key(), ca_key, ca=False, names=["images.example"])
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = _Server()
    server.sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: server.sni.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.ca_file = str(ca_file)
    server.start()
    yield server
    server.close()


@pytest.fixture
def https_web(tls_server, settings, resolve_as, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls_server.ca_file)  # trust the throwaway CA, for this test only
    port = tls_server.server_port
    for name in ("images.example", "other.example"):
        resolve_as(name, ["127.0.0.1"])
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"images.example:{port}", f"other.example:{port}", f"127.0.0.1:{port}"]
    tls_server.seen.clear()
    tls_server.sni.clear()
    return tls_server


def test_https_link_is_fetched_from_the_checked_address_with_sni_and_a_verified_certificate(https_web):
    port = https_web.server_port
    clean = inputs.image_from_url(f"https://images.example:{port}/ok.png")
    assert (clean.width, clean.height) == (64, 48)
    assert https_web.sni == ["images.example"]
    assert https_web.seen[0]["host"] == f"images.example:{port}"


@pytest.mark.parametrize("host", ["other.example", "127.0.0.1"])
def test_https_certificate_for_another_name_is_refused(https_web, host):
    error = refused(inputs.image_from_url, f"https://{host}:{https_web.server_port}/ok.png")
    assert str(error) == "The image link's secure connection could not be verified (HTTPS certificate problem)."
    assert https_web.seen == []


def test_https_certificate_from_an_unknown_authority_is_refused(https_web, monkeypatch, tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    error = refused(inputs.image_from_url, f"https://images.example:{https_web.server_port}/ok.png")
    assert str(error) == "The image link's secure connection could not be verified (HTTPS certificate problem)."
    assert https_web.seen == []


def test_a_timeout_wrapped_by_urllib3_still_reads_as_a_timeout():
    """When the deadline ends a read of the status line, urllib3 reports ProtocolError("Connection
    aborted.", TimeoutError): the person is told the link was too slow, not that it broke."""
    from urllib3.exceptions import NewConnectionError, ProtocolError

    assert str(inputs._network_error(ProtocolError("Connection aborted.", TimeoutError("timed out")))) == TIMED_OUT
    assert str(inputs._network_error(ProtocolError("Connection aborted.", ConnectionResetError()))) != TIMED_OUT
    assert "connect" in str(inputs._network_error(NewConnectionError(None, "refused")))
