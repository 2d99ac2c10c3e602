"""Account erasure ("Delete my account").

Two parts:

`account_erasure_start` runs in the request, at once, after re-authentication and the typed
confirmation: the account is deactivated (and its password made unusable, which changes the
session auth hash, so every session of the person, on every device, stops working on its next
request), credentials are revoked, running jobs are canceled and refunded, the request is
recorded, and an `ErasureReceipt` is created. The task is queued on commit.

`erasure_run` (the Celery task `privacy.tasks.erasure.erase_account`) does the rest in named
steps. Each finished step is written to `receipt.steps_done`, so a run that was killed halfway
resumes where it stopped (beat's `resume_erasures`). The counts the receipt reports are taken
once, in the first step (`inventory`), before anything is deleted: a resumed run cannot lose or
double them. Every later step is idempotent (deleting what is already gone is nothing; a Stripe
customer already deleted is done).

What is kept (RETENTION below), and why: ledger entries, the wallet they belong to, payments and
staff credit adjustments are money records that tax and accounting law make us keep
(PRIVACY_TAX_RECORDS_YEARS). They are detached from the person: `user` is set to null and the
receipt's pseudonymous `subject` (a random UUID, no relation to the user's ids) is written in its
place; identifiers of the person in their text (the public id in the sign-up bonus's reference and
key, the email or name in a staff note) are replaced by the subject. No prompt was ever written to
them (the ledger memo names the model, not the prompt). The receipt row itself stays for staff,
without personal data once the receipt email is sent.
"""

from __future__ import annotations

import logging
import re
import smtplib
from contextlib import suppress
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialToken
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import User
from billing import stripe_api
from billing.errors import PaymentsError, PaymentsUnavailable
from billing.models import (
    FINAL_SUBSCRIPTION_STATUSES,
    CheckoutSession,
    CreditAdjustment,
    CreditReservation,
    Customer,
    LedgerEntry,
    Payment,
    StripeEvent,
    Subscription,
    Wallet,
)
from billing.services.payments import payments_enabled
from generation import services as generation_services
from generation import storage
from generation.errors import NotAllowed, ProviderError, StorageUnavailable
from generation.models import ACTIVE_STATUSES, Asset, Generation, PendingUpload, Status
from generation.providers import get_provider
from privacy.models import (
    ActivityEvent,
    ActivityKind,
    Consent,
    ConsentEvent,
    DataExport,
    ErasureReceipt,
    ErasureStatus,
    PolicyAcceptance,
    PrivacySettings,
)
from privacy.services.activity import activity_record

logger = logging.getLogger(__name__)

# What survives an erasure, table by table, and why. The erasure scan test checks that the
# person's id, public id and email appear nowhere else, and not even here (these rows hold the
# pseudonymous subject instead).
RETENTION = {
    "billing.Wallet": "balance history anchor of the ledger (tax and accounting law); user → subject",
    "billing.LedgerEntry": "every credit movement (tax and accounting law); no prompt, no email, no name",
    "billing.CreditReservation": "holds of credits behind ledger entries; belongs to the kept wallet",
    "billing.Payment": "each payment made (tax and accounting law); user → subject, receipt link dropped",
    "billing.CreditAdjustment": "staff credit changes behind ledger entries; user → subject",
    "privacy.ErasureReceipt": "what was deleted and kept, for staff; no personal data once emailed",
}

# The typed confirmation accepts the person's email address or this phrase.
CONFIRMATION_PHRASE = "delete my account"

# A provider may still be working on a job canceled this long before the erasure: ask it to stop.
PROVIDER_CANCEL_WINDOW = timezone.timedelta(hours=1)

STEPS = ("inventory", "jobs", "stripe", "storage", "rows", "receipt_email")


class ErasureError(Exception):
    """A step could not finish now (a service was down); the run is retried from that step."""


class StaffAccountNotErasable(Exception):
    """Staff accounts are not erased from the privacy centre: their admin history (who changed
    what) and their name in staff notes on other people's ledgers must outlive them. Another
    administrator removes the staff rights first; then the person can delete their account."""


