from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Policy, consents, export and erasure (privacy issue)."""

    name = "privacy"

    def ready(self) -> None:
        from accounts.models import policy_version_source_set
        from privacy import receivers  # noqa: F401 - connects the activity log's signal receivers
        from privacy.policy import current_policy_version

        # accounts asks "which version must people have accepted?" without importing privacy.
        policy_version_source_set(current_policy_version)
