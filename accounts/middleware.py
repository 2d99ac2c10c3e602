from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

# Paths a signed-in person may reach before completing the age gate and policy.
_ALLOWED_PREFIXES = (
    "/static/",
    "/healthz",
    "/accounts/logout/",
    "/privacy/policy/",
    "/privacy/cookies/",
    "/privacy/unsubscribe/",
    "/api/v1/docs",
    "/api/v1/openapi",
)
_API_PREFIX = "/api/"


class CompleteProfileMiddleware:
    """Send a signed-in person who has not passed the age gate or accepted the current
    policy (an account made in the admin, or a policy change) to the completion form
    before anything else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        # Only the gate itself is enforced here; someone who accepted an older policy version may
        # browse (and sees the notice), but cannot generate until they accept the new one.
        if user is not None and user.is_authenticated and not user.has_passed_gate:
            complete_url = reverse("accounts:complete")
            path = request.path
            if path.startswith(_API_PREFIX) and not path.startswith(_ALLOWED_PREFIXES):
                return JsonResponse(
                    {"detail": "Confirm your age and accept the privacy policy first.", "complete_url": complete_url},
                    status=403,
                )
            if path != complete_url and not path.startswith(_ALLOWED_PREFIXES):
                return HttpResponseRedirect(f"{complete_url}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)
