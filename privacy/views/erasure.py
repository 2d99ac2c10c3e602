"""Privacy centre: "Delete my account".

Re-authentication first: people with a password confirm it through allauth's own flow
(`reauthentication_required`: /accounts/reauthenticate/?next=..., a POST made after the window
closed is replayed once they have confirmed). allauth lets people without a usable password (a
Google-only account) through without asking, so for them we ask for a fresh Google sign-in
(allauth's Google login with action=reauthenticate, back to this page) and accept it for
ACCOUNT_REAUTHENTICATION_TIMEOUT seconds. Then a typed confirmation (their email address or
"delete my account"), then `account_erasure_start`, sign-out, and a plain page saying what
happens next.
"""

from __future__ import annotations

import time
from functools import wraps

from allauth.account import app_settings as allauth_account_settings
from allauth.account.decorators import reauthentication_required
from allauth.account.internal.flows.login import get_authentication_records
from allauth.socialaccount.models import SocialAccount
from django import forms
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils.http import urlencode

from billing.models import Customer
from privacy.services.erasure import (
    CONFIRMATION_PHRASE,
    account_erasure_start,
    confirmation_matches,
    erasable_here,
)


class ErasureConfirmForm(forms.Form):
    confirmation = forms.CharField(
        label="Type your email address or “delete my account”",
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_confirmation(self) -> str:
        typed = self.cleaned_data["confirmation"]
        if not confirmation_matches(user=self.user, typed=typed):
            raise forms.ValidationError(
                f"That is neither your email address nor “{CONFIRMATION_PHRASE}”. Nothing was deleted."
            )
        return typed


def _recent_sign_in(request: HttpRequest) -> bool:
    """A sign-in of any kind (here: Google) within the re-authentication window."""
    records = get_authentication_records(request, request.user)
    latest = max((record.get("at") or 0 for record in records), default=0)
    return time.time() - latest < allauth_account_settings.REAUTHENTICATION_TIMEOUT


def reauthenticated(view):
    """Password accounts: allauth's re-authentication. Others: a fresh Google sign-in."""
    password_checked = reauthentication_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.has_usable_password():
            return password_checked(request, *args, **kwargs)
        if _recent_sign_in(request):
            return view(request, *args, **kwargs)
        providers = sorted(SocialAccount.objects.filter(user=request.user).values_list("provider", flat=True))
        query = urlencode({"process": "login", "action": "reauthenticate", "next": request.path})
        context = {"providers": []}
        for provider in sorted(set(providers)):
            try:
                context["providers"].append({"id": provider, "url": reverse(f"{provider}_login") + "?" + query})
            except NoReverseMatch:  # the provider is switched off here
                continue
        return render(request, "privacy/erase_reauth.html", context)

    return wrapper


@login_required
@reauthenticated
def erase(request: HttpRequest) -> HttpResponse:
    """The typed confirmation, then the erasure starts and the person is signed out."""
    if not erasable_here(user=request.user):
        return render(request, "privacy/erase_staff.html", {"contact": settings.PRIVACY_CONTACT_EMAIL}, status=403)
    form = ErasureConfirmForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        with transaction.atomic():  # the task is queued once both are committed
            account_erasure_start(user=user, request=request)
            logout(request)
        return redirect("privacy:erase_started")
    context = {
        "form": form,
        "years": settings.PRIVACY_TAX_RECORDS_YEARS,
        "stripe_customer": Customer.objects.filter(user=request.user).exists(),
    }
    return render(request, "privacy/erase.html", context, status=400 if form.errors else 200)


def erase_started(request: HttpRequest) -> HttpResponse:
    """What happens now (no account needed: the person is signed out)."""
    context = {"years": settings.PRIVACY_TAX_RECORDS_YEARS, "contact": settings.PRIVACY_CONTACT_EMAIL}
    return render(request, "privacy/erase_started.html", context)


urlpatterns = [
    path("delete/", erase, name="erase"),
    path("delete/started/", erase_started, name="erase_started"),
]


def section_context(user) -> dict:
    """What the privacy centre page needs for this section."""
    return {
        "erasure_signed_in_with_password": user.has_usable_password(),
        "erasure_years": settings.PRIVACY_TAX_RECORDS_YEARS,
    }
