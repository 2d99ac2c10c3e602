"""Privacy centre: consents, "Pause my account", the cookie notice and page, and the one-click
unsubscribe link from marketing email."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from privacy import cookies
from privacy.mail import unsubscribe_token_read
from privacy.models import ConsentKind, ConsentMethod
from privacy.services.consents import CENTRE_KINDS, WORDING, consent_set, consent_states
from privacy.services.restriction import account_pause, account_resume


def section_context(user) -> dict:
    """What the privacy centre page (and the htmx swap of the section) needs."""
    states = consent_states(user=user)
    consents = []
    for kind in CENTRE_KINDS:
        state = states[kind]
        wording = WORDING[kind]
        consents.append(
            {
                "kind": kind.value,
                "wording": wording,
                "granted": state.granted,
                "since": state.updated_at if state.wording_version else None,
                # On under words older than today's: the person agreed to those, not to these.
                "older_wording": state.granted and state.wording_version != wording.version,
                "recorded_version": state.wording_version,
            }
        )
    return {"consents": consents, "paused_at": user.paused_at}


def _section(request: HttpRequest) -> HttpResponse:
    """The choices section again: the htmx swap, or the centre for a plain form post."""
    if request.htmx:
        return render(request, "privacy/_choices.html", section_context(request.user))
    return redirect(reverse("privacy:centre") + "#choices")


@login_required
@require_POST
def consent(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    granted = request.POST.get("granted", "")
    if kind not in CENTRE_KINDS or granted not in ("on", "off"):
        return HttpResponseBadRequest("Unknown choice.")
    consent_set(
        user=request.user, kind=kind, granted=granted == "on", method=ConsentMethod.PRIVACY_CENTRE, request=request
    )
    if not request.htmx:
        state = "on" if granted == "on" else "off"
        messages.success(request, f"Saved: “{WORDING[kind].title}” is {state}.")
    return _section(request)


@login_required
@require_POST
def pause(request: HttpRequest) -> HttpResponse:
    account_pause(user=request.user, request=request)
    if not request.htmx:
        messages.success(request, "Your account is paused. Resume it here whenever you like.")
    return _section(request)


@login_required
@require_POST
def resume(request: HttpRequest) -> HttpResponse:
    account_resume(user=request.user, request=request)
    if not request.htmx:
        messages.success(request, "Your account is active again.")
    return _section(request)


# --- cookies ---------------------------------------------------------------------------------------


def cookie_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "privacy/cookies.html",
        {"cookie_list": cookies.cookie_list(), "analytics_wording": WORDING[ConsentKind.ANALYTICS]},
    )


@require_POST
def cookie_choice(request: HttpRequest) -> HttpResponse:
    """The answer to the cookie notice (or the cookie page): a first-party cookie for this
    browser, plus a consent event for a signed-in person."""
    choice = request.POST.get("choice", "")
    if choice not in cookies.CHOICES:
        return HttpResponseBadRequest("Unknown choice.")
    if request.user.is_authenticated:
        consent_set(
            user=request.user,
            kind=ConsentKind.ANALYTICS,
            granted=choice == cookies.ANALYTICS,
            method=ConsentMethod.COOKIE_NOTICE,
            request=request,
        )
    if request.htmx:
        response = HttpResponse("")  # the notice swaps itself away
    else:
        target = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        if not safe:
            target = reverse("landing")
        label = "Analytics allowed" if choice == cookies.ANALYTICS else "Essential cookies only"
        messages.success(request, f"Cookie choice saved: {label}. Change it any time on the cookie page.")
        response = redirect(target)
    cookies.set_choice_cookie(response, choice)
    return response


# --- one-click unsubscribe (RFC 8058) -----------------------------------------------------------


@csrf_exempt  # mail providers POST "List-Unsubscribe=One-Click" with no cookies and no CSRF token;
# the signed token in the URL is what authorises this one change (turn marketing email off).
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    from accounts.models import User

    try:
        public_id, kind = unsubscribe_token_read(token)
    except signing.BadSignature:
        return render(
            request, "privacy/unsubscribe_invalid.html", {"contact": settings.PRIVACY_CONTACT_EMAIL}, status=400
        )
    user = User.objects.filter(public_id=public_id).first()
    if request.method == "GET":
        # A GET never changes anything (link scanners open every link): it asks for the click.
        return render(request, "privacy/unsubscribe.html", {"token": token, "known": user is not None})
    if user is not None:
        consent_set(user=user, kind=kind, granted=False, method=ConsentMethod.UNSUBSCRIBE_LINK, request=request)
    return render(request, "privacy/unsubscribe_done.html", {"known": user is not None})


# Included by privacy/urls.py: the names live in the "privacy" namespace.
urlpatterns = [
    path("choices/consent/", consent, name="consent"),
    path("choices/pause/", pause, name="pause"),
    path("choices/resume/", resume, name="resume"),
    path("cookies/", cookie_page, name="cookies"),
    path("cookies/choice/", cookie_choice, name="cookie_choice"),
    path("unsubscribe/<str:token>/", unsubscribe, name="unsubscribe"),
]
