"""Credits that follow account events: the welcome credits once an email is verified."""

from __future__ import annotations

from allauth.account.signals import email_confirmed, user_signed_up
from django.dispatch import receiver

from billing import services


@receiver(email_confirmed)
def grant_welcome_credits_on_verification(sender, request, email_address, **kwargs) -> None:
    services.credits_grant_signup_bonus(user=email_address.user)


@receiver(user_signed_up)
def grant_welcome_credits_to_verified_signups(sender, request, user, **kwargs) -> None:
    # Google (or any provider) may hand us an address it has already verified.
    if user.emailaddress_set.filter(verified=True).exists():
        services.credits_grant_signup_bonus(user=user)
