"""Every write in privacy goes through these services (one per change, audited)."""

from __future__ import annotations

from privacy.services.activity import activity_record, device_label

__all__ = ["activity_record", "device_label"]
