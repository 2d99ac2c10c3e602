"""Celery entry points for billing: they take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

from billing.errors import PaymentsError
from billing.services import payments

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
def process_stripe_event(self, event_pk: int) -> str:
    """Process one stored Stripe event; Stripe outages are retried with backoff."""
    try:
        return payments.stripe_event_process(event_pk=event_pk)
    except PaymentsError as exc:
        countdown = min(2 ** (self.request.retries + 1), 300)
        logger.info("stripe event %s: retrying in %ss (%s)", event_pk, countdown, exc.detail)
        raise self.retry(exc=exc, countdown=countdown) from exc
