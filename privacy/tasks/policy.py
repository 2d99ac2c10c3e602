"""Privacy tasks: telling everyone about a material policy change, in chunks."""

from __future__ import annotations

from celery import shared_task

from privacy.services import policy as service

__all__ = ["notify_policy_change", "notify_policy_change_chunk"]


@shared_task(name="privacy.tasks.policy.notify_policy_change", acks_late=True)
def notify_policy_change(policy_id: int) -> int:
    """Queue one chunk task per 500 people; safe to run twice (the chunks skip who was told)."""
    return service.policy_notify_dispatch(policy_id=policy_id)


@shared_task(
    name="privacy.tasks.policy.notify_policy_change_chunk",
    bind=True,
    acks_late=True,
    autoretry_for=(OSError,),  # SMTP down: the chunk tries again; who was told is skipped
    retry_backoff=True,
    max_retries=5,
)
def notify_policy_change_chunk(self, policy_id: int, user_ids: list[int]) -> int:
    return service.policy_notify_chunk(policy_id=policy_id, user_ids=user_ids)
