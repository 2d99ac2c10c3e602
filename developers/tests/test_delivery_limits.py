"""A slow or hostile receiver cannot hold a worker, nor get one delivery sent twice at once:
the whole attempt ends at a wall-clock deadline, at most two addresses are tried, an attempt's
claim outlasts the task's time limits, only the claim's holder records an outcome, the beat
sweep does not queue a delivery again while it is queued, and "Send test event" / "Resend" are
rate limited per person."""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from developers import delivery as client
from developers import services
from developers.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from developers.tasks import deliver_webhook

pytestmark = pytest.mark.django_db


class DripServer:
    """A receiver that answers its status line at once, then drips one header byte every
    `interval` seconds for `seconds` (a server holding a worker the old way: every single read
    comes well within any per-read timeout)."""

    def __init__(self, *, seconds: float, interval: float = 0.05, host: str = "127.0.0.1"):
        self.seconds, self.interval = seconds, interval
        self.connections = 0
        self.finished = 0  # connections that got every byte out
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                conn.sendall(b"x")
                time.sleep(self.interval)
            conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            self.finished += 1
        except OSError:
            pass  # we hung up on it: what the deadline is for
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def drip(settings):
    servers = []

    def start(**kwargs) -> DripServer:
        server = DripServer(**kwargs)
        settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{server.port}"]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def make_delivery(endpoint: WebhookEndpoint, event: str = "generation.succeeded") -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id=f"msg_{endpoint.pk}_{WebhookDelivery.objects.count()}",
        event_type=event,
        payload={"type": event, "data": {}},
        next_attempt_at=timezone.now(),
    )


def test_a_server_dripping_its_headers_is_cut_off_at_the_deadline(alice, drip, settings):
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 0.5
    server = drip(seconds=8)
    endpoint = services.webhook_endpoint_create(user=alice, url=f"http://127.0.0.1:{server.port}/h")
    delivery = make_delivery(endpoint)

    started = time.monotonic()
    outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    elapsed = time.monotonic() - started

    assert elapsed < 2, elapsed  # not the 8 s the server would take: the attempt's deadline is 0.5 s
    assert outcome.status_code is None and outcome.error == "No answer within 0.5 seconds."
    assert server.connections == 1 and server.finished == 0
    delivery.refresh_from_db()
    # A failed attempt like any other: in the log, retried on the schedule.
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.attempt_log[0]["error"] == "No answer within 0.5 seconds." and delivery.claim_token == ""
    assert delivery.next_attempt_at > timezone.now()


def test_at_most_two_addresses_of_a_name_are_tried(alice, settings, monkeypatch):
    """The name answers three addresses; only the third accepts. Two refusals end the attempt."""
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 2.0
    listener = socket.create_server(("127.0.0.4", 0))
    port = listener.getsockname()[1]
    listener_thread_hits = []

    def accept():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        listener_thread_hits.append(1)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    threading.Thread(target=accept, daemon=True).start()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # the DNS answer of a name with three addresses
        if host == "hooks.example.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4")
            ]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = [f"hooks.example.test:{port}"]
    try:
        endpoint = services.webhook_endpoint_create(user=alice, url=f"http://hooks.example.test:{port}/h")
        delivery = make_delivery(endpoint)
        outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    finally:
        listener.close()

    assert outcome.status_code is None and outcome.error.startswith("Could not connect")
    assert listener_thread_hits == []


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_cannot_claim_a_delivery_while_its_attempt_runs(alice, drip, settings):
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 1.0
    server = drip(seconds=8)
    endpoint = services.webhook_endpoint_create(user=alice, url=f"http://127.0.0.1:{server.port}/h")
    delivery = make_delivery(endpoint)
    results = []

    def worker():
        try:
            results.append(services.webhook_delivery_attempt(delivery_id=delivery.pk))
        finally:
            connection.close()

    first = threading.Thread(target=worker)
    started = time.monotonic()
    first.start()
    time.sleep(0.4)
    # Meanwhile: a second copy of the task, and beat's sweep, find nothing to do.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert services.webhook_deliveries_queue_due() == []
    first.join(timeout=10)
    assert time.monotonic() - started < 3

    [outcome] = results
    assert outcome.error == "No answer within 1 seconds."
    assert server.connections == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and len(delivery.attempt_log) == 1


def test_the_claim_outlasts_the_deadline_and_the_tasks_time_limits(settings):
    deadline = client.attempt_deadline()
    assert deadline == settings.DEVELOPER_WEBHOOK_TIMEOUT
    assert deadline < deliver_webhook.soft_time_limit < deliver_webhook.time_limit
    assert deliver_webhook.time_limit < services._lease().total_seconds()
    # Far below the project-wide 15 minutes: a slow receiver cannot hold a worker that long.
    assert deliver_webhook.time_limit < settings.CELERY_TASK_SOFT_TIME_LIMIT


