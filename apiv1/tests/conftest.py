"""API v1 fixtures: a funded person, their API keys, and the Bearer header."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from accounts import services as accounts
from billing import services as billing
from billing.models import LedgerReason


def fund(user, amount: int, key: str = "api") -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"{key}:{user.pk}")


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def png(size=(96, 64), color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def relief_png(side: int = 160) -> bytes:
    """A picture with light and shade (a lit dome on a gradient), so a 3D relief made from it has depth."""
    from PIL import ImageChops, ImageDraw, ImageFilter

    ramp = Image.linear_gradient("L").resize((side, side))
    dome = Image.new("L", (side, side), 0)
    ImageDraw.Draw(dome).ellipse((side // 5, side // 5, side * 4 // 5, side * 4 // 5), fill=255)
    light = ImageChops.lighter(ramp.point(lambda v: v // 2), dome.filter(ImageFilter.GaussianBlur(side // 10)))
    picture = Image.merge("RGB", (light, light.point(lambda v: v * 3 // 4), Image.new("L", (side, side), 90)))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def funded(alice):
    fund(alice, 10)
    return alice


@pytest.fixture
def key(funded) -> str:
    """An API key of Alice's with both scopes (plaintext)."""
    _, plaintext = accounts.api_key_create(user=funded, name="script", scopes=["read", "generate"])
    return plaintext


@pytest.fixture
def read_key(funded) -> str:
    _, plaintext = accounts.api_key_create(user=funded, name="reader", scopes=["read"])
    return plaintext


class _PictureHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        body = relief_png() if self.path.endswith(".png") else b"not a picture"
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if self.path.endswith(".png") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def picture_server(settings):
    """A real HTTP server on 127.0.0.1 serving a PNG at any `*.png` path (and text elsewhere),
    let through the SSRF guard for this test only."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PictureHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{server.server_port}"]
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
