"""Privacy tasks: export (build one ZIP; beat deletes expired ones)."""

from __future__ import annotations

from celery import shared_task

from privacy.services import export as service

__all__ = ["build_export", "expire_exports"]


# A big history takes longer than a generation job: its own limits, still well inside the broker's
# visibility timeout (2 h), so Redis does not hand a running build to a second worker.
@shared_task(name="privacy.tasks.export.build_export", acks_late=True, soft_time_limit=60 * 60, time_limit=65 * 60)
def build_export(export_id: int) -> None:
    """Idempotent by export id: a finished export is left alone (see export_build)."""
    service.export_build(export_id=export_id)


@shared_task(name="privacy.tasks.export.expire_exports", acks_late=True)
def expire_exports() -> int:
    return service.exports_expire()
