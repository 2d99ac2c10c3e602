"""Developer webhook tasks: they take ids and call services (developers.services)."""

from __future__ import annotations

import logging

from celery import shared_task

from developers import services

logger = logging.getLogger(__name__)


# Its own time limits, just past the attempt's deadline (the project's 15 minutes would let a slow
# receiver hold a worker that long); both end before the attempt's claim does (services._lease).
@shared_task(
    name="developers.tasks.deliver_webhook",
    acks_late=True,
    soft_time_limit=services.attempt_soft_time_limit(),
    time_limit=services.attempt_time_limit(),
)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt of one delivery, if it is due (a second copy of this task finds it claimed)."""
    outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome is not None and not outcome.delivered:
        # The status or the reason only: never the URL's query, the secret or the body.
        logger.info("webhook delivery %s: %s", delivery_id, outcome.status_code or outcome.error)


@shared_task(name="developers.tasks.deliver_due_webhooks", acks_late=True)
def deliver_due_webhooks() -> int:
    """Beat: queue each delivery whose retry is due and that is not queued already, and drop old
    log rows. Idempotent."""
    due = services.webhook_deliveries_queue_due()
    services.webhook_deliveries_purge()
    return len(due)
