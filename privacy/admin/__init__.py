"""Privacy in the back office, one module per area."""

from __future__ import annotations

from privacy.admin import activity, choices, erasure, export, policy  # noqa: F401
