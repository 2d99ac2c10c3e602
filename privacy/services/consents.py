"""Consents: training use, marketing email and analytics cookies.

Every consent is off until the person turns it on. Each change writes one ConsentEvent (what,
which wording version, when, how), updates the person's current Consent row (what code that
would share data reads at that moment) and records one activity event.

The words people agree to live in WORDING, one entry per kind with its version. The privacy
centre shows exactly these words, and each event stores the version shown, so "what did they
agree to" is always answerable. Changing a sentence means a new version here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from privacy.models import ActivityKind, Consent, ConsentEvent, ConsentKind, ConsentMethod
from privacy.services.activity import activity_record


@dataclass(frozen=True)
class Wording:
    version: str
    title: str
    text: str


WORDING: dict[str, Wording] = {
    ConsentKind.TRAINING: Wording(
        version="training-2026-11-25",
        title="Use my uploads and results to improve models",
        text=(
            "Atelier may include the pictures I upload, the results I generate and their prompts in "
            "datasets used to train or evaluate image models. Only while this is on: turning it off "
            "leaves me out of every dataset made from then on."
        ),
    ),
    ConsentKind.MARKETING: Wording(
        version="marketing-2026-11-25",
        title="Product news by email",
        text=(
            "Send me occasional emails about new models, features and offers. Every such email has a "
            "one-click unsubscribe link. Emails about my account, payments and privacy come regardless."
        ),
    ),
    ConsentKind.ANALYTICS: Wording(
        version="analytics-2026-11-25",
        title="Anonymous page-view counts",
        text=(
            "Count my page views in Atelier's own statistics (pages per day, with no name, cookie id "
            "or IP address attached). Nothing is shared with anyone else."
        ),
    ),
}

# The consents a person sets on the privacy centre; analytics is a per-browser choice made on
# the cookie notice or the cookie page (see privacy/cookies.py).
CENTRE_KINDS = (ConsentKind.TRAINING, ConsentKind.MARKETING)


@transaction.atomic
def consent_set(*, user, kind: str, granted: bool, method: str, request=None) -> bool:
    """Turn one consent on or off with the current wording. Returns False (and records nothing)
    when it already was in that state under the same wording version."""
    kind = ConsentKind(kind)
    method = ConsentMethod(method)
    wording = WORDING[kind]
    now = timezone.now()
    consent, _ = Consent.objects.select_for_update().get_or_create(user=user, kind=kind)
    # A first "off" is still recorded (a choice made, e.g. "Essential only" on the cookie notice);
    # repeating the current state is not a change, unless it is a yes to newer words.
    unchanged = consent.granted == granted and (not granted or consent.wording_version == wording.version)
    if consent.wording_version and unchanged:
        return False
    consent.granted = granted
    consent.wording_version = wording.version
    consent.updated_at = now
    consent.save(update_fields=["granted", "wording_version", "updated_at"])
    ConsentEvent.objects.create(
        user=user, kind=kind, granted=granted, wording_version=wording.version, method=method, at=now
    )
    activity_record(
        user=user,
        kind=ActivityKind.CONSENT_CHANGED,
        request=request,
        consent=kind.value,
        granted=granted,
        method=method.value,
        wording_version=wording.version,
    )
    return True


def consent_states(*, user) -> dict[str, Consent]:
    """Each kind's current Consent (an unsaved "off" one when the person never chose)."""
    rows = {row.kind: row for row in Consent.objects.filter(user=user)}
    return {kind: rows.get(kind) or Consent(user=user, kind=kind, granted=False) for kind in ConsentKind.values}


def consent_granted(*, user, kind: str) -> bool:
    """Read at the moment of use: is this consent on right now?"""
    return Consent.objects.filter(user=user, kind=kind, granted=True).exists()


def users_with_consent(*, kind: str):
    """Active people whose consent of this kind is on right now (a queryset of users)."""
    from accounts.models import User

    return User.objects.filter(is_active=True, consents__kind=kind, consents__granted=True)
