"""Restriction of processing: "Pause my account".

While `User.paused_at` is set Atelier starts no new generations for the person (submit, try
again and run again refuse with `generation.errors.AccountPaused`), sends no marketing or
product-update email (`privacy.mail`); API keys are to refuse with the reason too (the API
beyond GET /me is still to come and must check `user.is_paused`). Viewing,
downloading and deleting their own work, exporting and erasing stay allowed: restriction
limits what we do with the data, never what the person can do with it. Jobs already running
finish (and are charged as usual); the person can cancel them from the result page.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from privacy.models import ActivityKind
from privacy.services.activity import activity_record


@transaction.atomic
def account_pause(*, user, request=None) -> bool:
    """Pause the account. False if it already was paused (nothing recorded twice)."""
    from accounts.models import User

    now = timezone.now()
    # Guarded update: two clicks pause once and record one event.
    if not User.objects.filter(pk=user.pk, paused_at__isnull=True).update(paused_at=now):
        user.refresh_from_db(fields=["paused_at"])
        return False
    user.paused_at = now
    activity_record(user=user, kind=ActivityKind.ACCOUNT_PAUSED, request=request)
    return True


@transaction.atomic
def account_resume(*, user, request=None) -> bool:
    """Resume the account. False if it was not paused."""
    from accounts.models import User

    if not User.objects.filter(pk=user.pk, paused_at__isnull=False).update(paused_at=None):
        user.refresh_from_db(fields=["paused_at"])
        return False
    user.paused_at = None
    activity_record(user=user, kind=ActivityKind.ACCOUNT_RESUMED, request=request)
    return True
