"""Erasure stops the person's webhooks at once: their endpoints are turned off (with the reason
shown) and their pending deliveries marked failed, so nothing more is sent to their servers while
the erasure runs; someone else's endpoint is untouched."""

from __future__ import annotations

import pytest
from django.utils import timezone

from developers import services as webhook_services
from developers.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from developers.tests import receiver as receiver_module
from privacy.services import erasure as erasure_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    hook, server = receiver_module.start()
    settings.DEVELOPER_WEBHOOK_ALLOWED_PRIVATE_HOSTS = [hook.host]
    settings.DEVELOPER_WEBHOOK_TIMEOUT = 5.0
    yield hook
    server.shutdown()
    server.server_close()


def delivery(endpoint: WebhookEndpoint, n: int, status: str = DeliveryStatus.PENDING) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id=f"msg_erasure_{endpoint.pk}_{n}",
        event_type="generation.succeeded",
        payload={"type": "generation.succeeded", "data": {}},
        status=status,
        next_attempt_at=timezone.now() if status == DeliveryStatus.PENDING else None,
    )


def test_credentials_revoke_disables_webhooks_and_fails_pending_deliveries(alice, bob, receiver):
    endpoint = webhook_services.webhook_endpoint_create(user=alice, url=receiver.url)
    second = webhook_services.webhook_endpoint_create(user=alice, url=receiver.url + "/2")
    pending = [delivery(endpoint, 1), delivery(second, 2)]
    delivered = delivery(endpoint, 3, status=DeliveryStatus.SUCCEEDED)
    bobs = webhook_services.webhook_endpoint_create(user=bob, url=receiver.url)
    bobs_pending = delivery(bobs, 4)

    # Two endpoints turned off and two pending deliveries failed (no keys or tokens here).
    assert erasure_services.credentials_revoke(user=alice) == 4

    for row in (endpoint, second):
        row.refresh_from_db()
        assert row.enabled is False and row.disabled_reason == "The account is being erased."
    for row in pending:
        row.refresh_from_db()
        assert row.status == DeliveryStatus.FAILED and row.next_attempt_at is None
        assert row.last_error == "Not sent. The account is being erased."
        # A task queued before the erasure finds nothing to send.
        assert webhook_services.webhook_delivery_attempt(delivery_id=row.pk) is None
    delivered.refresh_from_db()
    assert delivered.status == DeliveryStatus.SUCCEEDED
    assert receiver.requests == []
    # Nothing left to revoke on a second call.
    assert erasure_services.credentials_revoke(user=alice) == 0

    # Someone else's endpoint still gets its events.
    bobs.refresh_from_db()
    assert bobs.enabled is True
    outcome = webhook_services.webhook_delivery_attempt(delivery_id=bobs_pending.pk)
    assert outcome.delivered and len(receiver.requests) == 1


def test_erasure_start_turns_the_webhooks_off(alice, receiver, django_capture_on_commit_callbacks):
    endpoint = webhook_services.webhook_endpoint_create(user=alice, url=receiver.url)
    pending = delivery(endpoint, 1)

    with django_capture_on_commit_callbacks():  # the erasure run itself is not needed here
        erasure_services.account_erasure_start(user=alice)

    endpoint.refresh_from_db()
    pending.refresh_from_db()
    assert endpoint.enabled is False and pending.status == DeliveryStatus.FAILED
    assert webhook_services.webhook_delivery_attempt(delivery_id=pending.pk) is None
    assert receiver.requests == []
