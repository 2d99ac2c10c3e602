"""Atelier's OAuth endpoints: DOT's views, narrowed to what Atelier offers.

- /oauth/authorize/: DOT's AuthorizationView with our consent page; a `resource` must be ours and
  PKCE must be S256, checked before the person is asked (DOT refuses `plain` only after consent).
- /oauth/token/, /oauth/revoke/: DOT's views unchanged (RFC 6749, RFC 7009).
- /oauth/register/: RFC 7591 dynamic client registration on DOT's view and helpers, with our
  redirect-URI policy, grant types limited to authorization_code/refresh_token, rate limits (per
  address, per IPv6 /48, overall) and a cap on registered apps nobody has used.
- /.well-known/…: RFC 8414 and RFC 9728 documents from DOT's metadata views, with our URL names.
- /oauth/connections/: the apps holding tokens for the signed-in person, each revocable.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import AuthorizationView
from oauth2_provider.views.dynamic_client_registration import (
    DynamicClientRegistrationView,
    _error_response,
    _parse_metadata,
)
from oauth2_provider.views.metadata import OAuthProtectedResourceMetadataView, OAuthServerMetadataView
from oauthlib.oauth2.rfc6749 import errors

from atelier_oauth import services
from atelier_oauth.validators import invalid_target

# RFC 7591 client metadata we act on; other members are ignored, as section 2 allows.
DCR_GRANT_TYPES = {"authorization_code", "refresh_token"}
DCR_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
DCR_MAX_REDIRECT_URIS = 10
DCR_MAX_NAME = 100
DCR_RATE_GROUP = "oauth.register"


# --- authorization endpoint and consent ---------------------------------------------------------------


@method_decorator(never_cache, name="dispatch")
class ConsentView(AuthorizationView):
    """Sign-in first (LoginRequiredMixin sends people to allauth's login and back), then our
    consent page (templates/oauth2_provider/authorize.html). REQUEST_APPROVAL_PROMPT is "force":
    the person is asked every time an app asks."""

    def get(self, request, *args, **kwargs):
        # DOT lets the client ask for `approval_prompt=auto` (no screen when an earlier token
        # covers the scopes); the person is asked every time here, whatever the client sends.
        if "approval_prompt" in request.GET:
            request.GET = request.GET.copy()
            del request.GET["approval_prompt"]
        refusal = self._refusal(
            resources=request.GET.getlist("resource"),
            code_challenge=request.GET.get("code_challenge"),
            method=request.GET.get("code_challenge_method"),
        )
        if refusal is None:
            return super().get(request, *args, **kwargs)
        try:
            _scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:  # unknown client or redirect URI: shown, never redirected
            return self.error_response(error, application=None)
        application = get_application_model().objects.filter(client_id=credentials["client_id"]).first()
        if application is None:  # removed by housekeeping a moment ago
            return self._registration_gone()
        refusal.state = credentials.get("state")
        return self.error_response(
            OAuthToolkitError(error=refusal, redirect_uri=credentials["redirect_uri"]), application
        )

    def form_valid(self, form):
        # The app may have gone while the person read the page (beat's sweep removes
        # self-registered apps nobody connected); DOT would fail on it with a 500.
        application = get_application_model().objects.filter(client_id=form.cleaned_data.get("client_id")).first()
        if application is None:
            return self._registration_gone()
        # The hidden fields came back from the browser: check them again before a code is made.
        refusal = self._refusal(
            resources=(form.cleaned_data.get("resource") or "").split(),
            code_challenge=form.cleaned_data.get("code_challenge"),
            method=form.cleaned_data.get("code_challenge_method"),
        )
        if refusal is None:
            try:
                return super().form_valid(form)
            except get_application_model().DoesNotExist:  # gone between our look and DOT's
                return self._registration_gone()
        refusal.state = form.cleaned_data.get("state")
        return self.error_response(
            OAuthToolkitError(error=refusal, redirect_uri=form.cleaned_data["redirect_uri"]), application
        )

    def _registration_gone(self):
        error = {"error": "invalid_client", "description": "This app's registration expired; start again from the app."}
        return self.render_to_response({"error": error}, status=400)

    def error_response(self, error, application, **kwargs):
        """DOT's answer, with RFC 9207's `iss` added to a redirect back to the client: DOT adds it
        to the code it issues, not to errors (ours before consent, a Cancel), and the metadata
        says every authorization response carries it."""
        response = super().error_response(error, application, **kwargs)
        if response.status_code == 302 and response.get("Location"):
            issuer = oauth2_settings.oauth2_authorization_server_issuer(self.request)
            response["Location"] = _with_iss(response["Location"], issuer)
        return response

    @staticmethod
    def _refusal(*, resources, code_challenge, method):
        for resource in resources:
            if not services.resource_is_ours(resource):
                return invalid_target(resource)
        # RFC 7636 makes a missing method mean "plain"; we take S256 only (OAuth 2.1, RFC 9700).
        # A missing challenge is left to DOT (PKCE_REQUIRED), which answers invalid_request.
        if code_challenge and method != "S256":
            return errors.InvalidRequestError(description='PKCE: use code_challenge_method "S256".')
        return None

    def render_to_response(self, context, **response_kwargs):
        """The consent form posts to us and we answer with a redirect to the client; browsers apply
        CSP form-action to that redirect too, so this page allows the client's redirect origin."""
        response = super().render_to_response(context, **response_kwargs)
        origin = _origin(context.get("redirect_uri") or "")
        if origin:
            response._csp_update = {"form-action": [origin]}
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        application = context.get("application")
        if application is not None:
            context["redirect_host"] = _host(context.get("redirect_uri") or "") or services.application_redirect_host(
                application
            )
            context["self_registered"] = application.registration_source != application.RegistrationSource.MANUAL
            descriptions = settings.OAUTH2_PROVIDER["SCOPES"]
            context["scope_items"] = [
                {"name": scope, "description": descriptions.get(scope, scope)} for scope in context.get("scopes", [])
            ]
        return context


def _origin(uri: str) -> str:
    """scheme://host[:port] of an http(s) URI whose host is a DNS name or an IP literal, else ""
    (a CSP source must not carry a path, and nothing from the client but checked parts goes into
    the header)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    bracketed = parts.netloc.rpartition("@")[2].startswith("[")
    if scheme not in ("http", "https") or not host or not services.host_is_valid(host, bracketed=bracketed):
        return ""
    host = f"[{host}]" if bracketed else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _with_iss(url: str, issuer: str) -> str:
    """`url` with `iss=issuer` in its query, any `iss` already there dropped (RFC 9207)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "iss"]
    query.append(("iss", issuer))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _host(uri: str) -> str:
    try:
        return urlsplit(uri).hostname or ""
    except ValueError:
        return ""


