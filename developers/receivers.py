"""Developer webhooks react to generation's `generation_finished` (sent after the commit that
made a job final)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from generation.signals import generation_finished

logger = logging.getLogger(__name__)


@receiver(generation_finished, dispatch_uid="developers.webhooks_on_generation_finished")
def webhooks_on_generation_finished(sender, *, generation_id: int, status: str, **kwargs) -> None:
    from developers.services import webhook_deliveries_create

    try:
        webhook_deliveries_create(generation_id=generation_id, status=status)
    except Exception:
        # A webhook must never undo or break the job that finished (the signal runs inside
        # generation's own on-commit step); the person's result is there either way.
        logger.exception("webhook deliveries for generation %s could not be created", generation_id)
