"""Completion webhooks a developer registers, and every delivery we attempted."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class WebhookEvent(models.TextChoices):
    GENERATION_SUCCEEDED = "generation.succeeded", "generation.succeeded"
    GENERATION_FAILED = "generation.failed", "generation.failed"


# Sent by "Send test event" on the endpoint's page, whatever the endpoint subscribed to.
TEST_EVENT = "webhook.test"


class WebhookEndpoint(models.Model):
    """An HTTPS URL that receives signed events (Standard Webhooks: `webhook-id`,
    `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` with the `whsec_` secret)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=100, blank=True)
    secret = models.CharField(max_length=100, help_text="whsec_ + base64 of 24 random bytes; shown to the owner.")
    events = models.JSONField(default=list, help_text="Event types sent; empty means all.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint: retried with backoff for a day (DEVELOPER_WEBHOOK_RETRY_SCHEDULE),
    each attempt's outcome kept for the delivery log. `message_id` is the `webhook-id` header,
    the same on every attempt so receivers can drop duplicates."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=40, choices=WebhookEvent.choices)
    generation_uuid = models.UUIDField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Due time of the next attempt; while an attempt runs, the end of its claim (services._lease).
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The running attempt's claim: only the worker holding this token records an outcome.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    # When a task for the next attempt was last queued; the beat sweep skips it for a while.
    queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Every attempt, oldest first, for the delivery log: {"n", "at" (ISO), "status_code" (or
    # null), "error", "ms"}. At most len(DEVELOPER_WEBHOOK_RETRY_SCHEDULE) + 1 entries, plus resends.
    attempt_log = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"