def erasable_here(*, user) -> bool:
    """False for staff and former staff: Django's admin history (LogEntry.user) cascades with its
    author, and it has to outlive them. Those accounts are deleted by hand, on request."""
    return not (user.is_staff or user.is_superuser or LogEntry.objects.filter(user=user).exists())


def confirmation_matches(*, user, typed: str) -> bool:
    typed = " ".join((typed or "").split()).lower()
    return bool(typed) and typed in (user.email.lower(), CONFIRMATION_PHRASE)


# --- starting, in the request --------------------------------------------------------------------


def credentials_revoke(*, user) -> int:
    """Revoke everything that lets a program act for the person, at once. Returns how many went.

    The one place for it: the OAuth tokens allauth keeps from Google (none while
    SOCIALACCOUNT_STORE_TOKENS is off), API keys, and every access token, refresh token and
    pending authorization code Atelier's own authorization server issued for the person (any app:
    a GPT Action, an MCP client), which stop working at once. The person's webhook endpoints are
    turned off and their pending deliveries marked failed (counted too): nothing more is sent.
    """
    from accounts.services import api_keys_revoke_all
    from atelier_oauth.services import tokens_revoke_all
    from developers.services import webhook_endpoints_disable_all

    revoked, _ = SocialToken.objects.filter(account__user=user).delete()
    return (
        revoked
        + api_keys_revoke_all(user=user)
        + tokens_revoke_all(user=user)
        + webhook_endpoints_disable_all(user=user, reason="The account is being erased.")
    )


