"""OAuth tasks: beat runs `oauth_housekeeping` hourly (CELERY_BEAT_SCHEDULE, OAuth lines)."""

from __future__ import annotations

import logging

from celery import shared_task

from atelier_oauth import services

logger = logging.getLogger(__name__)


@shared_task(name="atelier_oauth.tasks.oauth_housekeeping", acks_late=True)
def oauth_housekeeping() -> dict[str, int]:
    """Idempotent: a second run finds nothing left to remove."""
    done = services.oauth_housekeeping()
    logger.info("oauth housekeeping: %s", done)
    return done
