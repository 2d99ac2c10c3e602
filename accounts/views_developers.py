"""The developers pages: API keys (/developers/keys/). The rest of /developers (the guide, OAuth
apps, webhooks) builds on this module in issue 12."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import services
from accounts.errors import ApiKeyInvalid
from accounts.models import ApiKey, ApiScope


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Name",
        help_text="Where the key is used, e.g. “My custom GPT” or “Laptop script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices,
        initial=[ApiScope.READ],
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        error_messages={"required": "Choose at least one scope."},
    )


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    """List, create. The new key's plaintext is in the answer to the POST that created it and
    nowhere else: not in the session, not in a redirect, not cached (no-store). Reloading
    the page shows the list without it."""
    new_key = None
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                key, plaintext = services.api_key_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    request=request,
                )
            except ApiKeyInvalid as exc:
                form.add_error(None, str(exc))
            else:
                new_key = {"id": key.pk, "name": key.name, "plaintext": plaintext}
                form = ApiKeyForm()
    else:
        form = ApiKeyForm()
    response = render(
        request,
        "developers/keys.html",
        {
            "form": form,
            "keys": ApiKey.objects.filter(owner=request.user),
            "new_key": new_key,
            "scope_labels": dict(ApiScope.choices),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk, owner=request.user)  # someone else's key: 404
    if services.api_key_revoke(user=request.user, key=key, request=request):
        messages.success(request, f"The key “{key.name}” ({key.prefix}…) was revoked. It no longer works.")
    return redirect("developers:keys")
