from __future__ import annotations

import uuid

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, django_auth

from accounts.errors import AccountPausedForApi, ApiScopeMissing
from accounts.models import ApiScope
from accounts.services import api_key_authenticate, api_key_scope_check

router = Router(tags=["account"])


def bearer_authenticate(*, request: HttpRequest, token: str, scope: str):
    """The one check of an `Authorization: Bearer` credential, for the API and /mcp alike: an
    Atelier API key (`atl_…`) or an OAuth access token issued by our authorization server, with
    the same scopes (read, generate). Returns the owner, or None for an unknown, revoked or expired
    credential (401). Raises AccountPausedForApi (paused owner) or ApiScopeMissing (403).

    On success `request.api_key` (a key) or `request.oauth_token` (an OAuth access token) says
    which credential acted."""
    if token.startswith("atl_"):
        key = api_key_authenticate(token=token)  # raises AccountPausedForApi
        if key is None:
            return None
        api_key_scope_check(key=key, scope=scope)  # raises ApiScopeMissing
        request.api_key = key
        return key.owner
    from atelier_oauth.services import access_token_authenticate

    return access_token_authenticate(request=request, token=token, scope=scope)


class BearerAuth(HttpBearer):
    """`Authorization: Bearer …`: an API key or an OAuth access token carrying `scope`. On
    success `request.auth` is the owner (as with a session). A credential that is unknown, revoked
    or expired, or whose owner is inactive, is refused like none at all (401); a paused owner or a
    missing scope is a 403 with the reason (see `api_errors_install`)."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str = ApiScope.READ):
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str):
        return bearer_authenticate(request=request, token=token, scope=self.scope)


def api_errors_install(api) -> None:
    """The answers to refused credentials, for the whole API: 401 names the Bearer scheme (RFC
    6750), 403 says why a valid key may not act."""

    @api.exception_handler(AuthenticationError)
    def unauthorized(request, exc):
        response = api.create_response(request, {"detail": "Unauthorized"}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(AccountPausedForApi)
    def paused(request, exc):
        return api.create_response(request, {"detail": str(exc), "reason": "account_paused"}, status=403)

    @api.exception_handler(ApiScopeMissing)
    def scope_missing(request, exc):
        return api.create_response(request, {"detail": str(exc), "reason": "scope_missing"}, status=403)


read_auth = [django_auth, BearerAuth(ApiScope.READ)]
generate_auth = [django_auth, BearerAuth(ApiScope.GENERATE)]


class MeOut(Schema):
    id: uuid.UUID
    email: str
    display_name: str


@router.get("/me", response=MeOut, auth=read_auth, summary="The signed-in account")
def me(request):
    user = request.auth
    return MeOut(id=user.public_id, email=user.email, display_name=user.display_name)
