"""Template filters for the developers pages (and the result page's purged-prompt sentence)."""

from __future__ import annotations

import json
from datetime import datetime

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@register.filter
def iso_datetime(value: str):
    """An attempt's ISO timestamp (stored in JSON) as a datetime, for the `date` filter."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@register.filter
def days_between(start, end) -> int:
    """Whole days from `start` to `end` (datetimes), e.g. a prompt's sending and its purge."""
    if not start or not end:
        return 0
    return max(0, (end - start).days)
