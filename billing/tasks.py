"""Celery entry points for billing: they take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

from billing.errors import PaymentsError
from billing.services import payments

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def process_stripe_event(self, event_pk: int) -> str:
    """Process one stored Stripe event; Stripe or database outages are retried with backoff.

    After the last retry the event stays `received` and the beat task queues it again later.
    Inline (no broker) there is no waiting: the event is left for the webhook's redelivery.
    """
    try:
        return payments.stripe_event_process(event_pk=event_pk)
    except (PaymentsError, DatabaseError) as exc:
        detail = getattr(exc, "detail", repr(exc))
        if self.request.is_eager:
            logger.warning("stripe event %s left for a later delivery: %s", event_pk, detail)
            return "received"
        countdown = min(2 ** (self.request.retries + 2), 600)
        logger.info("stripe event %s: retrying in %ss (%s)", event_pk, countdown, detail)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def requeue_stripe_events() -> int:
    """Beat: events still unprocessed after a while (Stripe was down longer than the retries)."""
    return payments.stripe_events_requeue()
