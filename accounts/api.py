from __future__ import annotations

import uuid

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from ninja.security import SessionAuth as NinjaSessionAuth

from accounts.errors import ApiScopeMissing
from accounts.models import ApiScope
from accounts.services import api_key_authenticate, api_key_scope_check
from apiv1.errors import ApiRateLimited
from config.errors import ApplicationError

router = Router(tags=["account"])

PROBLEM_JSON = "application/problem+json"


def bearer_authenticate(*, request: HttpRequest, token: str, scope: str, resource: str | None = None):
    """The one check of an `Authorization: Bearer` credential, for the API and /mcp alike: an
    Atelier API key (`atl_…`) or an OAuth access token issued by our authorization server, with
    the same scopes (read, generate). Returns the owner, or None for an unknown, revoked or expired
    credential (401). Raises AccountPausedForApi (paused owner) or ApiScopeMissing (403).

    On success `request.api_key` (a key) or `request.oauth_token` (an OAuth access token) says
    which credential acted. `resource` is the URL of what is being called (RFC 8707): an OAuth
    token bound to another of our resources is refused (API keys are not bound)."""
    if token.startswith("atl_"):
        key = api_key_authenticate(token=token)  # raises AccountPausedForApi
        if key is None:
            return None
        api_key_scope_check(key=key, scope=scope)  # raises ApiScopeMissing
        request.api_key = key
        return key.owner
    from atelier_oauth.services import access_token_authenticate

    return access_token_authenticate(request=request, token=token, scope=scope, resource=resource)


# --- rate limits (every API call, after authentication) ---------------------------------------------


API_RATE_GROUP = "api.v1"


def api_rate_check(request: HttpRequest, user) -> None:
    """Count one call for the person (API_RATE_PER_USER, over the session and all their
    credentials) and one for the credential that made it (API_RATE_PER_KEY: the API key, or the
    OAuth client's grant, which outlives its hourly tokens). Fixed windows in the shared cache
    (django-ratelimit), as the submit limits; raises ApiRateLimited past either."""
    from django_ratelimit.core import get_usage

    limits = [(f"user:{user.pk}", settings.API_RATE_PER_USER)]
    key = getattr(request, "api_key", None)
    token = getattr(request, "oauth_token", None)
    if key is not None:
        limits.append((f"key:{key.pk}", settings.API_RATE_PER_KEY))
    elif token is not None:
        limits.append((f"oauth:{token.application_id}:{user.pk}", settings.API_RATE_PER_KEY))
    for name, rate in limits:
        usage = get_usage(
            request, group=API_RATE_GROUP, key=lambda group, request, name=name: name, rate=rate, increment=True
        )
        if usage is not None and usage["should_limit"]:
            raise ApiRateLimited(retry_after=usage["time_left"])


class SessionAuth(NinjaSessionAuth):
    """The signed-in browser session (CSRF-checked on writes), rate-limited per person.

    Only a request that carries the session cookie and no Bearer credential is a session request:
    ninja would otherwise check CSRF on every POST, refusing API clients that have no cookie at
    all (a cross-site page cannot forge the Authorization header, so Bearer calls need no token)."""

    def _get_key(self, request: HttpRequest):
        if request.headers.get("Authorization", "").lower().startswith("bearer "):
            return None
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)  # CSRF check, then the cookie

    def authenticate(self, request: HttpRequest, key):
        if key is None:
            return None
        user = super().authenticate(request, key)
        if user is not None:
            api_rate_check(request, user)
        return user


class BearerAuth(HttpBearer):
    """`Authorization: Bearer …`: an API key or an OAuth access token carrying `scope`. On
    success `request.auth` is the owner (as with a session). A credential that is unknown, revoked
    or expired, or whose owner is inactive, is refused like none at all (401); a paused owner or a
    missing scope is a 403 with the reason (see `api_errors_install`). Rate-limited per person and
    per credential."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str = ApiScope.READ):
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str):
        from atelier_oauth.services import resource_api

        user = bearer_authenticate(request=request, token=token, scope=self.scope, resource=resource_api())
        if user is not None:
            api_rate_check(request, user)
        return user


# --- errors: application/problem+json (RFC 9457) everywhere ---------------------------------------------


TITLES = {
    "invalid_input": "Invalid input",
    "validation_error": "Invalid request",
    "insufficient_credits": "Not enough credits",
    "account_in_debt": "Account in debt",
    "account_paused": "Account paused",
    "insufficient_scope": "Missing scope",
    "conflict": "Conflict",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "rate_limited": "Too many requests",
    "unauthorized": "Authentication required",
    "provider_error": "The model provider failed",
    "storage_unavailable": "Storage unavailable",
    "bad_request": "Bad request",
    "forbidden": "Forbidden",
}
_TYPES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    """An RFC 9457 problem details object (served as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "type": "https://atelier.example/developers/errors#insufficient_credits",
                    "title": "Not enough credits",
                    "status": 402,
                    "detail": "This needs 4 credits and you have 1. Buy more credits or pick a cheaper model.",
                }
            ]
        }
    }


