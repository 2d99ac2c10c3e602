"""Privacy centre: choices pages (filled in by the privacy issue's choices work)."""

from __future__ import annotations

urlpatterns: list = []


def section_context(user) -> dict:
    """What the privacy centre page needs for this section."""
    return {}
