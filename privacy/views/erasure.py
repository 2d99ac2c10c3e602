"""Privacy centre: erasure pages (filled in by the privacy issue's erasure work)."""

from __future__ import annotations

urlpatterns: list = []


def section_context(user) -> dict:
    """What the privacy centre page needs for this section."""
    return {}