def problem_type_url(slug: str) -> str:
    return f"{settings.SITE_URL}/developers/errors#{slug}"


def problem_response(
    *, status: int, slug: str, detail: str, title: str = "", errors: list[dict] | None = None
) -> HttpResponse:
    """An RFC 9457 problem: `type` is a stable URL per kind of refusal (documented on
    /developers), `detail` a sentence for the person, `errors` the fields at fault."""
    import json

    body: dict = {
        "type": problem_type_url(slug),
        "title": title or TITLES.get(slug) or slug.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_JSON)


def www_authenticate(*, error: str = "", scope: str = "", error_description: str = "", resource: str = "") -> str:
    """RFC 6750 with RFC 9728's pointer to the protected resource metadata of `resource` (the API
    unless told, /mcp for the MCP server), which is how MCP clients and ChatGPT discover where to
    get a token."""
    from atelier_oauth.services import resource_api, resource_metadata_url

    parts = []
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    if error_description:
        parts.append(f'error_description="{error_description}"')
    parts.append(f'resource_metadata="{resource_metadata_url(resource or resource_api())}"')
    return "Bearer " + ", ".join(parts)


def _title_of(exc: ApplicationError) -> str:
    return TITLES.get(exc.type) or exc.title


def _field_error(field: str | None, message: str) -> list[dict] | None:
    return [{"field": field, "message": message}] if field else None


def api_errors_install(api) -> None:
    """One answer per kind of refusal, for the whole API, as application/problem+json: every
    ApplicationError our services raise (status, type, field, retry_after), ninja's validation
    errors (422 with the fields), refused credentials (401 naming the Bearer scheme and our
    resource metadata; 403 with the reason), unknown objects (404) and HTTP errors."""

    @api.exception_handler(AuthenticationError)
    def unauthorized(request, exc):
        presented = request.headers.get("Authorization", "").lower().startswith("bearer ")
        response = problem_response(
            status=401,
            slug="unauthorized",
            detail="Sign in, or send an API key or OAuth access token as `Authorization: Bearer …`."
            if not presented
            else "This API key or access token is not valid (unknown, revoked or expired).",
        )
        response["WWW-Authenticate"] = www_authenticate(error="invalid_token" if presented else "")
        return response

    @api.exception_handler(ApplicationError)
    def application_error(request, exc: ApplicationError):
        response = problem_response(
            status=exc.status,
            slug=exc.type,
            title=_title_of(exc),
            detail=str(exc),
            errors=_field_error(exc.field, str(exc)),
        )
        if exc.retry_after:
            response["Retry-After"] = str(max(1, int(round(float(exc.retry_after)))))
        if isinstance(exc, ApiScopeMissing):
            response["WWW-Authenticate"] = www_authenticate(error="insufficient_scope")
        return response

    @api.exception_handler(NinjaValidationError)
    def validation_error(request, exc: NinjaValidationError):
        errors = []
        for error in exc.errors:
            location = [str(part) for part in error.get("loc", ())]
            # ("body", "payload", "prompt") -> "prompt"; ("query", "limit") -> "limit"
            names = location[2:] if len(location) > 2 and location[0] == "body" else location[1:]
            errors.append(
                {"field": ".".join(names) or location[0] if location else "", "message": error.get("msg", "")}
            )
        return problem_response(
            status=422,
            slug="validation_error",
            detail="Some values are missing or not valid: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:500],
            errors=errors,
        )

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return problem_response(status=404, slug="not_found", detail="Not found.")

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        slug = _TYPES_BY_STATUS.get(exc.status_code, "bad_request" if exc.status_code < 500 else "server_error")
        return problem_response(status=exc.status_code, slug=slug, detail=str(exc))


read_auth = [SessionAuth(), BearerAuth(ApiScope.READ)]
generate_auth = [SessionAuth(), BearerAuth(ApiScope.GENERATE)]


# --- GET /me ----------------------------------------------------------------------------------------------


class MeOut(Schema):
    id: uuid.UUID
    email: str
    display_name: str
    credits: int
    debt: int
    plan: str
    plan_title: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "6f1c2c1e-2f55-4f5e-9d7e-6a0f6f1b9a10",
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "credits": 42,
                    "debt": 0,
                    "plan": "free",
                    "plan_title": None,
                }
            ]
        }
    }


ME_PROBLEMS = (401, 403, 429)


@router.get(
    "/me",
    response={200: MeOut, **dict.fromkeys(ME_PROBLEMS, Problem)},
    auth=read_auth,
    operation_id="getMe",
    summary="The signed-in account: email, credit balance and plan",
    description="Who the key or token acts for, how many credits they have (and any debt, which blocks new "
    "generations until paid) and their plan (free or pro).",
    openapi_extra={"x-openai-isConsequential": False},
)
def me(request):
    from apiv1.engine import credits_json

    user = request.auth
    credits = credits_json(user)
    return Status(
        200,
        MeOut(
            id=user.public_id,
            email=user.email,
            display_name=user.display_name,
            credits=credits["balance"],
            debt=credits["debt"],
            plan=credits["plan"],
            plan_title=credits["plan_title"],
        ),
    )
