"""Policy versions: publishing, accepting, and telling everyone about a material change.

- `policy_publish`: staff publish a draft in the admin; from then on it is read-only. The cached
  "current version" is dropped, and a material change queues the emails.
- `policy_accept`: the person accepts the current version (the accept page). The write to the
  user row goes through accounts (`user_accept_terms`), whose `terms_accepted` signal records the
  PolicyAcceptance and the activity event (privacy/receivers.py) — sign-up takes the same path.
- `policy_notify_*`: the email about a material change goes to every account with an email
  address, paused ones included (the law requires telling them), in chunks of NOTIFY_CHUNK
  users, one task per chunk; a PolicyNotice row per person and version makes a re-run send
  nothing twice.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from config.errors import ApplicationError
from privacy.models import PolicyNotice, PolicyVersion
from privacy.policy import current_policy, current_policy_forget, render_markdown

logger = logging.getLogger(__name__)

NOTIFY_CHUNK = 500


class PolicyError(ApplicationError):
    """A policy action that cannot happen; `str(exc)` is a sentence for staff or the person."""


class PolicyNotCurrent(PolicyError):
    """The version accepted is not the current one any more (a newer one took effect meanwhile)."""


# Settings the policy text may name as {NAME}: the page shows the periods Atelier runs with.
TEXT_SETTINGS = (
    "PRIVACY_CONTACT_EMAIL",
    "PRIVACY_RETENTION_INPUTS_DAYS",
    "PRIVACY_RETENTION_ERROR_DETAILS_DAYS",
    "PRIVACY_RETENTION_WEBHOOK_PAYLOADS_DAYS",
    "PRIVACY_RETENTION_IP_DAYS",
    "PRIVACY_EXPORT_TTL_DAYS",
    "PRIVACY_TAX_RECORDS_YEARS",
    "MINIMUM_AGE",
    "ASSISTANT_PROMPT_RETENTION_DAYS",
    "DEVELOPER_WEBHOOK_LOG_DAYS",
)
_TOKEN = re.compile(r"\{(" + "|".join(TEXT_SETTINGS) + r")\}")


def policy_text(policy: PolicyVersion) -> str:
    """The Markdown body with {PRIVACY_...} names replaced by the configured values."""
    return _TOKEN.sub(lambda m: str(getattr(settings, m.group(1))), policy.body)


def policy_html(policy: PolicyVersion) -> SafeString:
    return render_markdown(policy_text(policy))


@transaction.atomic
def policy_publish(*, policy: PolicyVersion) -> bool:
    """Publish a draft. False if it was already published (nothing changes then). A material
    version queues the emails once it commits."""
    if not policy.body.strip():
        raise PolicyError("A policy needs its text before it can be published.")
    if policy.material and not policy.summary.strip():
        raise PolicyError("A material change needs a summary of what changed: it goes into the email.")
    now = timezone.now()
    changed = PolicyVersion.objects.filter(pk=policy.pk, published_at__isnull=True).update(published_at=now)
    if not changed:
        return False
    policy.published_at = now
    transaction.on_commit(current_policy_forget)
    if policy.material:
        transaction.on_commit(lambda: _enqueue_notify(policy.pk))
    return True


def _enqueue_notify(policy_id: int) -> None:
    from privacy.tasks.policy import notify_policy_change

    notify_policy_change.delay(policy_id)


@transaction.atomic
def policy_accept(*, user, version: str, request=None) -> None:
    """Accept the current version. `version` is the one the person saw on the accept page:
    should a newer one have taken effect meanwhile, PolicyNotCurrent, and the page shows it."""
    from accounts.services import user_accept_terms

    if not user.has_passed_gate:
        raise PolicyError("Confirm your age first.")  # never a way around the age gate
    policy = current_policy()
    if policy is None or policy.version != version:
        raise PolicyNotCurrent("The privacy policy changed again while you were reading. Here is the newest version.")
    user_accept_terms(user=user, version=policy.version, request=request)


def policy_notify_recipients():
    """Everyone to tell about a change: every active account (paused ones too)."""
    from accounts.models import User

    return User.objects.filter(is_active=True).exclude(email="")


def policy_notify_dispatch(*, policy_id: int) -> int:
    """Queue one task per NOTIFY_CHUNK people (by id, keyset-paged, so memory stays flat).
    Returns how many chunks were queued."""
    from privacy.tasks.policy import notify_policy_change_chunk

    policy = PolicyVersion.objects.filter(pk=policy_id, published_at__isnull=False, material=True).first()
    if policy is None:
        return 0
    chunks, last = 0, 0
    while True:
        ids = list(
            policy_notify_recipients().filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:NOTIFY_CHUNK]
        )
        if not ids:
            return chunks
        notify_policy_change_chunk.delay(policy_id, ids)
        chunks += 1
        last = ids[-1]


def policy_notify_chunk(*, policy_id: int, user_ids: list[int]) -> int:
    """Email each of these people about the change, once: the PolicyNotice row goes in first
    (a unique pair), and comes out again if sending failed, so a retry tries them again.
    Returns how many emails were sent."""
    policy = PolicyVersion.objects.get(pk=policy_id)
    context = {
        "policy": policy,
        "policy_url": settings.SITE_URL.rstrip("/") + reverse("privacy:policy_version", args=[policy.version]),
        "accept_url": settings.SITE_URL.rstrip("/") + reverse("privacy:policy_accept"),
        "contact": settings.PRIVACY_CONTACT_EMAIL,
        "in_effect": policy.effective_at <= timezone.now(),
    }
    subject = render_to_string("privacy/email/policy_changed_subject.txt", context).strip()
    sent = 0
    for user in policy_notify_recipients().filter(pk__in=user_ids).order_by("pk"):
        try:
            with transaction.atomic():
                notice = PolicyNotice.objects.create(user=user, policy=policy)
        except IntegrityError:
            continue  # told already (a re-run, or a retried chunk)
        body = render_to_string("privacy/email/policy_changed.txt", {**context, "user": user})
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
        except Exception:
            notice.delete()
            raise
        sent += 1
    return sent
