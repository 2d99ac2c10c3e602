"""Cookie choices and the first-party analytics that run only with consent.

The choice lives in one first-party cookie, `atelier_consent`, whose value is
`<choice>:<notice version>` (`essential:2026-11-25` or `analytics:2026-11-25`). Until it holds
the current version the cookie notice is shown, and until it says `analytics` nothing is
counted. Analytics itself sets no cookie: it adds one to a per-day, per-path counter
(PageViewCount) with no person, cookie id or IP attached.

COOKIES below is the list the cookie page shows: every cookie Atelier sets. The browser test
`privacy/tests/test_browser_choices.py` fails when the browser holds one that is not listed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

COOKIE_NAME = "atelier_consent"
# Bump when the notice or the cookie list changes in a way people should see again.
NOTICE_VERSION = "2026-11-25"
COOKIE_MAX_AGE = 60 * 60 * 24 * 180  # six months, then the notice asks again
ESSENTIAL = "essential"
ANALYTICS = "analytics"
CHOICES = (ESSENTIAL, ANALYTICS)


@dataclass(frozen=True)
class CookieInfo:
    name: str
    purpose: str
    lifetime: str
    essential: bool


def _session_lifetime() -> str:
    if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE:
        return "Until you close the browser"
    days = settings.SESSION_COOKIE_AGE // 86400
    return f"{days} days, or until you sign out" if days else "Until you sign out"


def cookie_list() -> list[CookieInfo]:
    """Every cookie Atelier sets, read from the settings that name them."""
    return [
        CookieInfo(
            settings.SESSION_COOKIE_NAME,
            "Keeps you signed in, and remembers a sign-in in progress (including Google sign-in).",
            _session_lifetime(),
            True,
        ),
        CookieInfo(
            settings.CSRF_COOKIE_NAME,
            "Protects every form from being submitted by another website (cross-site request forgery).",
            f"{settings.CSRF_COOKIE_AGE // 86400} days",
            True,
        ),
        CookieInfo(
            "messages",
            'Carries a one-time message to the next page ("Your profile was saved"); removed once shown.',
            "Until the next page",
            True,
        ),
        CookieInfo(
            COOKIE_NAME,
            'Remembers your answer to the cookie notice ("Essential only" or "Allow analytics").',
            f"{COOKIE_MAX_AGE // 86400} days",
            True,
        ),
    ]


def choice_of(request: HttpRequest) -> str | None:
    """The visitor's current choice, or None when they have not answered this notice version."""
    raw = request.COOKIES.get(COOKIE_NAME, "")
    choice, _, version = raw.partition(":")
    if choice in CHOICES and version == NOTICE_VERSION:
        return choice
    return None


def analytics_allowed(request: HttpRequest) -> bool:
    return choice_of(request) == ANALYTICS


def set_choice_cookie(response, choice: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        f"{choice}:{NOTICE_VERSION}",
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,  # on in production
        httponly=True,  # only the server reads it
    )


def context(request) -> dict:
    """Template context for the cookie notice: shown until the visitor answers (never on the
    cookie page itself, which has the same choice in full)."""
    match = getattr(request, "resolver_match", None)
    on_cookie_page = match is not None and match.view_name == "privacy:cookies"
    choice = choice_of(request)
    return {"cookie_choice": choice, "show_cookie_notice": choice is None and not on_cookie_page}


# --- first-party analytics -----------------------------------------------------------------------

# Not pages: files, the back office, the JSON API, webhooks, health checks.
_SKIP_PREFIXES = ("/static/", "/media/", "/admin/", "/api/", "/webhooks/", "/healthz", "/files/", "/favicon")


def _countable(request: HttpRequest, response) -> bool:
    if request.method != "GET" or response.status_code != 200:
        return False
    if getattr(response, "streaming", False):
        return False
    if not response.get("Content-Type", "").startswith("text/html"):
        return False
    if request.headers.get("HX-Request"):  # htmx fragments are parts of a page already counted
        return False
    return not request.path.startswith(_SKIP_PREFIXES)


def page_view_count(*, path: str, day: dt.date | None = None) -> None:
    """Add one view of `path` today: an upsert, so parallel requests never lose a count."""
    from privacy.models import PageViewCount

    day = day or timezone.localdate()
    path = path[:200]
    updated = PageViewCount.objects.filter(day=day, path=path).update(views=F("views") + 1)
    if not updated:
        _, created = PageViewCount.objects.get_or_create(day=day, path=path, defaults={"views": 1})
        if not created:  # another request created the row between our update and insert
            PageViewCount.objects.filter(day=day, path=path).update(views=F("views") + 1)


class AnalyticsMiddleware:
    """Counts successful HTML page views, only for visitors whose consent cookie allows analytics.

    A path is the URL route's pattern where there is one (`/g/<uuid:uuid>/`), so counts never
    carry ids of people's generations; otherwise the bare path without the query string."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if analytics_allowed(request) and _countable(request, response):
            page_view_count(path=_route_of(request))
        return response


def _route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route.lstrip("^").rstrip("$")
    return request.path