@transaction.atomic
def account_erasure_start(*, user, request: HttpRequest | None = None) -> ErasureReceipt:
    """Begin erasing the person's account. Re-authentication and the typed confirmation are
    the view's job. A second call (a double click) returns the receipt of the first."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not erasable_here(user=user):
        raise StaffAccountNotErasable()
    existing = ErasureReceipt.objects.filter(user=user).exclude(status=ErasureStatus.DONE).first()
    if existing is not None:
        return existing
    user.is_active = False
    # A new password hash changes the session auth hash: every session of the person, on every
    # device, is refused on its next request (the rows go in the task's `rows` step).
    user.set_unusable_password()
    user.save(update_fields=["is_active", "password"])
    credentials_revoke(user=user)
    jobs_canceled = 0
    for generation in Generation.objects.select_related("model").filter(owner=user, status__in=ACTIVE_STATUSES):
        with suppress(NotAllowed):  # it finished meanwhile: its files go with the rest
            jobs_canceled += generation_services.generation_cancel(user=user, generation=generation)
    activity_record(user=user, kind=ActivityKind.ERASURE_REQUESTED, request=request, jobs_canceled=jobs_canceled)
    receipt = ErasureReceipt.objects.create(user=user, email=user.email)
    transaction.on_commit(lambda: _enqueue(receipt.pk))
    logger.info("erasure %s started", receipt.uuid)
    return receipt


def _enqueue(receipt_id: int) -> None:
    from privacy.tasks.erasure import erase_account

    try:
        erase_account.delay(receipt_id)
    except Exception:  # the broker is down: beat's resume_erasures starts it later
        logger.exception("could not queue erasure %s; beat will resume it", receipt_id)


# --- the run, in the worker ----------------------------------------------------------------------


@dataclass
class _Run:
    receipt: ErasureReceipt
    user: User | None

    @property
    def prefix(self) -> str:
        return f"users/{self.receipt.counts['storage_prefix_id']}"


def erasure_run(*, receipt_id: int) -> ErasureReceipt:
    """Run (or resume) an erasure to the end. Raises on a step that cannot finish now; the
    steps done so far stay recorded and the next run starts after them."""
    receipt = ErasureReceipt.objects.get(pk=receipt_id)
    if receipt.status == ErasureStatus.DONE:
        return receipt
    ErasureReceipt.objects.filter(pk=receipt_id).update(attempts=F("attempts") + 1)
    receipt.refresh_from_db(fields=["attempts"])
    run = _Run(receipt=receipt, user=User.objects.filter(pk=receipt.user_id).first() if receipt.user_id else None)
    try:
        for name in STEPS:
            if name in receipt.steps_done:
                continue
            counts = _STEP_FUNCTIONS[name](run) or {}
            if name != "rows":  # `rows` records itself inside its own transaction
                _step_done(receipt, name, **counts)
    except Exception as exc:
        ErasureReceipt.objects.filter(pk=receipt.pk).update(
            status=ErasureStatus.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:300]
        )
        raise
    ErasureReceipt.objects.filter(pk=receipt.pk).update(
        status=ErasureStatus.DONE, finished_at=timezone.now(), last_error=""
    )
    receipt.refresh_from_db()
    logger.info("erasure %s done: %s", receipt.uuid, receipt.counts)
    return receipt


def _step_done(receipt: ErasureReceipt, name: str, **counts) -> None:
    receipt.steps_done = [*receipt.steps_done, name]
    receipt.counts = {**receipt.counts, **counts}
    receipt.save(update_fields=["steps_done", "counts"])


def erasures_unfinished():
    return ErasureReceipt.objects.exclude(status=ErasureStatus.DONE).order_by("requested_at")


# inventory --------------------------------------------------------------------------------------


def _step_inventory(run: _Run) -> dict:
    """Count what there is to delete and keep, once, before anything goes."""
    user = run.user
    if user is None:
        raise ErasureError("the user row is gone before the inventory was taken")
    objects = storage.objects_under(f"users/{user.public_id}")
    wallet = Wallet.objects.filter(user=user).first()
    customer = Customer.objects.filter(user=user).first()
    deleted = {
        "generations": Generation.objects.filter(owner=user).count(),
        "assets": Asset.objects.filter(generation__owner=user).count(),
        "pending_uploads": PendingUpload.objects.filter(owner=user).count(),
        "data_exports": DataExport.objects.filter(user=user).count(),
        "consents": Consent.objects.filter(user=user).count(),
        "consent_events": ConsentEvent.objects.filter(user=user).count(),
        "activity_events": ActivityEvent.objects.filter(user=user).count(),
        "policy_acceptances": PolicyAcceptance.objects.filter(user=user).count(),
        "privacy_settings": PrivacySettings.objects.filter(user=user).count(),
        "email_addresses": EmailAddress.objects.filter(user=user).count(),
        "social_accounts": SocialAccount.objects.filter(user=user).count(),
        "sessions": len(_session_keys_of(user)),
        "subscriptions": Subscription.objects.filter(user=user).count(),
        "checkout_sessions": CheckoutSession.objects.filter(user=user).count(),
        "stripe_events": _stripe_events_of(_customer_ids(user), user.email).count(),
        "accounts": 1,
    }
    kept = {
        "ledger_entries": LedgerEntry.objects.filter(wallet=wallet).count() if wallet else 0,
        "payments": Payment.objects.filter(user=user).count(),
        "credit_adjustments": CreditAdjustment.objects.filter(user=user).count(),
        "wallet_balance": wallet.balance if wallet else 0,
    }
    return dict(
        storage_prefix_id=str(user.public_id),
        deleted=deleted,
        kept=kept,
        files=len(objects),
        bytes=sum(size for _, size in objects),
        stripe_customer=customer is not None,
        # Kept a few days to redact notifications Stripe sends after the deletion (then dropped).
        stripe_customer_ids=_customer_ids(user),
        stripe_subscriptions_live=Subscription.objects.filter(user=user)
        .exclude(status__in=FINAL_SUBSCRIPTION_STATUSES)
        .count(),
        provider_jobs=len(_provider_jobs(user, run.receipt)),
    )


# jobs at the provider ----------------------------------------------------------------------------


def _provider_jobs(user, receipt: ErasureReceipt) -> list[tuple[int, str, str]]:
    """Predictions that may still run at a provider that can stop them: jobs still active, and
    jobs canceled shortly before (`account_erasure_start` cancels the person's running jobs)."""
    since = receipt.requested_at - PROVIDER_CANCEL_WINDOW
    rows = (
        Generation.objects.filter(owner=user)
        .exclude(provider_prediction_id="")
        .filter(status__in=[*ACTIVE_STATUSES, Status.CANCELED])
        .values_list("pk", "status", "finished_at", "model__provider", "provider_prediction_id")
    )
    jobs = []
    for pk, status, finished_at, provider, prediction_id in rows:
        if status == Status.CANCELED and (finished_at is None or finished_at < since):
            continue
        if get_provider(provider).can_cancel:
            jobs.append((pk, provider, prediction_id))
    return jobs


def _step_jobs(run: _Run) -> dict | None:
    """Stop what still runs at the provider. Canceling a prediction that already stopped is
    harmless; a provider that refuses for good (the prediction is unknown) is noted, not retried.
    Replicate deletes API predictions' inputs and outputs itself an hour after they finish."""
    user = run.user
    if user is None:
        return
    for generation in Generation.objects.select_related("model").filter(owner=user, status__in=ACTIVE_STATUSES):
        with suppress(NotAllowed):
            generation_services.generation_cancel(user=user, generation=generation)
    refused = 0
    for pk, provider, prediction_id in _provider_jobs(user, run.receipt):
        try:
            generation_services.provider_cancel(generation_id=pk, provider=provider, prediction_id=prediction_id)
        except ProviderError as exc:
            if exc.retryable:
                raise
            refused += 1
            logger.info("erasure %s: provider refused to cancel a job: %s", run.receipt.uuid, exc.detail)
    return {"provider_jobs_refused": refused}


# Stripe ----------------------------------------------------------------------------------------------


def _customer_ids(user) -> list[str]:
    return list(Customer.objects.filter(user=user).values_list("stripe_customer_id", flat=True))


def _stripe_events_of(customer_ids: list[str], email: str):
    """Stored webhook events that name the person (their Stripe customer, or their email)."""
    needles = [needle for needle in [*customer_ids, email] if needle]
    if not needles:
        return StripeEvent.objects.none()
    events = StripeEvent.objects.annotate(_text=Cast("payload", TextField())).exclude(payload__redacted__isnull=False)
    query = None
    for needle in needles:
        match = events.filter(_text__icontains=needle)
        query = match if query is None else query | match
    return query


def stripe_events_redact(*, customer_ids: list[str], email: str = "") -> int:
    """Replace the payload of stored events that name an erased person by a stub: the row stays
    (a redelivery of the same event is still recognised and changes nothing)."""
    ids = list(_stripe_events_of(customer_ids, email).values_list("pk", "event_id", "type"))
    for pk, event_id, kind in ids:
        StripeEvent.objects.filter(pk=pk).update(
            payload={"id": event_id, "type": kind, "redacted": "account erased"}, error=""
        )
    return len(ids)


# Stripe notifies the deletion of the customer and its subscriptions after we made it.
LATE_EVENTS_WINDOW = timezone.timedelta(days=3)


def stripe_events_redact_late(*, window: timezone.timedelta = LATE_EVENTS_WINDOW) -> int:
    """Redact events about erased customers that arrived after their erasure; once the window
    has passed, forget the customer ids too. Returns how many events were redacted."""
    redacted = 0
    cutoff = timezone.now() - window
    for receipt in ErasureReceipt.objects.filter(status=ErasureStatus.DONE, counts__has_key="stripe_customer_ids"):
        redacted += stripe_events_redact(customer_ids=receipt.counts["stripe_customer_ids"])
        if receipt.finished_at and receipt.finished_at < cutoff:
            counts = {k: v for k, v in receipt.counts.items() if k != "stripe_customer_ids"}
            ErasureReceipt.objects.filter(pk=receipt.pk).update(counts=counts)
    return redacted


def _step_stripe(run: _Run) -> None:
    """Cancel live subscriptions now and delete the Stripe Customer, then our mirror rows of
    them (they name a customer that no longer exists) and the stored events about it."""
    user = run.user
    if user is None:
        return
    customer_ids = _customer_ids(user)
    if customer_ids and not payments_enabled():
        raise PaymentsUnavailable()
    for subscription in Subscription.objects.filter(user=user).exclude(status__in=FINAL_SUBSCRIPTION_STATUSES):
        try:
            live = stripe_api.subscription_get(subscription.stripe_subscription_id)
            if live.get("status") not in FINAL_SUBSCRIPTION_STATUSES:
                stripe_api.subscription_cancel(
                    subscription.stripe_subscription_id,
                    idempotency_key=f"erasure:{run.receipt.uuid}:{subscription.stripe_subscription_id}",
                )
        except PaymentsError as exc:
            if exc.retryable or exc.code != "resource_missing":
                raise
    for customer_id in customer_ids:
        try:
            stripe_api.customer_delete(customer_id)
        except PaymentsError as exc:
            # Already deleted (a resumed run, or by hand in the dashboard) is what we wanted.
            if exc.retryable or exc.code != "resource_missing":
                raise
    with transaction.atomic():
        stripe_events_redact(customer_ids=customer_ids, email=user.email)
        CheckoutSession.objects.filter(user=user).delete()
        Subscription.objects.filter(user=user).delete()
        Customer.objects.filter(user=user).delete()


# storage -------------------------------------------------------------------------------------------------


def _step_storage(run: _Run) -> None:
    """Delete the person's generations the way history deletion does (objects first, then rows),
    then every other object under users/<uuid>/ (exports, kept uploads, anything else), and
    check that nothing is left under the prefix."""
    if run.user is not None:
        generation_services.generation_history_delete(user=run.user, until=timezone.now())
    storage.uploads_abort_under(run.prefix)
    for _attempt in range(2):
        remaining = [key for key, _ in storage.objects_under(run.prefix)]
        if not remaining:
            return
        storage.delete_keys(remaining)
    left = storage.objects_under(run.prefix)
    if left:
        raise StorageUnavailable(f"{len(left)} objects are still under {run.prefix}/")


# rows ---------------------------------------------------------------------------------------------------


def _session_keys_of(user) -> list[str]:
    """Keys of the person's sessions. Django keeps the user id inside the signed session data,
    so every live session is read (in a background step, once per erasure)."""
    keys = []
    wanted = str(user.pk)
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=2000):
        if str(session.get_decoded().get("_auth_user_id", "")) == wanted:
            keys.append(session.session_key)
    return keys


