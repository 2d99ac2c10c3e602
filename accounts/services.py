"""Every write to accounts goes through here."""

from __future__ import annotations

import datetime as dt

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.errors import UnderMinimumAge
from accounts.models import User


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
def user_accept_terms(*, user: User) -> User:
    """Record that the age gate was passed and the current privacy policy accepted."""
    now = timezone.now()
    user.age_confirmed_at = user.age_confirmed_at or now
    user.policy_accepted_at = now
    user.policy_version = settings.PRIVACY_POLICY_VERSION
    user.save(update_fields=["age_confirmed_at", "policy_accepted_at", "policy_version"])
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
