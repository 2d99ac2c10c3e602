from __future__ import annotations

from django import template

register = template.Library()

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


@register.filter
def money(cents, currency: str = "usd") -> str:
    """1500, "usd" → "$15.00"; unknown currencies get their code: "15.00 CHF"."""
    try:
        amount = int(cents or 0) / 100
    except (TypeError, ValueError):
        return ""
    code = (currency or "usd").lower()
    symbol = SYMBOLS.get(code)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {code.upper()}"


@register.filter
def unix_date(value):
    """Stripe's Unix timestamps → aware datetimes for the `date` filter."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None
