"""allauth hooks: how sign-up fills our User and how Google data maps onto it."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest

from accounts.models import User
from config.net import client_ip


class AccountAdapter(DefaultAccountAdapter):
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
