"""Every write to accounts goes through here."""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import UnderMinimumAge
from accounts.models import User, current_policy_version
from accounts.signals import terms_accepted

logger = logging.getLogger(__name__)


def age_on(*, birth_date: dt.date, today: dt.date) -> int:
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def age_gate_check(*, birth_date: dt.date, today: dt.date | None = None) -> None:
    """Raise UnderMinimumAge if the person is too young. The birth date itself is not stored."""
    today = today or timezone.localdate()
    if age_on(birth_date=birth_date, today=today) < settings.MINIMUM_AGE:
        raise UnderMinimumAge(f"Atelier is only for people aged {settings.MINIMUM_AGE} or older.")


@transaction.atomic
def user_accept_terms(*, user: User, version: str | None = None, request=None) -> User:
    """Record that the age gate was passed and a privacy policy version (default: the current
    one) accepted. `terms_accepted` lets privacy record the acceptance per version (and the
    activity event) in the same transaction."""
    now = timezone.now()
    user.age_confirmed_at = user.age_confirmed_at or now
    user.policy_accepted_at = now
    user.policy_version = version or current_policy_version()
    user.save(update_fields=["age_confirmed_at", "policy_accepted_at", "policy_version"])
    terms_accepted.send(sender=User, user=user, version=user.policy_version, request=request)
    return user


@transaction.atomic
def profile_update(*, user: User, display_name: str, remove_avatar: bool = False) -> User:
    user.display_name = display_name.strip()
    fields = ["display_name"]
    if remove_avatar:
        user.avatar_url = ""
        fields.append("avatar_url")
    user.save(update_fields=fields)
    return user


@transaction.atomic
def demo_user_ensure(*, email: str, password: str) -> tuple[User, bool]:
    """Create (or reset the password of) the demo account, verified and past the age gate."""
    user, created = User.objects.get_or_create(email=email.lower(), defaults={"display_name": "Demo Artist"})
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    user_accept_terms(user=user)
    # Enough credits to try every kind of generation from the start.
    from billing.models import LedgerReason
    from billing.services import credits_grant, credits_grant_signup_bonus

    credits_grant_signup_bonus(user=user)
    credits_grant(
        user=user,
        amount=100,
        reason=LedgerReason.ADMIN_GRANT,
        reference="demo",
        idempotency_key=f"demo-credits:{user.public_id}",
        memo="Demo account credits",
    )
    return user, created


# The demo account's first look: a few finished pieces from the offline models, one of each kind.
# (model slug, parameters, input) where input names an earlier sample whose output is the picture.
DEMO_SAMPLES: list[tuple[str, dict, str | None]] = [
    (
        "local-canvas",
        {
            "prompt": "a lighthouse at dawn, calm sea, seagulls",
            "style": "watercolor",
            "aspect_ratio": "16:9",
            "seed": 7,
        },
        None,
    ),
    (
        "local-canvas",
        {"prompt": "a fox curled up in autumn leaves", "style": "anime", "aspect_ratio": "1:1", "seed": 42},
        None,
    ),
    (
        "local-canvas",
        {"prompt": "a neon city street in the rain", "style": "pixel-art", "aspect_ratio": "4:5", "seed": 1999},
        None,
    ),
    ("local-restyle", {"prompt": "make it a snowy winter morning", "strength": 0.6, "seed": 11}, "local-canvas:0"),
    ("local-relief", {}, "local-canvas:1"),
]


