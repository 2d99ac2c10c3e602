"""Retention: what Atelier deletes on its own, and when (beat runs `retention_apply`).

Each period is a setting (config/settings.py, PRIVACY_RETENTION_*), and the policy text shows
the configured values. Every purge takes a bounded batch per run (BATCH) and only what is still
there, so a run that dies halfway is finished by the next one and a second run finds nothing.

| what | after | how |
|---|---|---|
| error details of finished jobs (`Generation.error_detail`) | ERROR_DETAILS_DAYS | blanked (generation) |
| Stripe webhook payloads, once processed | WEBHOOK_PAYLOADS_DAYS | payload blanked, id row kept (billing) |
| Replicate webhook deliveries | — | only ids are stored (`ProviderWebhook`), nothing to purge |
| IP addresses in the activity log | IP_DAYS | set to null, device label kept |
| input pictures of finished jobs | INPUTS_DAYS | objects first, then Asset rows (generation) |
| a person's history, if they chose 7 or 30 days | their choice | generation's deletion service: objects, then rows |
| prompts and parameters of assistant jobs (GPT Action, MCP) | ASSISTANT_PROMPT_RETENTION_DAYS | blanked, media kept |

Assistant jobs are spared when their owner chose to keep assistant history like the rest.

Exports expire in privacy.services.export (their own beat task).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from privacy.models import ActivityEvent, ActivityKind, HistoryRetention, PrivacySettings
from privacy.services.activity import activity_record

BATCH = 500
HISTORY_BATCH = 200  # generations per person per run (generation.services.DELETE_BATCH)
HISTORY_PEOPLE = 200  # people per run
HISTORY_CURSOR_KEY = "privacy:retention:history-cursor"


def _before(days: int, now=None):
    return (now or timezone.now()) - timedelta(days=days)


def retention_error_details_purge(*, now=None) -> int:
    from generation.services import generation_error_details_purge

    return generation_error_details_purge(
        finished_before=_before(settings.PRIVACY_RETENTION_ERROR_DETAILS_DAYS, now), limit=BATCH
    )


def retention_webhook_payloads_purge(*, now=None) -> int:
    from billing.services.payments import stripe_event_payloads_purge

    return stripe_event_payloads_purge(
        processed_before=_before(settings.PRIVACY_RETENTION_WEBHOOK_PAYLOADS_DAYS, now), limit=BATCH
    )


def retention_ips_purge(*, now=None) -> int:
    """Drop the IP address of activity entries older than PRIVACY_RETENTION_IP_DAYS (the partial
    index `activity_at` covers exactly the rows that still have one)."""
    old = ActivityEvent.objects.filter(ip__isnull=False, at__lt=_before(settings.PRIVACY_RETENTION_IP_DAYS, now))
    ids = list(old.order_by("at").values_list("pk", flat=True)[:BATCH])
    return ActivityEvent.objects.filter(pk__in=ids).update(ip=None)


def retention_inputs_purge(*, now=None) -> int:
    from generation.services import generation_inputs_purge

    deleted, _ = generation_inputs_purge(
        finished_before=_before(settings.PRIVACY_RETENTION_INPUTS_DAYS, now), limit=BATCH
    )
    return deleted


def retention_history_purge(*, now=None) -> int:
    """For everyone who chose to keep their history 7 or 30 days: delete what they made before
    that, through generation's own deletion service (running jobs canceled and refunded, stored
    objects first, then rows). At most HISTORY_BATCH items per person and HISTORY_PEOPLE people a
    run; each person's log says how many went and why. Returns how many generations went."""
    from generation.models import Generation
    from generation.services import generations_delete
    from privacy.services.export import exports_discard

    now = now or timezone.now()
    total = 0
    choices = PrivacySettings.objects.exclude(history_retention_days=HistoryRetention.FOREVER).select_related("user")
    # Each run starts after the last person the previous one reached (then wraps around), so the
    # first HISTORY_PEOPLE people cannot keep every run to themselves.
    cursor = cache.get(HISTORY_CURSOR_KEY) or 0
    ordered = list(choices.filter(pk__gt=cursor).order_by("pk")[: HISTORY_PEOPLE * 5])
    if len(ordered) < HISTORY_PEOPLE * 5:
        ordered += list(choices.filter(pk__lte=cursor).order_by("pk")[: HISTORY_PEOPLE * 5 - len(ordered)])
    people = 0
    for choice in ordered:
        if people >= HISTORY_PEOPLE:
            break
        cache.set(HISTORY_CURSOR_KEY, choice.pk, None)
        user, days = choice.user, choice.history_retention_days
        ids = list(
            Generation.objects.filter(owner=user, queued_at__lt=_before(days, now))
            .order_by("pk")
            .values_list("pk", flat=True)[:HISTORY_BATCH]
        )
        if not ids:
            continue
        people += 1
        deleted = generations_delete(user=user, ids=ids)
        if deleted:
            activity_record(
                user=user, kind=ActivityKind.GENERATIONS_DELETED, count=deleted, reason="retention", days=days
            )
            exports_discard(user=user)
        total += deleted
    return total