def test_the_tasks_soft_time_limit_records_a_failed_attempt(alice, drip, settings):
    """Celery's soft limit raises SoftTimeLimitExceeded in the task (billiard sends a signal to the
    worker process); here a timer does the same in this process, in the middle of the attempt."""
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 30.0  # the deadline is not what stops it
    server = drip(seconds=8)
    endpoint = services.webhook_endpoint_create(user=alice, url=f"http://127.0.0.1:{server.port}/h")
    delivery = make_delivery(endpoint)

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        deliver_webhook(delivery.pk)  # returns: the task records the stop instead of raising
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_error == "The attempt was stopped: it took too long."
    first_retry = settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE[0]
    assert delivery.next_attempt_at < timezone.now() + timedelta(seconds=first_retry + 1)
    assert delivery.claim_token == ""


def test_an_outcome_is_written_only_by_the_attempt_that_holds_the_claim(alice, receiver):
    endpoint = services.webhook_endpoint_create(user=alice, url=receiver.url)
    delivery = make_delivery(endpoint)
    first = services.webhook_delivery_claim(delivery_id=delivery.pk)
    assert services.webhook_delivery_claim(delivery_id=delivery.pk) is None  # claimed
    # Its lease ran out (a worker that died): another attempt claims it.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    second = services.webhook_delivery_claim(delivery_id=delivery.pk)
    assert second is not None and second.token != first.token

    late = client.Outcome(200, "", 12_000)
    assert services.webhook_delivery_record(claim=first, outcome=late) is False
    delivery.refresh_from_db()
    assert delivery.attempts == 0 and delivery.status == DeliveryStatus.PENDING

    outcome = services.webhook_delivery_send(claim=second)
    assert services.webhook_delivery_record(claim=second, outcome=outcome) is True
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert len(receiver.requests) == 1
    # Recorded once: the first attempt's outcome cannot land afterwards either.
    assert services.webhook_delivery_record(claim=first, outcome=late) is False


def test_the_sweep_queues_a_due_delivery_once(alice, receiver, django_capture_on_commit_callbacks):
    endpoint = services.webhook_endpoint_create(user=alice, url=receiver.url)
    due = make_delivery(endpoint)
    with django_capture_on_commit_callbacks() as queued:  # the tasks are not run: only counted
        assert services.webhook_deliveries_queue_due() == [due.pk]
        assert services.webhook_deliveries_queue_due() == []  # queued already
        assert services.webhook_deliveries_queue_due() == []
    assert len(queued) == 1

    # A test event is queued when it is made: the sweep leaves it alone too.
    with django_capture_on_commit_callbacks() as queued:
        test_event = services.webhook_test_send(endpoint=endpoint)
        assert services.webhook_deliveries_queue_due() == []
    assert len(queued) == 1

    # A task that got lost (a broker restart): after the queue lease, the sweep queues it again.
    WebhookDelivery.objects.filter(pk__in=[due.pk, test_event.pk]).update(
        queued_at=timezone.now() - services.QUEUE_LEASE - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks() as queued:
        assert sorted(services.webhook_deliveries_queue_due()) == sorted([due.pk, test_event.pk])
    assert len(queued) == 1


def test_send_test_event_and_resend_are_rate_limited_per_person(
    client, alice, bob, receiver, settings, django_capture_on_commit_callbacks
):
    settings.DEVELOPER_WEBHOOK_TEST_RATE = "2/h"
    endpoint = services.webhook_endpoint_create(user=alice, url=receiver.url)
    client.force_login(alice)
    test_url = reverse("developers:webhook_test", args=[endpoint.uuid])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(test_url).status_code == 302
    assert len(receiver.requests) == 2

    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(test_url, follow=True)
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "You have sent many test events and resends in a short time. Try again in" in text
    assert "Test events and resends: up to 2 an hour." in text  # the limit is shown beside the button
    assert len(receiver.requests) == 2 and WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2

    # "Resend" counts against the same limit.
    failed = make_delivery(endpoint)
    WebhookDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(reverse("developers:delivery_resend", args=[endpoint.uuid, failed.pk]), follow=True)
    assert refused.status_code == 200 and "Try again in" in refused.content.decode()
    failed.refresh_from_db()
    assert failed.status == DeliveryStatus.FAILED and len(receiver.requests) == 2

    # Per person: someone else still can.
    bobs = services.webhook_endpoint_create(user=bob, url=receiver.url)
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("developers:webhook_test", args=[bobs.uuid]))
    assert len(receiver.requests) == 3