@contextmanager
def _tasks_inline():
    """Run queued tasks in this process, as the eager mode does, whatever broker is configured:
    the samples are finished before the command returns and no worker needs to be running."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def demo_samples_ensure(*, user: User) -> int:
    """Give an account with no generations a few finished samples from the offline models, made
    through `generation_submit` and run at once with the local provider (they cost the account
    their credits, like any job). Does nothing if the account has made anything already, or if the
    offline models are switched off. Returns how many samples finished."""
    from billing.errors import BillingError
    from generation.errors import GenerationError
    from generation.models import AssetRole, CatalogEntry, Generation, Status
    from generation.services import GenerationSpec, generation_submit

    if Generation.objects.filter(owner=user).exists():
        return 0
    entries = {e.slug: e for e in CatalogEntry.objects.filter(slug__in={slug for slug, _, _ in DEMO_SAMPLES})}
    made: dict[str, list[Generation]] = {}
    finished = 0
    with _tasks_inline():
        for slug, values, source in DEMO_SAMPLES:
            entry = entries.get(slug)
            if entry is None or not entry.enabled:
                continue
            source_asset = ""
            if source is not None:
                source_slug, index = source.split(":")
                done = made.get(source_slug, [])
                if len(done) <= int(index):
                    continue
                output = done[int(index)].assets.filter(role=AssetRole.OUTPUT).order_by("index").first()
                if output is None:
                    continue
                source_asset = str(output.uuid)  # "Edit this" / "Make 3D from this": no re-upload
            try:
                generation = generation_submit(
                    user=user, spec=GenerationSpec(model=entry, values=values, source_asset=source_asset)
                )
            except (GenerationError, BillingError) as exc:  # a sample is a nicety, never a blocker
                logger.warning("demo sample %s was not made: %s", slug, exc)
                continue
            generation.refresh_from_db()
            if generation.status == Status.SUCCEEDED:
                made.setdefault(slug, []).append(generation)
                finished += 1
            else:
                logger.warning("demo sample %s ended %s: %s", slug, generation.status, generation.error_message)
    return finished


# --- API keys ------------------------------------------------------------------------------------

API_KEY_PREFIX = "atl_"
# last_used_at is written at most this often per key: a busy key costs one UPDATE a minute.
API_KEY_TOUCH_EVERY = dt.timedelta(minutes=1)


def _api_key_hash(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, user: User, name: str, scopes, request=None):
    """Create a key for `user`; returns (ApiKey, plaintext). The plaintext `atl_<8>_<secret>` is
    never stored (only the SHA-256 of its secret part) and can't be shown again."""
    import secrets

    from accounts.errors import ApiKeyInvalid
    from accounts.models import ApiKey, ApiScope
    from accounts.signals import api_key_created

    name = (name or "").strip()
    if not name:
        raise ApiKeyInvalid("Give the key a name, so you can tell it apart later.")
    chosen = [s.value for s in ApiScope if s.value in set(scopes or ())]
    if not chosen:
        raise ApiKeyInvalid("Choose at least one scope.")
    while True:
        prefix = API_KEY_PREFIX + secrets.token_hex(4)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        owner=user, name=name[:80], prefix=prefix, secret_hash=_api_key_hash(secret), scopes=chosen
    )
    api_key_created.send(sender=ApiKey, user=user, key=key, request=request)
    return key, f"{prefix}_{secret}"


@transaction.atomic
def api_key_revoke(*, user: User, key, request=None) -> bool:
    """Revoke one of the person's keys (a conditional update: revoking twice records once).
    Returns whether this call revoked it. The caller finds the key among the owner's own."""
    from accounts.models import ApiKey
    from accounts.signals import api_key_revoked

    if key.owner_id != user.pk:
        raise ApiKey.DoesNotExist
    now = timezone.now()
    done = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if done:
        key.revoked_at = now
        api_key_revoked.send(sender=ApiKey, user=user, key=key, request=request)
    return bool(done)


def api_keys_revoke_all(*, user: User) -> int:
    """Revoke every live key of the person at once (erasure). No events: the log goes too."""
    from accounts.models import ApiKey

    return ApiKey.objects.filter(owner=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(*, token: str):
    """The live key for a presented token, or None (unknown, wrong secret, revoked, owner
    inactive). A paused owner raises AccountPausedForApi so the API can say why it refuses."""
    import hmac

    from django.db.models import Q

    from accounts.errors import AccountPausedForApi
    from accounts.models import ApiKey

    token = (token or "").strip()
    # `atl_` + 8 hex characters, `_`, then the secret (which may itself hold `_` and `-`).
    size = len(API_KEY_PREFIX) + 8
    prefix, sep, secret = token[:size], token[size : size + 1], token[size + 1 :]
    if not prefix.startswith(API_KEY_PREFIX) or sep != "_" or not secret:
        return None
    key = ApiKey.objects.select_related("owner").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _api_key_hash(secret)):
        return None
    if not key.owner.is_active:
        return None
    if key.owner.is_paused:
        raise AccountPausedForApi()
    now = timezone.now()
    if key.last_used_at is None or key.last_used_at < now - API_KEY_TOUCH_EVERY:
        # Conditional: of many concurrent requests, one writes.
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - API_KEY_TOUCH_EVERY)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_scope_check(*, key, scope: str) -> None:
    """Raise ApiScopeMissing unless the key carries `scope` (e.g. `generate` for spending calls)."""
    from accounts.errors import ApiScopeMissing

    if not key.has_scope(scope):
        raise ApiScopeMissing(f"This API key lacks the '{scope}' scope.")
