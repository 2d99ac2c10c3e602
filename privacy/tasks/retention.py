"""Privacy tasks: retention (beat runs `apply_retention` every 6 h; periods are settings), the
assistant prompt purge (ASSISTANT_PROMPT_RETENTION_DAYS) included."""

from __future__ import annotations

import logging

from celery import shared_task

from privacy.services import retention as service

__all__ = ["apply_retention"]

logger = logging.getLogger(__name__)


@shared_task(name="privacy.tasks.retention.apply_retention", acks_late=True)
def apply_retention() -> dict[str, int]:
    """Every purge once, each bounded; idempotent (a second run finds only what is left)."""
    done = service.retention_apply()
    logger.info("retention: %s", done)
    return done
