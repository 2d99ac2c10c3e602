"""What the API keeps of its own: the first answer to each Idempotency-Key."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` a person sent with a POST: the request it came with (a fingerprint
    of method, path and body) and the generation it made, so a retry returns that one instead of
    charging again. Unique per person and key; the row is inserted in the submit's transaction, so
    a concurrent duplicate waits for the first and then reads its result. Swept after
    API_IDEMPOTENCY_HOURS."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    generation = models.ForeignKey(
        "generation.Generation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_once_per_owner")]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key[:16]}…"
