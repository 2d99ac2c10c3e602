"""`{{ event|activity_text }}`: one activity log entry in words, with its short facts."""

from __future__ import annotations

from django import template

from privacy.models import ActivityKind, ConsentKind, HistoryRetention

register = template.Library()

_CONSENTS = {
    "training": "training use of your uploads and results",
    "marketing": "product news by email",
    "analytics": "anonymous usage statistics",
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@register.filter
def activity_text(event) -> str:
    d = event.detail or {}
    kind = event.kind
    if kind == ActivityKind.CONSENT_CHANGED and d.get("consent"):
        what = _CONSENTS.get(d["consent"]) or ConsentKind(d["consent"]).label
        return f"{'Allowed' if d.get('granted') else 'Withdrew consent for'} {what}"
    if kind == ActivityKind.GENERATIONS_DELETED and "count" in d:
        if d.get("reason") == "retention":
            return f"{_plural(d['count'], 'generation')} deleted automatically (history kept {d.get('days')} days)"
        return f"{_plural(d['count'], 'generation')} deleted"
    if kind == ActivityKind.HISTORY_DELETED and "count" in d:
        return f"Whole history deleted ({_plural(d['count'], 'generation')})"
    if kind == ActivityKind.RETENTION_CHANGED and "keep_assistant_history" in d:
        if d["keep_assistant_history"]:
            return "Assistant prompts: kept like the rest of your history"
        return f"Assistant prompts: removed after {d.get('assistant_days')} days"
    if kind == ActivityKind.RETENTION_CHANGED and "days" in d:
        return f"History retention set to: {HistoryRetention(d['days']).label.lower()}"
    if kind == ActivityKind.POLICY_ACCEPTED and d.get("version"):
        return f"Privacy policy {d['version']} accepted"
    if kind == ActivityKind.STAFF_CREDITS_ADJUSTED and "amount" in d:
        amount = d["amount"]
        text = f"{'Added' if amount > 0 else 'Took away'} {_plural(abs(amount), 'credit')}"
        return f"{text}: {d['reason']}" if d.get("reason") else text
    if kind == ActivityKind.STAFF_ACCOUNT_FLAGGED:
        return "Account flagged for review" + (f" ({d['reason']})" if d.get("reason") else "")
    if kind == ActivityKind.STAFF_ACCOUNT_UNFLAGGED:
        return "Review flag cleared" + (f" ({d['reason']})" if d.get("reason") else "")
    return event.get_kind_display()


@register.filter
def activity_by_staff(event) -> bool:
    """Changes made to the account by staff (actor set) or by Atelier itself (a dispute flag)."""
    return bool(event.actor_id) or event.kind.startswith("staff_")
