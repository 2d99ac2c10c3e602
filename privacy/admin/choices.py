"""Admin: choices."""

from __future__ import annotations