# --- dynamic client registration (RFC 7591) -------------------------------------------------------


class RegisterView(DynamicClientRegistrationView):
    """Open registration for MCP clients (the MCP authorization spec expects it; a client that
    registers still gets nothing without a person's consent). Each registration is anonymous:
    a cookie that happens to come along does not make the app someone's. No RFC 7592 management
    endpoint (the client re-registers instead), so no registration access token is issued."""

    def post(self, request, *args, **kwargs):
        limited = _register_throttle(request)
        if limited is not None:
            return limited
        data, error = _parse_metadata(request.body)
        if error:
            return error
        fields, error = _client_metadata(data)
        if error:
            return error
        if services.unused_registrations_full():
            response = JsonResponse(
                {
                    "error": "temporarily_unavailable",
                    "error_description": "Too many apps have registered without being used; try again later.",
                },
                status=503,
            )
            response["Retry-After"] = "3600"
            return response
        Application = get_application_model()
        application = Application(user=None, registration_source=Application.RegistrationSource.DCR, **fields)
        secret = application.client_secret if application.client_type == Application.CLIENT_CONFIDENTIAL else None
        try:
            application.full_clean()  # DOT's own checks of the redirect URIs, on top of ours
        except ValidationError as exc:
            return _error_response("invalid_client_metadata", "; ".join(exc.messages))
        try:
            with transaction.atomic():
                application.save()
                services.redirect_uris_stored_check(application, data["redirect_uris"])
        except services.RedirectUriRefused as exc:
            return _error_response("invalid_redirect_uri", str(exc))
        body = {
            "client_id": application.client_id,
            "client_id_issued_at": int(application.created.timestamp()),
            "client_name": application.name,
            "redirect_uris": application.redirect_uris.split(),
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": data.get("token_endpoint_auth_method", "client_secret_basic"),
            "scope": " ".join(settings.OAUTH2_PROVIDER["SCOPES"]),
        }
        if secret:
            body["client_secret"] = secret
            body["client_secret_expires_at"] = 0  # does not expire
        response = JsonResponse(body, status=201)
        response["Cache-Control"] = "no-store"
        return response


def _client_metadata(data: dict):
    """Application fields from RFC 7591 metadata, or (None, an invalid_* error response)."""
    redirect_uris = data.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        return None, _error_response("invalid_redirect_uri", "redirect_uris must be a non-empty array.")
    if len(redirect_uris) > DCR_MAX_REDIRECT_URIS:
        return None, _error_response("invalid_redirect_uri", f"At most {DCR_MAX_REDIRECT_URIS} redirect URIs.")
    try:
        for uri in redirect_uris:
            services.redirect_uri_check(uri)
        joined = services.redirect_uris_joined(redirect_uris)
    except services.RedirectUriRefused as exc:
        return None, _error_response("invalid_redirect_uri", str(exc))
    grant_types = data.get("grant_types", ["authorization_code"])
    if (
        not isinstance(grant_types, list)
        or "authorization_code" not in grant_types
        or not set(grant_types) <= DCR_GRANT_TYPES
    ):
        return None, _error_response(
            "invalid_client_metadata", "grant_types may hold only authorization_code and refresh_token."
        )
    response_types = data.get("response_types", ["code"])
    if response_types != ["code"]:
        return None, _error_response("invalid_client_metadata", 'response_types must be ["code"].')
    method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in DCR_AUTH_METHODS:
        return None, _error_response(
            "invalid_client_metadata", f"token_endpoint_auth_method must be one of {', '.join(DCR_AUTH_METHODS)}."
        )
    name = data.get("client_name", "")
    if not isinstance(name, str) or len(name) > DCR_MAX_NAME:
        return None, _error_response("invalid_client_metadata", f"client_name: a string of at most {DCR_MAX_NAME}.")
    Application = get_application_model()
    return {
        "name": name.strip(),
        "redirect_uris": joined,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
        "client_type": Application.CLIENT_PUBLIC if method == "none" else Application.CLIENT_CONFIDENTIAL,
    }, None


