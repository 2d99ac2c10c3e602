"""/mcp: the MCP endpoint (streamable HTTP) behind Atelier's Bearer credentials.

The view checks the credential the way the API does (`accounts.api.bearer_authenticate`: an API
key or an OAuth access token, scope `read`), then hands the request to the MCP SDK's transport
(`mcpserver.tools.serve`, stateless) through `mcpserver.bridge`, which runs it on an event loop
of its own and streams its answer back through the WSGI server. See mcpserver/bridge.py for why
the SDK runs inside the Django view rather than beside it as an ASGI app.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.api import api_rate_check, bearer_authenticate, www_authenticate
from accounts.errors import AccountPausedForApi, ApiScopeMissing
from accounts.models import ApiScope
from apiv1.errors import ApiRateLimited
from atelier_oauth.services import resource_mcp, token_serves
from mcpserver.bridge import asgi_response
from mcpserver.tools import CALLER_SCOPE_KEY, Caller, serve


def _challenge(**params: str) -> str:
    # RFC 9728: the 401 names where this resource's metadata lives, from which an MCP client
    # finds our authorization server (and registers, and asks the person).
    return www_authenticate(**params, resource=resource_mcp())


def _unauthorized(detail: str, *, reason: str, error: str | None = None) -> HttpResponse:
    response = JsonResponse({"detail": detail, "reason": reason}, status=401)
    params = {"error": error, "error_description": detail} if error else {}
    response["WWW-Authenticate"] = _challenge(**params)
    return response


def _meant_for_us(request: HttpRequest) -> bool:
    """An OAuth token asked for another of our resources (RFC 8707 `resource`, e.g. the API at
    /api/v1) is not good here, with its own 401 sentence; the rule is the API's
    (`token_serves`). API keys carry no audience."""
    access = getattr(request, "oauth_token", None)
    return access is None or token_serves(access, resource_mcp())


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt  # no cookies are read here: the Bearer credential is the only authority
@require_http_methods(["GET", "POST", "DELETE"])
def mcp_endpoint(request: HttpRequest) -> HttpResponse:
    token = _bearer_token(request)
    if not token:
        return _unauthorized(
            "Connect with an Atelier account: sign in through OAuth, or send an API key as "
            "'Authorization: Bearer atl_…'.",
            reason="missing_credential",
        )
    try:
        user = bearer_authenticate(request=request, token=token, scope=ApiScope.READ)
    except AccountPausedForApi as exc:
        return JsonResponse({"detail": str(exc), "reason": "account_paused"}, status=403)
    except ApiScopeMissing as exc:
        response = JsonResponse({"detail": str(exc), "reason": "scope_missing"}, status=403)
        response["WWW-Authenticate"] = _challenge(
            error="insufficient_scope", scope=ApiScope.READ, error_description=str(exc)
        )
        return response
    if user is None:
        return _unauthorized(
            "This credential is unknown, expired or revoked. Connect again.",
            reason="invalid_token",
            error="invalid_token",
        )
    if not _meant_for_us(request):
        return _unauthorized(
            "This access token was issued for another Atelier resource, not the MCP server. Connect again.",
            reason="invalid_token",
            error="invalid_token",
        )
    try:
        api_rate_check(request, user)  # the API's limits: per person, and per key or OAuth app
    except ApiRateLimited as exc:
        response = JsonResponse({"detail": str(exc), "reason": "rate_limited"}, status=429)
        response["Retry-After"] = str(max(1, int(round(float(exc.retry_after or 1)))))
        return response
    if request.method == "GET":
        # No server-initiated stream: every session is stateless, so nothing could ever be sent on
        # it, and an idle GET would hold a web worker for as long as the client keeps it open.
        # The spec's answer for a server without one is 405 (the SDK would open it and wait).
        response = JsonResponse({"detail": "This server sends messages only in answer to a POST."}, status=405)
        response["Allow"] = "POST"  # DELETE ends no session either: stateless, there is none
        return response
    # The owner acts for this request, as a session user would (rate limits key on request.user).
    request.user = user
    caller = Caller(user=user, token=token, request=request)
    return asgi_response(request, serve, extra_scope={CALLER_SCOPE_KEY: caller})
