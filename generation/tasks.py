"""Celery entry points: they take ids and call services. Time limits live in the Celery config."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from generation import services
from generation.errors import ProviderError
from generation.models import Generation

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0  # a provider asking for longer is waited out in steps, never past the visibility timeout
UNEXPECTED = "Something went wrong on our side. Your credits were refunded; please try again."
GAVE_UP = "The model provider kept failing, so we stopped. Your credits were refunded; please try again later."


def retry_delay(exc: ProviderError, retries: int) -> float:
    """Honour the provider's Retry-After; otherwise exponential backoff with jitter, capped."""
    if exc.retry_after:
        return min(float(exc.retry_after), MAX_RETRY_AFTER)
    return min(2.0**retries, 60.0) * (1 + random.random() * 0.2)  # noqa: S311


def _retry_or_fail(task, generation_id: int, exc: ProviderError):
    if exc.retryable and task.request.retries < settings.GENERATION_MAX_RETRIES:
        logger.info("generation %s: retrying after %s", generation_id, exc.detail)
        raise task.retry(
            exc=exc, countdown=retry_delay(exc, task.request.retries), max_retries=settings.GENERATION_MAX_RETRIES
        )
    services.generation_fail(
        generation_id=generation_id,
        message=GAVE_UP if exc.retryable else str(exc),
        detail=exc.detail,
        # Copying a finished prediction's output failed: there is nothing left to stop remotely.
        cancel_remote=not getattr(exc, "prediction_finished", False),
    )


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_generation(self, generation_id: int) -> None:
    try:
        services.generation_run(generation_id=generation_id)
    except Generation.DoesNotExist:
        logger.info("generation %s is gone (deleted)", generation_id)
    except ProviderError as exc:
        _retry_or_fail(self, generation_id, exc)
    except SoftTimeLimitExceeded:
        logger.warning("generation %s hit the soft time limit; the poller takes over", generation_id)
    except Exception as exc:
        # A bug or an outage we did not foresee: the person gets a sentence and their credits,
        # staff get the traceback in the log and the detail on the row.
        logger.exception("generation %s crashed", generation_id)
        services.generation_fail(generation_id=generation_id, message=UNEXPECTED, detail=repr(exc)[:2000])


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def sync_generation(self, generation_id: int) -> None:
    try:
        services.generation_sync(generation_id=generation_id)
    except Generation.DoesNotExist:
        return
    except ProviderError as exc:
        _retry_or_fail(self, generation_id, exc)
    except Exception as exc:
        logger.exception("generation %s crashed while finishing", generation_id)
        services.generation_fail(generation_id=generation_id, message=UNEXPECTED, detail=repr(exc)[:2000])


@shared_task(bind=True, acks_late=True, max_retries=3)
def cancel_prediction(self, generation_id: int, provider: str = "", prediction_id: str = "") -> None:
    try:
        services.provider_cancel(generation_id=generation_id, provider=provider, prediction_id=prediction_id)
    except ProviderError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=retry_delay(exc, self.request.retries)) from exc
        logger.info("provider cancel of generation %s refused: %s", generation_id, exc.detail)


@shared_task(bind=True, acks_late=True, max_retries=3)
def make_thumbnail(self, generation_id: int) -> None:
    """After a job is done (and visible): its small preview, in a step of its own."""
    try:
        services.generation_thumbnail(generation_id=generation_id)
    except ProviderError as exc:  # storage down: a preview is worth a few retries, not more
        if exc.retryable:
            raise self.retry(exc=exc, countdown=retry_delay(exc, self.request.retries)) from exc
        logger.warning("thumbnail of generation %s: %s", generation_id, exc.detail)


@shared_task
def poll_running_generations() -> int:
    """Beat: finish jobs whose webhook never arrived."""
    ids = list(services.generations_needing_poll())
    for pk in ids:
        sync_generation.delay(pk)
    return len(ids)


@shared_task
def sweep_pending_uploads() -> int:
    """Uploads kept from refused create forms, older than a day (for the beat schedule)."""
    return services.pending_uploads_sweep()


@shared_task
def fail_stuck_generations() -> int:
    return services.generations_fail_stuck()


@shared_task(bind=True, acks_late=True, max_retries=8)
def delete_generations(self, user_id: int, ids: list[int]) -> int:
    """Delete some of a person's generations (storage objects first, then rows)."""
    return _delete(self, user_id, lambda user: services.generations_delete(user=user, ids=ids))


@shared_task(bind=True, acks_late=True, max_retries=8)
def delete_history(self, user_id: int, until: str) -> int:
    """Delete everything a person made up to `until` (ISO time of their request)."""
    from datetime import datetime

    stamp = datetime.fromisoformat(until)
    return _delete(self, user_id, lambda user: services.generation_history_delete(user=user, until=stamp))


def _delete(task, user_id: int, delete) -> int:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return 0  # the account is gone, and its generations with it
    try:
        return delete(user)
    except ProviderError as exc:  # storage down: rows whose objects remain are kept for the retry
        if task.request.retries >= task.max_retries:
            logger.error("deleting generations of user %s gave up: %s", user_id, exc.detail)
            raise
        raise task.retry(exc=exc, countdown=retry_delay(exc, task.request.retries)) from exc
