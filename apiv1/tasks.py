"""Celery entry points of API v1 (beat schedule: config/settings.py)."""

from __future__ import annotations

from celery import shared_task

from apiv1 import engine


@shared_task
def sweep_idempotency_records() -> int:
    """Forget Idempotency-Keys older than API_IDEMPOTENCY_HOURS (beat, hourly)."""
    return engine.idempotency_records_sweep()
