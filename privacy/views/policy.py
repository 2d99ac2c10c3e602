"""The privacy policy (current version and history), accepting a new version, and the history
retention choice on the privacy centre."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from privacy.models import HistoryRetention, PolicyVersion
from privacy.policy import current_policy
from privacy.services import policy as policy_service
from privacy.services import retention as retention_service


def _history():
    return PolicyVersion.objects.filter(published_at__isnull=False).order_by("-effective_at", "-id")


def _page(request: HttpRequest, policy: PolicyVersion | None, *, current: PolicyVersion | None) -> HttpResponse:
    return render(
        request,
        "privacy/policy.html",
        {
            "policy": policy,
            "current": current,
            "body": policy_service.policy_html(policy) if policy is not None else "",
            "history": _history(),
        },
    )


def policy(request: HttpRequest) -> HttpResponse:
    current = current_policy()
    return _page(request, current, current=current)


def policy_version(request: HttpRequest, version: str) -> HttpResponse:
    """One published version, as it was (drafts are not public)."""
    shown = _history().filter(version=version).first()
    if shown is None:
        raise Http404("No such version of the privacy policy.")
    return _page(request, shown, current=current_policy())


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("generation:create")


@login_required
def policy_accept(request: HttpRequest) -> HttpResponse:
    """What changed, a link to the full text, and one button. Nothing to accept: go on."""
    if not request.user.has_passed_gate:  # the age gate comes first, with its own acceptance
        return redirect("accounts:complete")
    current = current_policy()
    if current is None or request.user.has_accepted_terms:
        return redirect(_next(request))
    if request.method == "POST":
        try:
            policy_service.policy_accept(user=request.user, version=request.POST.get("version", ""), request=request)
        except policy_service.PolicyNotCurrent as exc:
            messages.warning(request, str(exc))
        else:
            messages.success(
                request, f"Thank you. You accepted the privacy policy of {current.effective_at:%-d %B %Y}."
            )
            return redirect(_next(request))
    previous = _history().filter(version=request.user.policy_version).first()
    changes = _history().filter(effective_at__lte=current.effective_at)
    if previous is not None:
        changes = changes.filter(effective_at__gt=previous.effective_at)
    return render(
        request,
        "privacy/accept.html",
        {"policy": current, "previous": previous, "changes": changes, "next": _next(request)},
    )


class RetentionForm(forms.Form):
    days = forms.TypedChoiceField(
        label="Keep my generation history",
        choices=HistoryRetention.choices,
        coerce=int,
        widget=forms.RadioSelect,
    )
    # Unticked (the default): prompts and parameters sent from an assistant are blanked after
    # ASSISTANT_PROMPT_RETENTION_DAYS (privacy.services.retention).
    keep_assistant_history = forms.BooleanField(
        required=False,
        label="Keep prompts I send from ChatGPT and other assistants like the rest of my history",
    )


@login_required
@require_POST
def retention_set(request: HttpRequest) -> HttpResponse:
    form = RetentionForm(request.POST)
    if form.is_valid():
        days = form.cleaned_data["days"]
        if retention_service.history_retention_set(user=request.user, days=days, request=request):
            label = HistoryRetention(days).label
            messages.success(
                request, f"Saved: {label[0].lower()}{label[1:]}." if days else "Saved: kept until you delete it."
            )
        keep = form.cleaned_data["keep_assistant_history"]
        if retention_service.assistant_history_keep_set(user=request.user, keep=keep, request=request):
            messages.success(
                request,
                "Saved: prompts you send from assistants are kept like the rest of your history."
                if keep
                else f"Saved: prompts you send from assistants are removed after "
                f"{settings.ASSISTANT_PROMPT_RETENTION_DAYS} days.",
            )
    else:
        messages.error(request, "Pick one of the choices.")
    return redirect(reverse("privacy:centre") + "#activity")


def section_context(user) -> dict:
    """What the privacy centre's activity section needs: the retention choice."""
    days = retention_service.history_retention_of(user=user)
    keep = retention_service.assistant_history_kept(user=user)
    return {
        "retention_form": RetentionForm(initial={"days": days, "keep_assistant_history": keep}),
        "retention_days": days,
        "assistant_retention_days": settings.ASSISTANT_PROMPT_RETENTION_DAYS,
    }


urlpatterns = [
    path("policy/", policy, name="policy"),
    path("policy/accept/", policy_accept, name="policy_accept"),
    path("policy/<str:version>/", policy_version, name="policy_version"),
    path("retention/", retention_set, name="retention"),
]
