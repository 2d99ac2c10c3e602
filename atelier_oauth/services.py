"""OAuth access tokens as API credentials (the authorization server itself is django-oauth-toolkit)."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from accounts.errors import AccountPausedForApi, ApiScopeMissing


def access_token_authenticate(*, request: HttpRequest, token: str, scope: str):
    """The owner of a live OAuth access token that carries `scope`, or None (unknown, expired,
    revoked, inactive owner). Sets `request.oauth_token`."""
    AccessToken = get_access_token_model()
    checksum = hashlib.sha256(token.encode()).hexdigest()
    access = (
        AccessToken.objects.select_related("user", "application")
        .filter(token_checksum=checksum, expires__gt=timezone.now())
        .first()
    )
    if access is None or access.user is None or not access.user.is_active:
        return None
    if access.user.is_paused:
        raise AccountPausedForApi()
    if not access.allow_scopes([scope]):
        raise ApiScopeMissing(f"This token was not granted the '{scope}' scope.")
    request.oauth_token = access
    return access.user
