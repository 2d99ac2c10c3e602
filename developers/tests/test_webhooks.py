"""Completion webhooks end to end: a real job on the offline local model, a real HTTP receiver on
127.0.0.1, deliveries verified with the `standardwebhooks` library (not our own signer)."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing import services as billing
from billing.models import LedgerReason
from developers import services
from developers.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from developers.tasks import deliver_due_webhooks
from generation import services as generation_services
from generation.models import CatalogEntry, Generation, Status

pytestmark = pytest.mark.django_db


def fund(user, amount: int = 10) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"w:{user.pk}")


def run_job(user, django_capture_on_commit_callbacks, prompt="a lighthouse at dawn") -> Generation:
    spec = generation_services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="local-canvas"), values={"prompt": prompt, "seed": "7"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        generation = generation_services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def run_sweep(django_capture_on_commit_callbacks) -> int:
    """Beat's sweep; the tasks it queues once its marks commit run here (eager Celery)."""
    with django_capture_on_commit_callbacks(execute=True):
        return deliver_due_webhooks()


@pytest.fixture
def signed_in(client, alice):
    fund(alice)
    client.force_login(alice)
    return client


def register(client, url, events=("generation.succeeded", "generation.failed"), description="Test receiver"):
    return client.post(reverse("developers:webhooks"), {"url": url, "description": description, "events": events})


def verify(endpoint: WebhookEndpoint, request) -> dict:
    """The receiver's side: the standardwebhooks library checks the signature and the timestamp."""
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    return Webhook(endpoint.secret).verify(request.body, headers)


def test_a_finished_job_is_delivered_signed_and_verifies_with_the_standard_webhooks_library(
    signed_in, alice, receiver, django_capture_on_commit_callbacks
):
    response = register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == reverse("developers:webhook", args=[endpoint.uuid])
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) == len("whsec_") + 32  # base64 of 24 bytes

    generation = run_job(alice, django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hooks/atelier" and request.headers["content-type"] == "application/json"
    event = verify(endpoint, request)  # raises WebhookVerificationError on a bad signature
    assert event["type"] == "generation.succeeded"
    data = event["data"]
    assert data["id"] == str(generation.uuid) and data["status"] == "succeeded"
    assert data["kind"] == generation.kind and data["model"] == "local-canvas" and data["error"] is None
    assert data["viewer_url"] is None  # an image, not a 3D model
    assert "lighthouse" not in request.body.decode()  # never the prompt
    [output] = data["outputs"]
    assert output["mime_type"].startswith("image/")
    # The signed link opens the picture without a session.
    path = output["url"].split("://", 1)[1].split("/", 1)[1]
    picture = Client().get("/" + path)
    assert picture.status_code == 200 and picture["Content-Type"].startswith("image/")

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert request.headers["webhook-id"] == delivery.message_id

    # A tampered body does not verify: the check above is a real one.
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(request.body.replace(b"succeeded", b"failed"), dict(request.headers))

    page = signed_in.get(reverse("developers:webhook", args=[endpoint.uuid]))
    assert b"generation.succeeded" in page.content and b"HTTP 200" in page.content


def test_an_endpoint_that_answers_500_gets_retries_on_the_schedule_shown_in_its_log(
    signed_in, alice, receiver, settings, django_capture_on_commit_callbacks
):
    settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE = [5, 300]
    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get(owner=alice)
    receiver.status = 500

    before = timezone.now()
    run_job(alice, django_capture_on_commit_callbacks)

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1 and delivery.last_status_code == 500
    assert before + timedelta(seconds=4) < delivery.next_attempt_at < timezone.now() + timedelta(seconds=6)
    sweep = functools.partial(run_sweep, django_capture_on_commit_callbacks)
    assert sweep() == 0  # not due yet: nothing is sent early
    assert len(receiver.requests) == 1

    # The retry comes due; beat's sweep sends it (same webhook-id), and schedules the next one.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert sweep() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.status == DeliveryStatus.PENDING
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=290)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.message_id] * 2
    verify(endpoint, receiver.requests[1])

    page = signed_in.get(reverse("developers:webhook", args=[endpoint.uuid])).content.decode()
    assert "Retrying" in page and page.count("HTTP 500") >= 2 and "Next attempt" in page

    # The last retry fails too: the delivery is failed, and "Resend" tries it once more.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    sweep()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3 and delivery.next_attempt_at is None
    assert sweep() == 0
    page = signed_in.get(reverse("developers:webhook", args=[endpoint.uuid])).content.decode()
    assert "Failed" in page and "Resend" in page

    receiver.status = 204
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(reverse("developers:delivery_resend", args=[endpoint.uuid, delivery.pk]))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4
    assert [entry["status_code"] for entry in delivery.attempt_log] == [500, 500, 500, 204]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_a_redirect_is_not_followed(signed_in, alice, receiver, django_capture_on_commit_callbacks):
    register(signed_in, receiver.url)
    receiver.status = 302
    receiver.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data/"}

    run_job(alice, django_capture_on_commit_callbacks)

    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status_code == 302 and delivery.status == DeliveryStatus.PENDING
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
    ],
)
def test_a_private_address_is_refused_at_registration(signed_in, alice, url):
    response = register(signed_in, url)

    assert response.status_code == 200
    assert "private or local network" in response.content.decode()
    assert not WebhookEndpoint.objects.filter(owner=alice).exists()


