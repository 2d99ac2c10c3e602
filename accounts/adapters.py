"""allauth hooks: how sign-up fills our User and how Google data maps onto it."""

from __future__ import annotations

from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from accounts.models import User
from config.net import client_ip

LOGGED_IN_MESSAGE = "account/messages/logged_in.txt"


class AccountAdapter(DefaultAccountAdapter):
    def login(self, request: HttpRequest, user: User) -> None:
        # Django's own `user_logged_in` receiver stamps last_login during this call, so an
        # account's very first sign-in is the one that starts with last_login empty. The
        # welcome message (logged_in.txt) reads the flag.
        request.atelier_first_sign_in = user.last_login is None
        super().login(request, user)

    def add_message(self, request, level, message_template=None, message_context=None, extra_tags="", message=None):
        if message_template == LOGGED_IN_MESSAGE:
            message_context = {
                **(message_context or {}),
                "first_sign_in": getattr(request, "atelier_first_sign_in", False),
                "free_credits": settings.FREE_CREDITS_ON_SIGNUP,
            }
        super().add_message(request, level, message_template, message_context, extra_tags, message)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Every allauth email is signed "Atelier" and names SITE_URL's host (not the host of
        whichever request triggered it). The templates live in templates/account/email/, each
        as `*_message.txt` plus `*_message.html` (sent as the HTML alternative)."""
        context = {**context, **email_branding()}
        super().send_mail(template_prefix, email, context)

    def get_client_ip(self, request: HttpRequest) -> str:
        # allauth keys its per-IP rate limits on this: the same rule as our own limiters
        # (TRUSTED_PROXY_COUNT, see config/net.py), and never a 500 on a short X-Forwarded-For.
        return client_ip(request)

    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=False)
        # The social sign-up form has no display name: keep the one Google gave.
        if "display_name" in form.cleaned_data:
            user.display_name = (form.cleaned_data["display_name"] or "").strip()
        if commit:
            user.save()
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def populate_user(self, request: HttpRequest, sociallogin, data: dict) -> User:
        user = super().populate_user(request, sociallogin, data)
        extra = sociallogin.account.extra_data or {}
        name = extra.get("name") or " ".join(p for p in (data.get("first_name"), data.get("last_name")) if p)
        user.display_name = (name or "")[:80]
        user.avatar_url = _google_picture(extra)
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin) -> None:
        # A returning Google user without an avatar picks up the current Google picture.
        user = sociallogin.user
        if sociallogin.is_existing and user.pk and not user.avatar_url:
            picture = _google_picture(sociallogin.account.extra_data or {})
            if picture:
                user.avatar_url = picture
                user.save(update_fields=["avatar_url"])


def _google_picture(extra: dict) -> str:
    picture = extra.get("picture") or ""
    return picture if isinstance(picture, str) and picture.startswith("https://") else ""


def email_branding() -> dict:
    parts = urlsplit(settings.SITE_URL)
    return {
        "site_name": settings.SITE_NAME,
        "site_host": parts.netloc or settings.SITE_URL,
        "site_url": settings.SITE_URL,
        "free_credits": settings.FREE_CREDITS_ON_SIGNUP,
    }
