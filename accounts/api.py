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


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer atl_…`: an API key carrying `scope`. On success `request.auth` is
    the key's owner (as with a session) and `request.api_key` the key. A key that is unknown or
    revoked, or whose owner is inactive, is refused like no key at all (401); a paused owner or a
    missing scope is a 403 with the reason (see `api_errors_install`)."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str = ApiScope.READ):
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str):
        key = api_key_authenticate(token=token)  # raises AccountPausedForApi
        if key is None:
            return None
        api_key_scope_check(key=key, scope=self.scope)  # raises ApiScopeMissing
        request.api_key = key
        return key.owner


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


read_auth = [django_auth, ApiKeyAuth(ApiScope.READ)]


class MeOut(Schema):
    id: uuid.UUID
    email: str
    display_name: str


@router.get("/me", response=MeOut, auth=read_auth, summary="The signed-in account")
def me(request):
    user = request.auth
    return MeOut(id=user.public_id, email=user.email, display_name=user.display_name)
