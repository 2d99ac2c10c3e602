from __future__ import annotations

from functools import cached_property

from django.conf import settings
from django.http import HttpRequest


class HeaderCredits:
    """The signed-in person's credit balance for the header, read on first use.

    One indexed query (`billing.selectors.balance_of`) when a page shows the header, none for
    responses that don't (htmx fragments, JSON, redirects) and none for visitors.
    """

    def __init__(self, user) -> None:
        self._user = user

    @cached_property
    def balance(self) -> int:
        from billing.selectors import balance_of

        return balance_of(user=self._user)


def site(request: HttpRequest) -> dict:
    context = {
        "SITE_NAME": settings.SITE_NAME,
        "PRIVACY_POLICY_VERSION": settings.PRIVACY_POLICY_VERSION,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        context["header_credits"] = HeaderCredits(user)
    return context
