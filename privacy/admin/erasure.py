"""Admin: erasure."""

from __future__ import annotations
