from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Policy, consents, export and erasure (privacy issue)."""

    name = "privacy"