@pytest.mark.parametrize("url", ["https://0x7f000001/hook", "https://2130706433/hook", "https://127.1/hook"])
def test_numeric_forms_of_loopback_are_refused_by_the_service_too(alice, url):
    """The form's URL check already refuses these; the service's guard does not rely on it."""
    from generation.errors import InvalidInput

    with pytest.raises(InvalidInput, match="private or local network"):
        services.webhook_endpoint_create(user=alice, url=url, events=["generation.succeeded"])
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_to_a_public_address_is_refused(signed_in, alice):
    response = register(signed_in, "http://8.8.8.8/hook")

    assert "must start with https://" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_address_is_checked_again_before_each_delivery(
    signed_in, alice, receiver, settings, django_capture_on_commit_callbacks
):
    register(signed_in, receiver.url)
    settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = []  # as if the name now pointed inside

    run_job(alice, django_capture_on_commit_callbacks)

    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == []
    assert delivery.last_status_code is None and "private or local network" in delivery.last_error
    assert delivery.status == DeliveryStatus.PENDING  # retried later like any failure


def test_only_subscribed_enabled_endpoints_of_the_owner_get_the_event(
    signed_in, alice, bob, receiver, django_capture_on_commit_callbacks
):
    register(signed_in, receiver.url, events=["generation.failed"])
    fund(bob)
    bob_client = Client()
    bob_client.force_login(bob)
    register(bob_client, receiver.url)
    bob_endpoint = WebhookEndpoint.objects.get(owner=bob)
    services.webhook_endpoint_enable(endpoint=bob_endpoint, enabled=False)

    run_job(alice, django_capture_on_commit_callbacks)  # alice listens to failures only
    run_job(bob, django_capture_on_commit_callbacks)  # bob's endpoint is disabled

    assert receiver.requests == [] and not WebhookDelivery.objects.exists()

    services.webhook_endpoint_enable(endpoint=bob_endpoint, enabled=True)
    run_job(bob, django_capture_on_commit_callbacks, prompt="a second one")
    assert len(receiver.requests) == 1
    assert verify(bob_endpoint, receiver.requests[0])["type"] == "generation.succeeded"


