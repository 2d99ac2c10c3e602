"""Reads shared by the privacy pages."""

from __future__ import annotations

from django.db.models import Count, Sum

from privacy.models import ActivityEvent


def holdings_summary(*, user) -> dict:
    """Counts of what Atelier holds about the person, for the top of the privacy centre."""
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from billing.models import Payment
    from generation.models import Asset

    assets = Asset.objects.filter(generation__owner=user).aggregate(files=Count("id"), bytes=Sum("bytes"))
    return {
        "generations": user.generations.count(),
        "files": assets["files"] or 0,
        "bytes": assets["bytes"] or 0,
        "payments": Payment.objects.filter(user=user).count(),
        "sign_ins": ActivityEvent.objects.filter(user=user, kind="sign_in").count(),
        "consents_on": user.consents.filter(granted=True).count(),
        "email_addresses": EmailAddress.objects.filter(user=user).count(),
        "connected_accounts": SocialAccount.objects.filter(user=user).count(),
    }


def activity_recent(*, user, limit: int = 50) -> list[ActivityEvent]:
    return list(ActivityEvent.objects.filter(user=user).select_related("actor")[:limit])