def _identifiers(user) -> list[str]:
    """The strings that name the person in text: public id (both spellings) and every email
    address they have or had on the account."""
    emails = {user.email, *EmailAddress.objects.filter(user=user).values_list("email", flat=True)}
    return [str(user.public_id), user.public_id.hex, *sorted(e for e in emails if e)]


def _scrub(text: str, *, user, subject: str, names: bool = False) -> str:
    """`text` without the person's identifiers, each replaced by the subject. With `names`
    (free text a person or staff typed: memos, reasons) the display name goes too, as a whole
    word only — never inside ids, where a short name ("Ada") matches hex digits."""
    for needle in _identifiers(user):
        text = re.sub(re.escape(needle), f"subject:{subject}", text, flags=re.IGNORECASE)
    name = user.display_name.strip()
    if names and len(name) >= 3:
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", f"subject:{subject}", text, flags=re.IGNORECASE)
    return text


def _scrub_admin_log(user, subject: str) -> None:
    mentions = Q()
    for needle in _identifiers(user):
        mentions |= Q(object_repr__icontains=needle) | Q(change_message__icontains=needle)
    for entry in LogEntry.objects.filter(mentions).values("pk", "object_repr", "change_message"):
        LogEntry.objects.filter(pk=entry["pk"]).update(
            object_repr=_scrub(entry["object_repr"], user=user, subject=subject, names=True)[:200],
            change_message=_scrub(entry["change_message"], user=user, subject=subject, names=True),
        )


