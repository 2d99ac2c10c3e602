"""What the privacy centre keeps: the activity log, consents, policy versions and acceptances,
exports, erasure receipts and each person's privacy settings.

Every write goes through `privacy/services/` (one service per change, audited in the activity
log); nothing else saves these models.
"""

from __future__ import annotations

from uuid import uuid4

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# --- activity log ------------------------------------------------------------------------------


class ActivityKind(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    EMAIL_ADDED = "email_added", "Email address added"
    EXPORT_REQUESTED = "export_requested", "Data export requested"
    EXPORT_DOWNLOADED = "export_downloaded", "Data export downloaded"
    CONSENT_CHANGED = "consent_changed", "Consent changed"
    POLICY_ACCEPTED = "policy_accepted", "Privacy policy accepted"
    GENERATIONS_DELETED = "generations_deleted", "Generations deleted"
    HISTORY_DELETED = "history_deleted", "Whole history deleted"
    RETENTION_CHANGED = "retention_changed", "History retention changed"
    ACCOUNT_PAUSED = "account_paused", "Account paused"
    ACCOUNT_RESUMED = "account_resumed", "Account resumed"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"
    ERASURE_REQUESTED = "erasure_requested", "Account deletion requested"
    STAFF_CREDITS_ADJUSTED = "staff_credits_adjusted", "Credits adjusted by staff"
    STAFF_ACCOUNT_FLAGGED = "staff_account_flagged", "Account flagged by staff"
    STAFF_ACCOUNT_UNFLAGGED = "staff_account_unflagged", "Account flag cleared by staff"


class ActivityEvent(models.Model):
    """One privacy-relevant event in a person's account, recorded once by the service that
    caused it (`privacy.services.activity_record`). The IP address is dropped after
    PRIVACY_RETENTION_IP_DAYS; the device is coarse ("Firefox on Windows")."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="activity_events")
    kind = models.CharField(max_length=32, choices=ActivityKind.choices)
    at = models.DateTimeField(default=timezone.now)
    # Staff member who made the change (staff changes to an account); null for the person's own.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    device = models.CharField(max_length=80, blank=True)
    # Short facts in words and numbers (counts, consent kind, key prefix); never prompt text.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-at"], name="activity_user_at"),
            models.Index(fields=["at"], name="activity_at", condition=models.Q(ip__isnull=False)),
        ]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.at:%Y-%m-%d %H:%M}"


# --- consents ----------------------------------------------------------------------------------


class ConsentKind(models.TextChoices):
    TRAINING = "training", "Use my uploads and results to train models"
    MARKETING = "marketing", "Product news and offers by email"
    ANALYTICS = "analytics", "Anonymous usage statistics (cookies)"


class ConsentMethod(models.TextChoices):
    PRIVACY_CENTRE = "privacy_centre", "Privacy centre"
    COOKIE_NOTICE = "cookie_notice", "Cookie notice"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link in an email"
    ACCOUNT_PAUSE = "account_pause", "Account paused"
    STAFF = "staff", "Changed by staff on request"


class Consent(models.Model):
    """The current state of one consent for one person (off unless a ConsentEvent turned it on).
    Code that would share data reads this at that moment."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consents")
    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    granted = models.BooleanField(default=False)
    wording_version = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="consent_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {'on' if self.granted else 'off'}"


class ConsentEvent(models.Model):
    """History of every consent change: what, which wording, when, how."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consent_events")
    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    granted = models.BooleanField()
    wording_version = models.CharField(max_length=32)
    method = models.CharField(max_length=24, choices=ConsentMethod.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "kind", "-at"], name="consent_event_user_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {'on' if self.granted else 'off'} · {self.at:%Y-%m-%d}"


class PageViewCount(models.Model):
    """First-party analytics, counted only for visitors who allowed analytics: views per path
    per day, no person, no cookie id, no IP."""

    day = models.DateField()
    path = models.CharField(max_length=200)
    views = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "path"], name="pageview_day_path")]

    def __str__(self) -> str:
        return f"{self.day} {self.path}: {self.views}"


# --- policy versions ---------------------------------------------------------------------------


class PolicyVersion(models.Model):
    """One version of the privacy policy, written and published by staff in the admin. The
    current version is the newest published one whose effective date has come."""

    version = models.CharField(
        max_length=32,
        unique=True,
        help_text="For example 2026-11-25: letters, digits, dots, dashes, underscores (part of its address).",
        validators=[
            RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "Use letters, digits, dots, dashes and underscores."),
            RegexValidator(r"^accept$", "“accept” is taken by the acceptance page.", inverse_match=True),
        ],
    )
    title = models.CharField(max_length=120, default="Privacy policy")
    body = models.TextField(help_text="Markdown.")
    summary = models.TextField(blank=True, help_text="What changed since the previous version, in plain words.")
    material = models.BooleanField(
        default=False, help_text="A material change: everyone is emailed and must accept again before generating."
    )
    effective_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-effective_at", "-id"]

    def __str__(self) -> str:
        return f"Privacy policy {self.version}"


class PolicyAcceptance(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="policy_acceptances")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "policy"], name="policy_acceptance_once")]

    def __str__(self) -> str:
        return f"{self.policy.version} accepted {self.accepted_at:%Y-%m-%d}"


# --- export --------------------------------------------------------------------------------------


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Being prepared"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class DataExport(models.Model):
    """One "Download my data" request: a ZIP under users/<uuid>/exports/, kept 7 days."""

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="data_exports")
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    storage_key = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["user", "-requested_at"], name="export_user_requested")]

    def __str__(self) -> str:
        return f"Export {self.uuid} ({self.status})"


# --- erasure -------------------------------------------------------------------------------------


class ErasureStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed (will be retried)"


class ErasureReceipt(models.Model):
    """What one account erasure deleted and kept. No personal data stays on it once the receipt
    email is sent: `user` goes null with the user row, `email` is blanked after sending, and
    `subject` is the pseudonymous id put on the ledger and payments kept for tax law."""

    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="erasure_receipts"
    )
    subject = models.UUIDField(default=uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=ErasureStatus.choices, default=ErasureStatus.RUNNING)
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Where to send the receipt; blanked once it is sent.
    email = models.EmailField(blank=True)
    # Steps already finished (resumable) and what each deleted (rows per kind, files, bytes...).
    steps_done = models.JSONField(default=list, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    receipt_sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"Erasure {self.uuid} ({self.status})"


# --- per-person settings ------------------------------------------------------------------------


class HistoryRetention(models.IntegerChoices):
    FOREVER = 0, "Keep until I delete it"
    DAYS_30 = 30, "Delete after 30 days"
    DAYS_7 = 7, "Delete after 7 days"


class PrivacySettings(models.Model):
    """A person's own choices that are not consents: how long their history is kept."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="privacy_settings")
    history_retention_days = models.PositiveSmallIntegerField(
        choices=HistoryRetention.choices, default=HistoryRetention.FOREVER
    )
    # Prompts and parameters of generations asked for through an assistant (GPT Action, MCP) are
    # blanked after ASSISTANT_PROMPT_RETENTION_DAYS unless the person chose to keep them.
    keep_assistant_history = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"History kept: {self.get_history_retention_days_display()}"


class PolicyNotice(models.Model):
    """The email telling one person about one material policy change, sent once: the batched
    task inserts this row before sending, so a re-run skips whoever already has it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="policy_notices")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="notices")
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "policy"], name="policy_notice_once")]

    def __str__(self) -> str:
        return f"{self.policy.version} notice {self.sent_at:%Y-%m-%d}"
