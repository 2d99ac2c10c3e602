"""Completion webhooks: endpoints a developer registers, and the deliveries of
`generation.succeeded` / `generation.failed` to them, signed the Standard Webhooks way.

A delivery row is written when a job becomes final (receivers.py, on generation's
`generation_finished`), then tried at once by a task; a failed attempt is tried again after each
delay of DEVELOPER_WEBHOOK_RETRY_SCHEDULE (about a day in all), picked up by the beat task
`developers.tasks.deliver_due_webhooks`, and marked failed after the last. Attempts claim their
row with a conditional update (a lease on `next_attempt_at`), so the task and the beat sweep never
send the same attempt twice; the `webhook-id` stays the same on every attempt so receivers can
drop duplicates anyway.

What a delivery holds: the generation's id, status, kind, model and error sentence; never its
prompt (assistants' prompts are purged after ASSISTANT_PROMPT_RETENTION_DAYS and must not live on
in a log). Output links are signed afresh at each attempt, so a retry hours later still carries
links that open.
"""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from developers import delivery as client
from developers.errors import WebhookDeliveryNotResendable, WebhookEndpointLimit
from developers.models import TEST_EVENT, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

LOG_SIZE = 50  # deliveries shown on an endpoint's page
DUE_BATCH = 500
OUTPUT_URL_TTL = 3600  # seconds; local-file links (S3 links live as long as the presigner's default)


def _message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def webhook_secret_generate() -> str:
    """`whsec_` + base64 of 24 random bytes, the Standard Webhooks secret format."""
    return client.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _clean_events(events) -> list[str]:
    chosen = [event for event in WebhookEvent.values if event in set(events or ())]
    return chosen or list(WebhookEvent.values)


# --- endpoints --------------------------------------------------------------------------------------


def webhook_endpoint_create(*, user, url: str, description: str = "", events=()) -> WebhookEndpoint:
    """Register an endpoint after the SSRF guard accepted its URL (InvalidInput on field "url"
    otherwise); at most DEVELOPER_WEBHOOK_MAX_ENDPOINTS per person (WebhookEndpointLimit)."""
    client.check_url(url)  # resolves the name: outside the transaction
    with transaction.atomic():
        # The owner's row as the lock, so two submits at once cannot both pass the count.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        limit = settings.DEVELOPER_WEBHOOK_MAX_ENDPOINTS
        if WebhookEndpoint.objects.filter(owner=user).count() >= limit:
            raise WebhookEndpointLimit(limit)
        return WebhookEndpoint.objects.create(
            owner=user,
            url=url.strip(),
            description=description.strip(),
            events=_clean_events(events),
            secret=webhook_secret_generate(),
        )


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, url: str, description: str, events) -> WebhookEndpoint:
    if url.strip() != endpoint.url:
        client.check_url(url)
    endpoint.url = url.strip()
    endpoint.description = description.strip()
    endpoint.events = _clean_events(events)
    endpoint.save(update_fields=["url", "description", "events"])
    return endpoint


def webhook_endpoint_secret_roll(*, endpoint: WebhookEndpoint) -> str:
    """A new secret, in use from the next attempt on; the old one stops verifying at once."""
    endpoint.secret = webhook_secret_generate()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, enabled: bool) -> bool:
    """Turn an endpoint on or off (off: nothing is sent to it; events that happen meanwhile are
    not kept for later). True if it changed."""
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=not enabled).update(
        enabled=enabled, disabled_reason="" if enabled else "Disabled by you."
    )
    endpoint.refresh_from_db(fields=["enabled", "disabled_reason"])
    return bool(changed)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries go with it (cascade)


# --- deliveries -------------------------------------------------------------------------------------


def _queue(delivery_ids: list[int]) -> None:
    from developers.tasks import deliver_webhook

    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)


def _generation_data(generation) -> dict:
    return {
        "id": str(generation.uuid),
        "status": generation.status,
        "kind": generation.kind,
        "model": generation.model.slug,
        "cost": generation.cost,
        "created_at": generation.queued_at.isoformat(),
        "finished_at": generation.finished_at.isoformat() if generation.finished_at else None,
        "error": generation.error_message or None,
    }


def webhook_deliveries_create(*, generation_id: int, status: str) -> list[int]:
    """One delivery for each enabled endpoint of the generation's owner that subscribed to
    `generation.<status>`, queued once this commits. Returns the new rows' ids."""
    from generation.models import Generation

    event = f"generation.{status}"
    if event not in WebhookEvent.values:
        return []
    generation = Generation.objects.select_related("model").filter(pk=generation_id).first()
    if generation is None:
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(owner_id=generation.owner_id, enabled=True)
        if not endpoint.events or event in endpoint.events
    ]
    if not endpoints:
        return []
    now = timezone.now()
    payload = {"type": event, "timestamp": now.isoformat(), "data": _generation_data(generation)}
    with transaction.atomic():
        rows = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                endpoint=endpoint,
                message_id=_message_id(),
                event_type=event,
                generation_uuid=generation.uuid,
                payload=payload,
                next_attempt_at=now,
            )
            for endpoint in endpoints
        )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _queue(ids))
    return ids


