"""Completion webhooks: endpoints a developer registers, and the deliveries of
`generation.succeeded` / `generation.failed` to them, signed the Standard Webhooks way.

A delivery row is written when a job becomes final (receivers.py, on generation's
`generation_finished`), then tried at once by a task; a failed attempt is tried again after each
delay of DEVELOPER_WEBHOOK_RETRY_SCHEDULE (about a day in all), picked up by the beat task
`developers.tasks.deliver_due_webhooks`, and marked failed after the last.

One attempt at a time, and only once: an attempt claims its row with a conditional update that
pushes `next_attempt_at` to the end of a lease (`_lease()`: longer than the attempt's deadline and
the task's time limits) and writes a fresh `claim_token`; its outcome is recorded only while the
row still carries that token. The beat sweep marks what it queues (`queued_at`) and does not
queue it again for QUEUE_LEASE, so a backlog does not grow by 500 tasks every tick. The
`webhook-id` stays the same on every attempt so receivers can drop duplicates anyway.

What a delivery holds: the generation's id, status, kind, model and error sentence; never its
prompt (assistants' prompts are purged after ASSISTANT_PROMPT_RETENTION_DAYS and must not live on
in a log). Output links are signed afresh at each attempt, so a retry hours later still carries
links that open.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from developers import delivery as client
from developers.errors import WebhookDeliveryNotResendable, WebhookEndpointLimit, WebhookSendRateLimited
from developers.models import TEST_EVENT, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

LOG_SIZE = 50  # deliveries shown on an endpoint's page
DUE_BATCH = 500
OUTPUT_URL_TTL = 3600  # seconds; local-file links (S3 links live as long as the presigner's default)
# After the attempt's deadline: the task's soft time limit (it then records a failed attempt), its
# hard limit, and the end of the claim (past both, so nobody else claims a row still being sent).
SOFT_LIMIT_MARGIN = 20  # seconds
HARD_LIMIT_MARGIN = 30
LEASE_MARGIN = 60
# The beat sweep does not queue a delivery again this soon after it was queued.
QUEUE_LEASE = timedelta(minutes=5)
TEST_RATE_GROUP = "developers.webhook_send"


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
    # Endpoints first (one query whose answer is usually "none", on every finished job); the job
    # itself is read only for someone who has one.
    owner = Generation.objects.filter(pk=generation_id).values("owner_id")
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(owner_id=Subquery(owner), enabled=True)
        if not endpoint.events or event in endpoint.events
    ]
    if not endpoints:
        return []
    generation = Generation.objects.select_related("model").filter(pk=generation_id).first()
    if generation is None:
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
                queued_at=now,
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
            queued_at=now,
        )
        transaction.on_commit(lambda: _queue([delivery.pk]))
    return delivery


def webhook_send_throttle(*, request) -> None:
    """Count one "Send test event" or "Resend" for the signed-in person; raise WebhookSendRateLimited
    past DEVELOPER_WEBHOOK_TEST_RATE (each makes Atelier POST to a URL the person chose, and costs
    no credits). Counts live in the shared cache (django-ratelimit, fixed windows)."""
    from django_ratelimit.core import get_usage

    usage = get_usage(
        request,
        group=TEST_RATE_GROUP,
        key=lambda group, req: f"user:{req.user.pk}",
        rate=settings.DEVELOPER_WEBHOOK_TEST_RATE,
        increment=True,
    )
    if usage is not None and usage["should_limit"]:
        raise WebhookSendRateLimited(retry_after=usage["time_left"])


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> None:
    """Try a failed delivery once more, now (same `webhook-id`; no further retries after this one)."""
    with transaction.atomic():
        now = timezone.now()
        moved = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, next_attempt_at=now, queued_at=now, claim_token=""
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


def attempt_soft_time_limit() -> float:
    """The delivery task's soft time limit: just past the attempt's deadline."""
    return client.attempt_deadline() + SOFT_LIMIT_MARGIN


def attempt_time_limit() -> float:
    return client.attempt_deadline() + HARD_LIMIT_MARGIN


def _lease() -> timedelta:
    """How long an attempt's claim lasts: past the task's hard time limit, so a second worker never
    claims a delivery the first may still be sending or recording."""
    return timedelta(seconds=client.attempt_deadline() + LEASE_MARGIN)


@dataclass(frozen=True)
class DeliveryClaim:
    delivery_id: int
    token: str
    at: datetime


def webhook_delivery_claim(*, delivery_id: int) -> DeliveryClaim | None:
    """Claim a due pending delivery for one attempt (a conditional update: of two workers, one
    wins). None when there is nothing to do (not due, claimed by someone else, done, gone)."""
    now = timezone.now()
    token = secrets.token_hex(16)
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + _lease(), claim_token=token, queued_at=None)
    )
    return DeliveryClaim(delivery_id, token, now) if claimed else None


def webhook_delivery_send(*, claim: DeliveryClaim) -> client.Outcome | None:
    """Post the claimed delivery, outside any transaction (at most the attempt's deadline). None
    when it was not sent: the endpoint is disabled (the delivery is then marked failed)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=claim.delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=claim.delivery_id, claim_token=claim.token).update(
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            claim_token="",
            last_error="Not sent: the endpoint is disabled.",
        )
        return None
    body = _body(delivery)
    return client.post(url=endpoint.url, secret=endpoint.secret, message_id=delivery.message_id, body=body)


