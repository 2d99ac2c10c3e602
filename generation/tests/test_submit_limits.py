"""What a submit may cost us before anything is charged: credits are checked before an image link
is fetched, and submits are rate-limited per person and per client address (HTTP 429).

Links point at a real HTTP server on 127.0.0.1 that counts the requests it gets.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation import services
from generation.models import Generation
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOT_AN_IMAGE_SIZE = 10 * 1024 * 1024
NO_CREDITS = "This needs 1 credit and you have 0."
RATE_LIMITED = "You are starting generations faster than we allow."


class _CountingHandler(BaseHTTPRequestHandler):
    server: _CountingServer

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(NOT_AN_IMAGE_SIZE))
        self.end_headers()
        block = b"\x00" * 65536
        try:
            for _ in range(NOT_AN_IMAGE_SIZE // len(block)):
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.requests = 0
        self.lock = threading.Lock()


@pytest.fixture
def link_server(settings):
    """A 10 MB non-image on a local server the SSRF guard lets through; stopped after the test."""
    server = _CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{server.server_port}"]
    server.url = f"http://127.0.0.1:{server.server_port}/huge.bin"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def no_queue(monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda generation_id: None)  # jobs stay queued: only submits count


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"l:{user.pk}")


def submit_text(client: Client, **extra):
    return client.post("/create/?tab=image", {"model": "local-canvas", "prompt": "a kite"}, **extra)


def page_of(response) -> str:
    return html.unescape(response.content.decode())


# --- credits before any download --------------------------------------------------------------------


def test_fifty_link_submits_without_credits_fetch_nothing(client, bob, link_server, settings):
    settings.GENERATION_SUBMIT_RATE_PER_USER = settings.GENERATION_SUBMIT_RATE_PER_IP = "1000/h"
    client.force_login(bob)  # a verified person with 0 credits
    for _ in range(50):
        response = client.post(
            "/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image_url": link_server.url}
        )
        assert response.status_code == 200
        assert NO_CREDITS in page_of(response)
    assert link_server.requests == 0
    assert not Generation.objects.exists()


def test_an_open_debt_refuses_a_link_submit_before_fetching(client, alice, link_server):
    fund(alice, 10)
    Wallet.objects.filter(user=alice).update(debt=3)  # a refunded payment whose credits were spent
    client.force_login(alice)
    response = client.post(
        "/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image_url": link_server.url}
    )
    assert "Your account owes 3 credits" in page_of(response)
    assert link_server.requests == 0
    assert not Generation.objects.exists()


def test_with_credits_the_link_is_fetched(client, alice, link_server, no_queue):
    """The counterpart: the pre-check lets a funded person through to the download."""
    fund(alice, 10)
    client.force_login(alice)
    response = client.post(
        "/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image_url": link_server.url}
    )
    assert "That file is not a PNG, JPEG or WebP image." in page_of(response)
    assert link_server.requests == 1


# --- rate limits ----------------------------------------------------------------------------------------


def test_submits_past_the_per_person_limit_answer_429_with_a_clear_message(client, alice, settings, no_queue):
    settings.GENERATION_SUBMIT_RATE_PER_USER = "3/h"  # hours, so no window ends during the test
    settings.GENERATION_SUBMIT_RATE_PER_IP = "1000/h"
    fund(alice, 10)
    client.force_login(alice)
    assert [submit_text(client).status_code for _ in range(3)] == [302, 302, 302]
    response = submit_text(client)
    assert response.status_code == 429
    assert RATE_LIMITED in page_of(response)
    assert int(response["Retry-After"]) > 0
    assert "a kite" in page_of(response)  # the form comes back with what was typed
    assert Generation.objects.filter(owner=alice).count() == 3
    assert Wallet.objects.get(user=alice).balance == 7


def test_the_per_address_limit_counts_everyone_behind_one_address(alice, bob, settings, no_queue):
    settings.GENERATION_SUBMIT_RATE_PER_USER = "1000/h"
    settings.GENERATION_SUBMIT_RATE_PER_IP = "3/h"
    carol = UserFactory(email="carol@example.com", display_name="Carol")
    browsers = {}
    for person in (alice, bob, carol):
        fund(person, 10)
        browsers[person.email] = Client()
        browsers[person.email].force_login(person)
    same_place = {"REMOTE_ADDR": "203.0.113.5"}
    assert submit_text(browsers[alice.email], **same_place).status_code == 302
    assert submit_text(browsers[alice.email], **same_place).status_code == 302
    assert submit_text(browsers[bob.email], **same_place).status_code == 302
    assert submit_text(browsers[bob.email], **same_place).status_code == 429
    assert submit_text(browsers[carol.email], REMOTE_ADDR="198.51.100.7").status_code == 302


def test_behind_our_proxy_clients_are_told_apart_and_a_spoofed_header_is_not(alice, bob, settings, no_queue):
    settings.GENERATION_SUBMIT_RATE_PER_USER = "1000/h"
    settings.GENERATION_SUBMIT_RATE_PER_IP = "1/h"
    settings.TRUSTED_PROXY_COUNT = 1
    for person in (alice, bob):
        fund(person, 10)
    first, second = Client(), Client()
    first.force_login(alice)
    second.force_login(bob)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # Our proxy appends what it saw; what the client sent itself stays to the left.
    assert submit_text(first, HTTP_X_FORWARDED_FOR="203.0.113.10", **proxy).status_code == 302
    assert submit_text(second, HTTP_X_FORWARDED_FOR="203.0.113.20", **proxy).status_code == 302
    assert submit_text(second, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.20", **proxy).status_code == 429


# --- from the review: one link fetch at a time, no uploads kept for refused submits ----------------------


def test_a_second_link_while_one_is_being_fetched_is_refused_without_fetching(client, alice, link_server, no_queue):
    from django.core.cache import cache

    fund(alice, 10)
    client.force_login(alice)
    cache.add(f"generation:link-fetch:{alice.pk}", 1, timeout=30)  # a slow fetch of hers is running
    response = client.post(
        "/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image_url": link_server.url}
    )
    assert services.LINK_BUSY in page_of(response)
    assert link_server.requests == 0

    cache.delete(f"generation:link-fetch:{alice.pk}")  # it ended
    client.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image_url": link_server.url})
    assert link_server.requests == 1
    assert cache.get(f"generation:link-fetch:{alice.pk}") is None  # released after the fetch, even a refused one


def test_the_whole_fetch_is_capped_by_input_url_deadline(settings):
    from generation import inputs

    settings.INPUT_URL_TIMEOUT, settings.INPUT_URL_DEADLINE = 10, 4
    assert inputs.fetch_deadline() == 4
    settings.INPUT_URL_TIMEOUT = 1
    assert inputs.fetch_deadline() == 3


def _png_upload(name: str = "photo.png"):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def test_refused_submits_keep_no_upload(client, bob, settings):
    from generation.models import PendingUpload

    settings.GENERATION_SUBMIT_RATE_PER_USER = "2/h"
    client.force_login(bob)  # 0 credits
    for _ in range(4):  # refused for credits twice, then rate-limited twice
        client.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "winter", "image": _png_upload()})
    assert not PendingUpload.objects.exists()


def test_an_upload_refused_for_another_reason_is_still_kept(client, alice, no_queue):
    from generation.models import PendingUpload

    fund(alice, 10)
    client.force_login(alice)
    response = client.post("/create/?tab=edit", {"model": "local-restyle", "prompt": "", "image": _png_upload()})
    assert response.status_code == 200
    assert PendingUpload.objects.filter(owner=alice).count() == 1