def _detach_money_records(user, subject: str) -> None:
    """Keep the money records, without the person. Ledger entries are append-only: this is the
    one rewrite they get, of identifiers only (amounts, reasons, dates stay as they were)."""
    wallet = Wallet.objects.filter(user=user).first()
    if wallet is not None:
        for entry in LedgerEntry.objects.filter(wallet=wallet).values("pk", "reference", "memo", "idempotency_key"):
            changes = {
                field: _scrub(entry[field], user=user, subject=subject, names=field == "memo")
                for field in ("reference", "memo", "idempotency_key")
            }
            changes = {field: value for field, value in changes.items() if value != entry[field]}
            if changes:
                LedgerEntry.objects.filter(pk=entry["pk"]).update(**changes)
        Wallet.objects.filter(pk=wallet.pk).update(user=None, subject=subject)
    Payment.objects.filter(user=user).update(user=None, subject=subject, receipt_url="")
    for adjustment in CreditAdjustment.objects.filter(user=user).values("pk", "reason"):
        CreditAdjustment.objects.filter(pk=adjustment["pk"]).update(
            user=None, subject=subject, reason=_scrub(adjustment["reason"], user=user, subject=subject, names=True)
        )


def _step_rows(run: _Run) -> None:
    """Everything else the person's account holds, in one transaction with the step's record:
    it happens entirely or not at all."""
    user = run.user
    if user is None:  # the user row went in an earlier run whose record was lost: nothing left
        return
    subject = str(run.receipt.subject)
    with transaction.atomic():
        DataExport.objects.filter(user=user).delete()
        PendingUpload.objects.filter(owner=user).delete()
        Generation.objects.filter(owner=user).delete()  # none left after `storage`; belt and braces
        Consent.objects.filter(user=user).delete()
        ConsentEvent.objects.filter(user=user).delete()
        ActivityEvent.objects.filter(user=user).delete()
        PolicyAcceptance.objects.filter(user=user).delete()
        PrivacySettings.objects.filter(user=user).delete()
        SocialToken.objects.filter(account__user=user).delete()
        SocialAccount.objects.filter(user=user).delete()
        EmailAddress.objects.filter(user=user).delete()
        Session.objects.filter(session_key__in=_session_keys_of(user)).delete()
        # Expired sessions (of anyone: `clearsessions` would remove them too) may still name the person.
        Session.objects.filter(expire_date__lte=timezone.now()).delete()
        # The admin's history of changes to this account names it (its email) in each entry.
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)).delete()
        # Entries about other rows (a credit adjustment, an email address) name the person in
        # their description: those stay for the audit trail, without the name.
        _scrub_admin_log(user, subject)
        _detach_money_records(user, subject)
        user.delete()  # anything we did not name above that cascades goes with it
        receipt = ErasureReceipt.objects.select_for_update().get(pk=run.receipt.pk)
        receipt.user = None
        receipt.steps_done = [*receipt.steps_done, "rows"]
        # The public id was kept only to find the storage prefix again, which is now empty.
        receipt.counts = {k: v for k, v in {**run.receipt.counts, **receipt.counts}.items() if k != "storage_prefix_id"}
        receipt.save(update_fields=["user", "steps_done", "counts"])
    run.receipt.refresh_from_db()
    run.user = None


