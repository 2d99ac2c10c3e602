"""The current privacy policy version and the re-acceptance notice (filled in by the privacy
issue's policy work)."""

from __future__ import annotations


def context(request) -> dict:
    """Template context for the policy-change notice."""
    return {}