def webhook_delivery_stopped(*, claim: DeliveryClaim) -> client.Outcome:
    """The outcome recorded when the task's time limit stopped an attempt."""
    seconds = (timezone.now() - claim.at).total_seconds()
    return client.Outcome(None, "The attempt was stopped: it took too long.", int(seconds * 1000))


def webhook_delivery_attempt(*, delivery_id: int) -> client.Outcome | None:
    """Try one delivery if it is due: claim it, post, record the outcome and schedule the next
    try or give up. Returns the outcome, or None when there was nothing to do. When the task's
    soft time limit stops the attempt, a failed attempt is recorded (retried on the schedule
    instead of pending for ever)."""
    claim = webhook_delivery_claim(delivery_id=delivery_id)
    if claim is None:
        return None
    try:
        outcome = webhook_delivery_send(claim=claim)
    except SoftTimeLimitExceeded:
        outcome = webhook_delivery_stopped(claim=claim)
    if outcome is not None:
        webhook_delivery_record(claim=claim, outcome=outcome)
    return outcome


@transaction.atomic
def webhook_delivery_record(*, claim: DeliveryClaim, outcome: client.Outcome) -> bool:
    """Write an attempt's outcome, if the row still carries the attempt's claim (else someone
    else's attempt, a resend or an erasure took it over: nothing is written). True if written."""
    delivery = (
        WebhookDelivery.objects.select_for_update()
        .filter(pk=claim.delivery_id, claim_token=claim.token, status=DeliveryStatus.PENDING)
        .first()
    )
    if delivery is None:
        logger.warning("webhook delivery %s: the attempt no longer holds its claim; not recorded", claim.delivery_id)
        return False
    at = claim.at
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
    delivery.claim_token = ""
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
            "claim_token",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return True


def webhook_deliveries_queue_due(*, now=None, limit: int = DUE_BATCH) -> list[int]:
    """The beat sweep: mark pending deliveries whose next attempt is due (oldest first) and that
    were not queued in the last QUEUE_LEASE as queued now, and queue a task for each once this
    commits. Returns their ids. Rows another sweep is marking are skipped (SKIP LOCKED)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lte=now - QUEUE_LEASE))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(queued_at=now)
            transaction.on_commit(lambda: _queue(ids))
    return ids


@transaction.atomic
def webhook_endpoints_disable_all(*, user, reason: str) -> int:
    """Turn off every endpoint of the person and fail their pending deliveries (an attempt in
    flight then records nothing). Returns endpoints disabled + deliveries failed."""
    endpoints = WebhookEndpoint.objects.filter(owner=user, enabled=True).update(enabled=False, disabled_reason=reason)
    deliveries = WebhookDelivery.objects.filter(endpoint__owner=user, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        claim_token="",
        queued_at=None,
        last_error=f"Not sent. {reason}".strip(),
    )
    return endpoints + deliveries


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