# receipt ---------------------------------------------------------------------------------------------------

DELETED_LABELS = {
    "generations": "Generations (prompts, settings, results)",
    "pending_uploads": "Pictures kept from unfinished forms",
    "data_exports": "Data exports",
    "consents": "Consents",
    "consent_events": "Consent history entries",
    "activity_events": "Activity log entries",
    "policy_acceptances": "Privacy policy acceptances",
    "privacy_settings": "Privacy settings",
    "email_addresses": "Email addresses",
    "social_accounts": "Connected accounts (Google)",
    "sessions": "Sign-in sessions",
    "subscriptions": "Subscription records",
    "checkout_sessions": "Checkout records",
    "stripe_events": "Payment notifications from Stripe that named you (emptied)",
}


def _period(days: int) -> str:
    if days >= 365 and days % 365 == 0:
        return f"{days // 365} year{'s' if days >= 730 else ''}"
    return f"{days} day{'s' if days != 1 else ''}"


def receipt_text(receipt: ErasureReceipt) -> str:
    counts = receipt.counts or {}
    # Asset rows are told as stored files (below); the account itself is the whole email.
    deleted = [
        (DELETED_LABELS[kind], n) for kind, n in (counts.get("deleted") or {}).items() if n and kind in DELETED_LABELS
    ]
    context = {
        "receipt": receipt,
        "counts": counts,
        "deleted": deleted,
        "kept": counts.get("kept") or {},
        "years": settings.PRIVACY_TAX_RECORDS_YEARS,
        "receipt_kept_for": _period(settings.PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS),
        "contact": settings.PRIVACY_CONTACT_EMAIL,
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    return render_to_string("privacy/email/erasure_receipt.txt", context)


def _step_receipt_email(run: _Run) -> None:
    """Send the receipt to the address the person had, then forget the address."""
    receipt = ErasureReceipt.objects.get(pk=run.receipt.pk)
    if receipt.email and receipt.receipt_sent_at is None:
        subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + "Your account has been deleted"
        try:
            send_mail(subject, receipt_text(receipt), settings.DEFAULT_FROM_EMAIL, [receipt.email])
        except smtplib.SMTPRecipientsRefused:
            # The mailbox is gone (often closed along with the account): retrying cannot help, and
            # keeping the address to retry would keep personal data for nothing.
            logger.warning("erasure %s: the receipt address was refused; not retried", receipt.uuid)
        except (OSError, smtplib.SMTPException) as exc:
            raise ErasureError(f"could not send the receipt email: {exc!r}") from exc
    ErasureReceipt.objects.filter(pk=receipt.pk).update(
        email="", receipt_sent_at=receipt.receipt_sent_at or timezone.now()
    )
    run.receipt.refresh_from_db()


_STEP_FUNCTIONS = {
    "inventory": _step_inventory,
    "jobs": _step_jobs,
    "stripe": _step_stripe,
    "storage": _step_storage,
    "rows": _step_rows,
    "receipt_email": _step_receipt_email,
}


# --- the end of the kept money records --------------------------------------------------------------


def tax_records_cutoff(*, now=None):
    """Money records last touched before this are past PRIVACY_TAX_RECORDS_YEARS."""
    now = now or timezone.now()
    years = settings.PRIVACY_TAX_RECORDS_YEARS
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


@transaction.atomic
def erased_money_records_purge(*, now=None) -> int:
    """Delete what an erasure kept for tax law once its period has passed: a detached wallet
    whose newest ledger entry and payment are older than PRIVACY_TAX_RECORDS_YEARS, with its
    entries, reservations, payments and staff adjustments. Returns how many wallets went."""
    cutoff = tax_records_cutoff(now=now)
    purged = 0
    for wallet in Wallet.objects.select_for_update().filter(user__isnull=True, subject__isnull=False):
        subject = wallet.subject
        if LedgerEntry.objects.filter(wallet=wallet, created_at__gte=cutoff).exists():
            continue
        if Payment.objects.filter(subject=subject, created_at__gte=cutoff).exists():
            continue
        CreditAdjustment.objects.filter(subject=subject).delete()  # before the entries they point to
        LedgerEntry.objects.filter(wallet=wallet).delete()  # the one deletion the ledger gets
        CreditReservation.objects.filter(wallet=wallet).delete()
        Payment.objects.filter(subject=subject).delete()
        wallet.delete()
        purged += 1
    return purged


def erasure_receipts_purge(*, now=None) -> int:
    """Delete finished erasure receipts older than PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS (the
    kept money records carry the subject themselves)."""
    cutoff = (now or timezone.now()) - timezone.timedelta(days=settings.PRIVACY_RETENTION_ERASURE_RECEIPTS_DAYS)
    return ErasureReceipt.objects.filter(status=ErasureStatus.DONE, finished_at__lt=cutoff).delete()[0]
