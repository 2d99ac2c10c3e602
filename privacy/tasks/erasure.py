"""Privacy tasks: account erasure (the steps are in `privacy.services.erasure`)."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from celery import shared_task
from django.core.cache import cache
from django.db import connection

from privacy.services import erasure as erasure_services

logger = logging.getLogger(__name__)

__all__ = ["erase_account", "resume_erasures"]

# One run per receipt at a time (a beat resume and a retry could otherwise overlap); a run that
# dies without releasing it is resumed once the lock expires.
LOCK_SECONDS = 3600


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def erase_account(self, receipt_id: int) -> str:
    """Run or resume one erasure. A step that cannot finish now (storage, Stripe or the provider
    down) is retried with backoff; after the last retry beat's `resume_erasures` picks it up."""
    with _run_lock(receipt_id) as held:
        if not held:
            logger.info("erasure %s is already running", receipt_id)
            return "running"
        try:
            receipt = erasure_services.erasure_run(receipt_id=receipt_id)
        except Exception as exc:
            logger.exception("erasure %s stopped; it resumes from its last finished step", receipt_id)
            if self.request.is_eager:
                return "failed"
            raise self.retry(exc=exc, countdown=min(60 * 2**self.request.retries, 3600)) from exc
    return receipt.status


# A number of our own beside the receipt id in PostgreSQL's advisory-lock space ("er").
_LOCK_CLASS = 0x6572


@contextmanager
def _run_lock(receipt_id: int):
    """One run per receipt at a time. On PostgreSQL a session advisory lock, which the database
    drops by itself if the worker dies; elsewhere (SQLite: one process) the cache. Not the cache on
    PostgreSQL: during a Redis outage it falls back to memory per process, which locks nothing
    across workers (see config/cache.py)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, receipt_id])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, receipt_id])
        return
    key = f"privacy:erasure:{receipt_id}"
    held = cache.add(key, "running", timeout=LOCK_SECONDS)
    try:
        yield held
    finally:
        if held:
            cache.delete(key)


@shared_task
def resume_erasures() -> int:
    """Beat: run again every erasure that has not finished (a worker died, a service was down).
    Also redacts payment notifications about erased customers that arrived after their erasure
    (Stripe sends `customer.deleted` and `customer.subscription.deleted` once we delete them),
    and deletes the money records kept from erasures once their tax-law period has passed, and
    the receipts after PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS."""
    ids = list(erasure_services.erasures_unfinished().values_list("pk", flat=True))
    for receipt_id in ids:
        erase_account.delay(receipt_id)
    erasure_services.stripe_events_redact_late()
    erasure_services.erased_money_records_purge()
    erasure_services.erasure_receipts_purge()
    return len(ids)
