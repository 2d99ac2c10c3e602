"""The activity log's sources outside privacy: signals sent by Django, allauth, accounts,
generation and billing, recorded once each in the person's log. Connected in PrivacyConfig.ready().

accounts, generation and billing send; privacy listens. None of them imports privacy.
"""

from __future__ import annotations

from allauth.account.signals import email_added, password_changed, password_reset, password_set
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver

from accounts.signals import api_key_created, api_key_revoked, terms_accepted
from billing.signals import account_flag_changed, credits_adjusted_by_staff
from generation.signals import deletion_requested
from privacy.models import ActivityKind, PolicyAcceptance, PolicyVersion
from privacy.services.activity import activity_record


@receiver(user_logged_in, dispatch_uid="privacy.sign_in")
def record_sign_in(sender, request, user, **kwargs) -> None:
    """Every sign-in (password, Google, a session started after sign-up or a password reset),
    with the coarse device and, for PRIVACY_RETENTION_IP_DAYS, the IP address."""
    activity_record(user=user, kind=ActivityKind.SIGN_IN, request=_real(request))


def _real(request):
    # Django's test client logs in with a bare HttpRequest (no META): no IP, no device to keep.
    return request if request is not None and getattr(request, "META", None) else None


@receiver(password_changed, dispatch_uid="privacy.password_changed")
@receiver(password_set, dispatch_uid="privacy.password_set")
@receiver(password_reset, dispatch_uid="privacy.password_reset")
def record_password_changed(sender, request, user, **kwargs) -> None:
    activity_record(user=user, kind=ActivityKind.PASSWORD_CHANGED, request=_real(request))


@receiver(email_added, dispatch_uid="privacy.email_added")
def record_email_added(sender, request, user, email_address, **kwargs) -> None:
    # The address itself is the person's own data (kept in their account, not repeated here).
    activity_record(user=user, kind=ActivityKind.EMAIL_ADDED, request=_real(request))


@receiver(terms_accepted, dispatch_uid="privacy.terms_accepted")
def record_policy_acceptance(sender, user, version, request=None, **kwargs) -> None:
    """Sign-up, the age gate and the accept page all end in accounts' user_accept_terms: one
    PolicyAcceptance per person and version, and one activity event when it is new."""
    policy = PolicyVersion.objects.filter(version=version, published_at__isnull=False).first()
    if policy is None:  # a fresh database before the seed, or a version only in settings
        return
    _, created = PolicyAcceptance.objects.get_or_create(user=user, policy=policy)
    if created:
        activity_record(user=user, kind=ActivityKind.POLICY_ACCEPTED, request=_real(request), version=version)


@receiver(deletion_requested, dispatch_uid="privacy.generations_deleted")
def record_generations_deleted(sender, user, count, whole_history, **kwargs) -> None:
    kind = ActivityKind.HISTORY_DELETED if whole_history else ActivityKind.GENERATIONS_DELETED
    activity_record(user=user, kind=kind, count=count)
    # A ready export still holds what was just deleted: it goes too (once the deletion is committed).
    from privacy.services.export import exports_discard

    transaction.on_commit(lambda: exports_discard(user=user))


@receiver(credits_adjusted_by_staff, dispatch_uid="privacy.staff_credits")
def record_staff_credits(sender, adjustment, staff, **kwargs) -> None:
    activity_record(
        user=adjustment.user,
        kind=ActivityKind.STAFF_CREDITS_ADJUSTED,
        actor=staff,
        amount=adjustment.amount,
        reason=adjustment.reason,
    )


@receiver(account_flag_changed, dispatch_uid="privacy.account_flag")
def record_account_flag(sender, user, flagged, reason, staff=None, **kwargs) -> None:
    kind = ActivityKind.STAFF_ACCOUNT_FLAGGED if flagged else ActivityKind.STAFF_ACCOUNT_UNFLAGGED
    activity_record(user=user, kind=kind, actor=staff, reason=reason)


@receiver(api_key_created, dispatch_uid="privacy.api_key_created")
@receiver(api_key_revoked, dispatch_uid="privacy.api_key_revoked")
def record_api_key(sender, user, key, request=None, **kwargs) -> None:
    """Keys are named by their visible prefix and name, never by their secret."""
    kind = ActivityKind.API_KEY_CREATED if kwargs["signal"] is api_key_created else ActivityKind.API_KEY_REVOKED
    activity_record(user=user, kind=kind, request=_real(request), prefix=key.prefix, name=key.name)
