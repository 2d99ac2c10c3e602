from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    return {
        "SITE_NAME": settings.SITE_NAME,
        "PRIVACY_POLICY_VERSION": settings.PRIVACY_POLICY_VERSION,
    }