def test_send_test_event_and_roll_secret(signed_in, alice, receiver, django_capture_on_commit_callbacks):
    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get()
    old_secret = endpoint.secret
    page = signed_in.get(reverse("developers:webhook", args=[endpoint.uuid])).content.decode()
    assert old_secret in page and 'data-copy-target="endpoint-secret"' in page

    signed_in.post(reverse("developers:webhook_roll", args=[endpoint.uuid]))
    endpoint.refresh_from_db()
    assert endpoint.secret != old_secret and endpoint.secret.startswith("whsec_")

    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(reverse("developers:webhook_test", args=[endpoint.uuid]))
    page = signed_in.get(reverse("developers:webhook", args=[endpoint.uuid])).content.decode()
    assert "webhook.test" in page and "HTTP 200" in page
    event = verify(endpoint, receiver.requests[0])
    assert event["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):  # the old secret no longer verifies
        verify(WebhookEndpoint(secret=old_secret), receiver.requests[0])


def test_at_most_five_endpoints(signed_in, alice, receiver):
    for n in range(5):
        register(signed_in, receiver.url + f"/{n}")
    response = register(signed_in, receiver.url + "/6")
    assert WebhookEndpoint.objects.filter(owner=alice).count() == 5
    assert "the most one account can have" in response.content.decode()
    with pytest.raises(Exception, match="at most 5"):
        services.webhook_endpoint_create(user=alice, url=receiver.url, events=["generation.succeeded"])


def test_someone_elses_endpoint_is_404_everywhere(signed_in, alice, bob, receiver):
    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get()
    delivery = services.webhook_test_send(endpoint=endpoint)
    other = Client()
    other.force_login(bob)

    assert other.get(reverse("developers:webhook", args=[endpoint.uuid])).status_code == 404
    for name in ("webhook_roll", "webhook_toggle", "webhook_delete", "webhook_test"):
        assert other.post(reverse(f"developers:{name}", args=[endpoint.uuid])).status_code == 404
    assert other.post(reverse("developers:delivery_resend", args=[endpoint.uuid, delivery.pk])).status_code == 404
    assert endpoint.url not in other.get(reverse("developers:webhooks")).content.decode()
    endpoint.refresh_from_db()
    assert endpoint.enabled  # nothing bob did changed it
    assert Client().get(reverse("developers:webhooks")).status_code == 302  # sign-in first


def test_forms_carry_csrf_and_refuse_without_it(alice, receiver):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    page = strict.get(reverse("developers:webhooks")).content.decode()
    assert "csrfmiddlewaretoken" in page
    response = strict.post(reverse("developers:webhooks"), {"url": receiver.url, "events": ["generation.succeeded"]})
    assert response.status_code == 403 and not WebhookEndpoint.objects.exists()


def test_delete_removes_the_endpoint_and_its_log(signed_in, alice, receiver, django_capture_on_commit_callbacks):
    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get()
    run_job(alice, django_capture_on_commit_callbacks)
    response = signed_in.post(reverse("developers:webhook_delete", args=[endpoint.uuid]))
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_3d_result_carries_the_signed_viewer_link(signed_in, alice, receiver, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.tests.test_views import png

    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get()
    spec = generation_services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="local-relief"),
        image_upload=SimpleUploadedFile("photo.png", png(), content_type="image/png"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        generation = generation_services.generation_submit(user=alice, spec=spec)
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED
    data = verify(endpoint, receiver.requests[0])["data"]
    assert data["kind"] == "image_to_3d" and data["outputs"][0]["mime_type"] == "model/gltf-binary"
    path = "/" + data["viewer_url"].split("://", 1)[1].split("/", 1)[1]
    assert Client().get(path).status_code == 200  # opens without sign-in


def test_a_failed_job_sends_generation_failed_with_the_reason(
    signed_in, alice, receiver, django_capture_on_commit_callbacks
):
    register(signed_in, receiver.url)
    endpoint = WebhookEndpoint.objects.get()
    spec = generation_services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="local-canvas"), values={"prompt": "never runs"}
    )
    with django_capture_on_commit_callbacks(execute=False):  # queued, not run
        generation = generation_services.generation_submit(user=alice, spec=spec)
    with django_capture_on_commit_callbacks(execute=True):
        generation_services.generation_fail(
            generation_id=generation.pk, message="The model provider failed.", detail="HTTP 500"
        )

    event = verify(endpoint, receiver.requests[0])
    assert event["type"] == "generation.failed"
    assert event["data"]["status"] == "failed" and event["data"]["error"] == "The model provider failed."
    assert event["data"]["outputs"] == [] and "HTTP 500" not in receiver.requests[0].body.decode()


def test_a_name_is_resolved_once_and_sent_as_the_host_header(alice, receiver, settings):
    """The connection goes to the checked address; the endpoint's name travels as Host."""
    settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = [f"localhost:{receiver.port}"]
    endpoint = services.webhook_endpoint_create(
        user=alice, url=f"http://localhost:{receiver.port}/hooks/atelier", events=["generation.succeeded"]
    )
    delivery = services.webhook_test_send(endpoint=endpoint)
    outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)

    assert outcome.delivered
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"
    verify(endpoint, receiver.requests[0])
