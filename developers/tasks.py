"""Developer webhook tasks: they take ids and call services (developers.services)."""

from __future__ import annotations

import logging

from celery import shared_task

from developers import services

logger = logging.getLogger(__name__)


@shared_task(name="developers.tasks.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt of one delivery, if it is due (a second copy of this task finds it claimed)."""
    outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome is not None and not outcome.delivered:
        # The status or the reason only: never the URL's query, the secret or the body.
        logger.info("webhook delivery %s: %s", delivery_id, outcome.status_code or outcome.error)


@shared_task(name="developers.tasks.deliver_due_webhooks", acks_late=True)
def deliver_due_webhooks() -> int:
    """Beat: queue every delivery whose retry is due, and drop old log rows. Idempotent."""
    due = services.webhook_deliveries_due()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    services.webhook_deliveries_purge()
    return len(due)