def _register_throttle(request: HttpRequest) -> HttpResponse | None:
    """Registrations counted by django-ratelimit in the shared cache: OAUTH_REGISTER_RATE per client
    address (config.net.client_ip, IPv6 by /64), OAUTH_REGISTER_RATE_IPV6_48 per IPv6 /48 (a site
    often holds one), OAUTH_REGISTER_RATE_GLOBAL for everyone. Past one, a 429 with Retry-After;
    a request refused by a narrower limit does not count against the wider ones."""
    from config.net import address_key, client_ip

    address = client_ip(request)
    limits = [(DCR_RATE_GROUP, address_key(address), settings.OAUTH_REGISTER_RATE)]
    network = _ipv6_network(address, 48)
    if network is not None:
        limits.append((f"{DCR_RATE_GROUP}.48", f"ip:{network}", settings.OAUTH_REGISTER_RATE_IPV6_48))
    limits.append((f"{DCR_RATE_GROUP}.global", "all", settings.OAUTH_REGISTER_RATE_GLOBAL))
    for group, key, rate in limits:
        limited = _over(request, group=group, key=key, rate=rate)
        if limited is not None:
            return limited
    return None


def _over(request: HttpRequest, *, group: str, key: str, rate: str) -> HttpResponse | None:
    from django_ratelimit.core import get_usage

    usage = get_usage(request, group=group, key=lambda _group, _request: key, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    wide = group.endswith(".global")
    response = JsonResponse(
        {
            "error": "too_many_requests",
            "error_description": "Too many registrations right now; try later."
            if wide
            else "Too many registrations from this address; try later.",
        },
        status=429,
    )
    response["Retry-After"] = str(max(1, int(usage["time_left"])))
    return response


def _ipv6_network(address: str, prefix: int):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version != 6:
        return None
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


# --- metadata (RFC 8414, RFC 9728) ----------------------------------------------------------------

# DOT's metadata view reverses its own namespace ("oauth2_provider:…"); ours is "oauth".
ENDPOINT_NAMES = {
    "authorize": "oauth:authorize",
    "token": "oauth:token",
    "revoke-token": "oauth:revoke",
    "dcr-register": "oauth:register",
}


class AuthorizationServerMetadataView(OAuthServerMetadataView):
    """RFC 8414 at /.well-known/oauth-authorization-server; issuer is SITE_URL (OIDC_ISS_ENDPOINT,
    the same value DOT puts in the `iss` of authorization responses, RFC 9207)."""

    def _get_endpoint_url(self, request, view_name, required=False):
        name = ENDPOINT_NAMES.get(view_name)
        if name is None:
            return None
        try:
            return settings.SITE_URL + reverse(name)
        except NoReverseMatch:
            if required:
                raise
            return None


class ProtectedResourceMetadataView(OAuthProtectedResourceMetadataView):
    """RFC 9728 for one of our two resources (`resource` is "api" or "mcp"), each at the well-known
    path with its own path appended; "site" is the root document, whose `resource` must be
    SITE_URL itself (section 3.3), for clients that look there first."""

    resource = "api"

    def get_resource(self, request):
        return {"mcp": services.resource_mcp, "site": lambda: settings.SITE_URL}.get(
            self.resource, services.resource_api
        )()

    def get_authorization_servers(self, request):
        return [settings.SITE_URL]

    def get_bearer_methods_supported(self):
        return ["header"]

    def get_resource_name(self):
        return {"mcp": "Atelier MCP server", "site": "Atelier"}.get(self.resource, "Atelier API")

    def get_resource_documentation(self):
        return f"{settings.SITE_URL}/developers/"

    def get_resource_policy_uri(self):
        return settings.SITE_URL + reverse("privacy:policy")


# --- connected apps -----------------------------------------------------------------------------------


@login_required
def connections(request: HttpRequest) -> HttpResponse:
    response = render(
        request, "atelier_oauth/connections.html", {"connections": services.connections_for(user=request.user)}
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def connection_revoke(request: HttpRequest, application_id: int) -> HttpResponse:
    """Revoke all of one app's tokens for the signed-in person. An app that holds nothing of theirs
    is a 404, like an app that does not exist."""
    count = services.connection_revoke(user=request.user, application_id=application_id)
    if not count:
        raise Http404("No such connected app.")
    name = get_application_model().objects.filter(pk=application_id).values_list("name", flat=True).first()
    messages.success(request, f"“{name or 'The app'}” can no longer use your account.")
    return redirect("oauth:connections")