def retention_assistant_prompts_purge(*, now=None) -> int:
    """Blank the prompt and parameters of finished generations asked for from an assistant (a GPT
    Action or an MCP client) more than ASSISTANT_PROMPT_RETENTION_DAYS ago, unless their owner
    chose to keep assistant history like the rest (PrivacySettings.keep_assistant_history); the
    writes are generation's (`generation_assistant_prompts_purge`). Their pictures and models stay
    in the gallery until the person deletes them."""
    from generation.services import generation_assistant_prompts_purge

    now = now or timezone.now()
    return generation_assistant_prompts_purge(
        queued_before=_before(settings.ASSISTANT_PROMPT_RETENTION_DAYS, now),
        except_owners=PrivacySettings.objects.filter(keep_assistant_history=True).values("user_id"),
        limit=BATCH,
        now=now,
    )


# One beat run keeps going while batches come back full, for at most this long: a backlog larger
# than one batch is worked off in the same run instead of growing by a batch every six hours.
RUN_SECONDS = 120


def retention_apply(*, now=None, budget_seconds: float = RUN_SECONDS) -> dict[str, int]:
    """One beat run: every purge, batch after batch while a batch came back full and the time
    budget lasts. Returns what each did (for the log)."""
    purges = {
        "error_details": (retention_error_details_purge, BATCH),
        "webhook_payloads": (retention_webhook_payloads_purge, BATCH),
        "ips": (retention_ips_purge, BATCH),
        "inputs": (retention_inputs_purge, BATCH),
        "assistant_prompts": (retention_assistant_prompts_purge, BATCH),
        "history": (retention_history_purge, None),
    }
    deadline = time.monotonic() + budget_seconds
    done: dict[str, int] = {}
    for name, (purge, batch) in purges.items():
        done[name] = 0
        while True:
            n = purge(now=now)
            done[name] += n
            # history: a run that deleted anything may have left more (the cursor moves on)
            full = n >= batch if batch else n > 0
            if not full or time.monotonic() >= deadline:
                break
    return done


@transaction.atomic
def history_retention_set(*, user, days: int, request=None) -> bool:
    """The person's choice of how long their history is kept (privacy centre). Recorded in their
    activity log when it changes; True if it did. The next beat run applies it."""
    if days not in HistoryRetention.values:
        raise ValueError(f"not a retention choice: {days}")
    choice, _ = PrivacySettings.objects.select_for_update().get_or_create(user=user)
    if choice.history_retention_days == days:
        return False
    before = choice.history_retention_days
    choice.history_retention_days = days
    choice.updated_at = timezone.now()
    choice.save(update_fields=["history_retention_days", "updated_at"])
    activity_record(user=user, kind=ActivityKind.RETENTION_CHANGED, request=request, days=days, before=before)
    return True


def history_retention_of(*, user) -> int:
    return (
        PrivacySettings.objects.filter(user=user).values_list("history_retention_days", flat=True).first()
        or HistoryRetention.FOREVER
    )


@transaction.atomic
def assistant_history_keep_set(*, user, keep: bool, request=None) -> bool:
    """The person's choice to keep what they send from ChatGPT and other assistants like the rest
    of their history (True), or to have its prompts and parameters blanked after
    ASSISTANT_PROMPT_RETENTION_DAYS (False, the default). Recorded in their activity log when it
    changes; True if it did. Prompts already blanked do not come back."""
    choice, _ = PrivacySettings.objects.select_for_update().get_or_create(user=user)
    if choice.keep_assistant_history == keep:
        return False
    choice.keep_assistant_history = keep
    choice.updated_at = timezone.now()
    choice.save(update_fields=["keep_assistant_history", "updated_at"])
    activity_record(
        user=user,
        kind=ActivityKind.RETENTION_CHANGED,
        request=request,
        keep_assistant_history=keep,
        assistant_days=settings.ASSISTANT_PROMPT_RETENTION_DAYS,
    )
    return True


def assistant_history_kept(*, user) -> bool:
    return bool(PrivacySettings.objects.filter(user=user).values_list("keep_assistant_history", flat=True).first())
