from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.google import views as google_views
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import services
from accounts.forms import CompleteProfileForm, ProfileForm


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            services.profile_update(
                user=user,
                display_name=form.cleaned_data["display_name"],
                remove_avatar=form.cleaned_data.get("remove_avatar", False),
            )
            messages.success(request, "Your profile was saved.")
            return redirect("accounts:profile")
    else:
        form = ProfileForm(initial={"display_name": user.display_name})
    if not user.avatar_url:
        form.fields.pop("remove_avatar")
    connected = SocialAccount.objects.filter(user=user).values_list("provider", flat=True)
    return render(request, "accounts/profile.html", {"form": form, "connected": list(connected)})


@login_required
def complete(request: HttpRequest) -> HttpResponse:
    """Age gate and policy acceptance for an account that has not done them yet."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    if request.user.has_accepted_terms:
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    if request.method == "POST":
        form = CompleteProfileForm(request.POST)
        if form.is_valid():
            services.user_accept_terms(user=request.user)
            messages.success(request, "Thanks — you're all set.")
            return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    else:
        form = CompleteProfileForm()
    return render(request, "accounts/complete.html", {"form": form, "next": next_url})


def admin_login(request: HttpRequest) -> HttpResponse:
    """`/admin/login/`: staff sign in through allauth's login page, like everyone else.

    Django's admin login form has no rate limit at all. Sending it to allauth's login (with
    `next` kept) puts staff behind the same limits (`ACCOUNT_RATE_LIMITS`: failed attempts per
    IP and per address, shared by every web process through the cache), the same email
    verification and the same enumeration prevention, with no second lockout policy and no
    extra dependency to keep in step (django-axes would add its own tables, middleware and
    authentication backend in front of allauth's). The admin still decides who gets in: its
    pages need `is_staff`. Every method is redirected, so a password POSTed here is never checked.
    """
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("admin:index")
    if request.user.is_authenticated:
        if request.user.is_active and request.user.is_staff:
            return redirect(next_url)
        # Signed in but not staff: allauth would send them straight back to `next`, in a loop.
        raise PermissionDenied("This account has no access to the back office.")
    return redirect(f"{reverse('account_login')}?{urlencode({'next': next_url})}")


def _google_configured(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """404 instead of allauth's `SocialApp.DoesNotExist` (a 500) when no Google app is configured."""

    @wraps(view)  # keeps csrf_exempt on the token view
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not get_social_adapter().list_apps(request, provider="google"):
            raise Http404("Google sign-in is not configured.")
        return view(request, *args, **kwargs)

    return guarded


google_login = _google_configured(google_views.oauth2_login)
google_callback = _google_configured(google_views.oauth2_callback)
google_login_by_token = _google_configured(google_views.login_by_token)
