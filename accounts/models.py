from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def _built_in_policy_version() -> str:
    return settings.PRIVACY_POLICY_VERSION


# Where the version people must have accepted comes from. The privacy app registers its own
# (the newest published PolicyVersion whose date has come, cached) in its AppConfig.ready():
# accounts never imports privacy. Without it, the built-in version from settings.
_policy_version_source: Callable[[], str] = _built_in_policy_version


def policy_version_source_set(source: Callable[[], str]) -> None:
    global _policy_version_source
    _policy_version_source = source


def current_policy_version() -> str:
    return _policy_version_source()


def _built_in_acceptance_check(version: str) -> bool:
    return version == current_policy_version()


# Whether an acceptance of a given version still counts (privacy registers its own: any version
# since the newest material change). Without it, only the current version counts.
_policy_acceptance_check: Callable[[str], bool] = _built_in_acceptance_check


def policy_acceptance_check_set(check: Callable[[str], bool]) -> None:
    global _policy_acceptance_check
    _policy_acceptance_check = check


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Email is the login; `public_id` is the id we show and put in storage keys."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField("email address", max_length=254, unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    age_confirmed_at = models.DateTimeField(null=True, blank=True)
    policy_accepted_at = models.DateTimeField(null=True, blank=True)
    policy_version = models.CharField(max_length=32, blank=True)
    # Restriction of processing ("Pause my account", privacy centre): while set, no new
    # generations, no email but the legally needed, and API keys refuse with the reason.
    paused_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@", 1)[0]

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def has_passed_gate(self) -> bool:
        """Age gate passed and some version of the policy accepted: enough to use the site.
        CompleteProfileMiddleware sends everyone else to the age gate."""
        return bool(self.age_confirmed_at and self.policy_version)

    @property
    def has_accepted_terms(self) -> bool:
        """Age gate passed and a policy version accepted that still counts (the current one, or
        any since the newest material change): needed to generate. Someone whose acceptance no
        longer counts sees the notice (privacy/_policy_notice.html) until they accept the new one."""
        return self.has_passed_gate and _policy_acceptance_check(self.policy_version)


class ApiScope(models.TextChoices):
    READ = "read", "Read (account, models, your generations)"
    GENERATE = "generate", "Generate (spends credits)"


class ApiKey(models.Model):
    """A key a program uses to call the API for its owner (`Authorization: Bearer atl_…`).

    Only a SHA-256 of the secret is stored (the secret is 32 random bytes, so a slow hash adds
    nothing); the plaintext is shown once, at creation. `prefix` is the visible start of the key
    (`atl_` + 8 characters) that finds the row and lets the owner tell keys apart."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="apikey_owner_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
