from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Policy, consents, export and erasure (privacy issue)."""

    name = "privacy"

    def ready(self) -> None:
        from accounts.models import policy_acceptance_check_set, policy_version_source_set
        from privacy import receivers  # noqa: F401 - connects the activity log's signal receivers
        from privacy.policy import current_policy_version, policy_version_accepted

        # accounts asks "which version is current?" and "does this acceptance still count?"
        # without importing privacy.
        policy_version_source_set(current_policy_version)
        policy_acceptance_check_set(policy_version_accepted)
