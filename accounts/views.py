from __future__ import annotations

from allauth.socialaccount.models import SocialAccount
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
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
        return redirect(next_url or "accounts:profile")
    if request.method == "POST":
        form = CompleteProfileForm(request.POST)
        if form.is_valid():
            services.user_accept_terms(user=request.user)
            messages.success(request, "Thanks — you're all set.")
            return redirect(next_url or "accounts:profile")
    else:
        form = CompleteProfileForm()
    return render(request, "accounts/complete.html", {"form": form, "next": next_url})
