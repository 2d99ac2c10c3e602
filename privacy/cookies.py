"""Cookie choices and the first-party analytics that run only with consent (filled in by the
privacy issue's consents work)."""

from __future__ import annotations


def context(request) -> dict:
    """Template context for the cookie notice."""
    return {}


class AnalyticsMiddleware:
    """Counts page views only for visitors who allowed analytics."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