def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """ "Send test event": a `webhook.test` delivery, tried once (no retries), whatever the
    endpoint subscribed to."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            message_id=_message_id(),
            event_type=TEST_EVENT,
            payload={
                "type": TEST_EVENT,
                "timestamp": now.isoformat(),
                "data": {"endpoint_id": str(endpoint.uuid), "message": "A test event from Atelier."},
            },
            next_attempt_at=now,
        )
        transaction.on_commit(lambda: _queue([delivery.pk]))
    return delivery


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> None:
    """Try a failed delivery once more, now (same `webhook-id`; no further retries after this one)."""
    with transaction.atomic():
        moved = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        if not moved:
            raise WebhookDeliveryNotResendable("Only a failed delivery can be sent again.")
        transaction.on_commit(lambda: _queue([delivery.pk]))


def _absolute(url: str) -> str:
    return settings.SITE_URL + url if url.startswith("/") else url


def _viewer_url(generation) -> str | None:
    """The API's signed 3D viewer page (opens without sign-in for API_VIEWER_LINK_SECONDS)."""
    from apiv1.engine import viewer_url

    return viewer_url(generation)


def _body(delivery: WebhookDelivery) -> bytes:
    """The JSON sent: the stored payload, with the outputs' links signed now."""
    import json

    payload = dict(delivery.payload)
    if delivery.event_type in WebhookEvent.values and delivery.generation_uuid:
        from generation import storage
        from generation.models import AssetRole, Generation

        data = dict(payload.get("data") or {})
        generation = (
            Generation.objects.select_related("model").filter(uuid=delivery.generation_uuid, deleting_at=None).first()
        )
        outputs, viewer = [], None
        if generation is not None:
            for asset in generation.assets.filter(role=AssetRole.OUTPUT).order_by("index"):
                # A neutral file name: the default one is made from the prompt.
                name = f"atelier-{generation.uuid.hex[:8]}-{asset.index + 1}.{asset.filename.rsplit('.', 1)[-1]}"
                outputs.append(
                    {
                        "url": _absolute(storage.access_url(asset.storage_key, filename=name, ttl=OUTPUT_URL_TTL)),
                        "mime_type": asset.mime_type,
                        "width": asset.width,
                        "height": asset.height,
                    }
                )
            if any(asset["mime_type"] == "model/gltf-binary" for asset in outputs):
                viewer = _viewer_url(generation)
        data["outputs"] = outputs
        data["viewer_url"] = viewer
        payload["data"] = data
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _lease() -> timedelta:
    return timedelta(seconds=float(settings.DEVELOPER_WEBHOOK_TIMEOUT) * 3 + 30)


def webhook_delivery_attempt(*, delivery_id: int) -> client.Outcome | None:
    """Try one delivery if it is due. Claims it first (so nobody else sends this attempt), posts
    outside any transaction, then records the outcome and schedules the next try or gives up.
    Returns the outcome, or None when there was nothing to do (not due, already done, gone)."""
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + _lease())
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="Not sent: the endpoint is disabled."
        )
        return None
    body = _body(delivery)
    outcome = client.post(url=endpoint.url, secret=endpoint.secret, message_id=delivery.message_id, body=body)
    _record(delivery_id=delivery_id, outcome=outcome, at=now)
    return outcome


@transaction.atomic
def _record(*, delivery_id: int, outcome: client.Outcome, at) -> None:
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    delivery.attempts += 1
    delivery.attempt_log = [
        *delivery.attempt_log,
        {
            "n": delivery.attempts,
            "at": at.isoformat(),
            "status_code": outcome.status_code,
            "error": outcome.error,
            "ms": outcome.duration_ms,
        },
    ]
    delivery.last_attempt_at = at
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    schedule = list(settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE)
    if outcome.delivered:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, None
        delivery.delivered_at = timezone.now()
    elif delivery.event_type != TEST_EVENT and delivery.attempts <= len(schedule):
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=schedule[delivery.attempts - 1])
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    delivery.save(
        update_fields=[
            "attempts",
            "attempt_log",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )


def webhook_deliveries_due(*, now=None, limit: int = DUE_BATCH) -> list[int]:
    """Ids of pending deliveries whose next attempt is due (oldest first), for the beat sweep."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def webhook_deliveries_purge(*, now=None, limit: int = DUE_BATCH) -> int:
    """Delete finished deliveries older than DEVELOPER_WEBHOOK_LOG_DAYS (bounded)."""
    before = (now or timezone.now()) - timedelta(days=settings.DEVELOPER_WEBHOOK_LOG_DAYS)
    ids = list(
        WebhookDelivery.objects.exclude(status=DeliveryStatus.PENDING)
        .filter(created_at__lt=before)
        .values_list("pk", flat=True)[:limit]
    )
    deleted, _ = WebhookDelivery.objects.filter(pk__in=ids).delete()
    return deleted


def webhook_deliveries_for(*, endpoint: WebhookEndpoint):
    """The endpoint page's log: its last LOG_SIZE deliveries, newest first."""
    return endpoint.deliveries.order_by("-created_at", "-id")[:LOG_SIZE]
