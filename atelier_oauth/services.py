"""Atelier's OAuth 2.1 authorization server around django-oauth-toolkit (DOT).

DOT issues codes and tokens; this module holds what is ours:
- `access_token_authenticate`: an OAuth access token as an API / MCP credential;
- our two protected resources (RFC 8707 / RFC 9728) and `resource_metadata_url` for 401s;
- the redirect-URI policy for dynamically registered clients (RFC 7591 + RFC 8252);
- revoking a person's grants: one app at a time (connected apps page) or all (erasure);
- creating the staff-made confidential client for the GPT Action.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from accounts.errors import AccountPausedForApi, ApiScopeMissing

# "Last used" on the connected apps page moves at most this often: one write a minute per token,
# not one per API call.
LAST_USED_RESOLUTION = timedelta(seconds=60)

# Hosts a native client may receive its redirect on over plain http (RFC 8252 section 7.3 and 8.3).
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class RedirectUriRefused(ValueError):
    """A redirect URI a client may not register; the message says why (shown to the client)."""


# --- protected resources (RFC 8707 / RFC 9728) ----------------------------------------------------


def resource_api() -> str:
    return f"{settings.SITE_URL}/api/v1"


def resource_mcp() -> str:
    return f"{settings.SITE_URL}/mcp"


def resources() -> tuple[str, str]:
    """The resource indicators a client may ask a token for: the API and the MCP endpoint."""
    return (resource_api(), resource_mcp())


def resource_is_ours(value: str) -> bool:
    """One of our resources, or SITE_URL itself: the resource the root RFC 9728 document names,
    which a client that reads that document may ask for; a token bound to it is good for both."""
    return value.rstrip("/") in (*resources(), settings.SITE_URL)


def resource_metadata_url(resource: str) -> str:
    """Where the RFC 9728 metadata of `resource` lives, for `WWW-Authenticate: Bearer
    resource_metadata="…"` on a 401: the well-known path with the resource's path appended
    (section 3.1), e.g. SITE_URL/.well-known/oauth-protected-resource/mcp for SITE_URL/mcp and
    …/oauth-protected-resource/api/v1 for the API. The root form belongs to SITE_URL itself
    (section 3.3: a document's `resource` must be the one its URL was built from)."""
    path = urlsplit(resource.rstrip("/")).path.strip("/")
    suffix = f"/{path}" if path else ""
    return f"{settings.SITE_URL}/.well-known/oauth-protected-resource{suffix}"


# --- access tokens as credentials -------------------------------------------------------------------


def token_serves(access, resource: str) -> bool:
    """Is this access token good at `resource` (RFC 8707)? One asked for without a resource, or for
    SITE_URL, is good for both of ours; one bound to the other resource is not."""
    if not access.resource:
        return True
    bound = {value.rstrip("/") for value in access.resource}
    return resource.rstrip("/") in bound or settings.SITE_URL in bound


def access_token_authenticate(*, request: HttpRequest, token: str, scope: str, resource: str | None = None):
    """The owner of a live OAuth access token that carries `scope`, or None (unknown, expired,
    revoked, inactive owner, or bound by RFC 8707 to another resource than `resource`). Raises
    AccountPausedForApi for a paused owner and ApiScopeMissing for a token without `scope` (403).
    Sets `request.oauth_token`.

    Tokens are stored hashed (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE): the lookup is by the SHA-256
    checksum DOT keeps beside the blanked token column. Revoking an access token deletes its row,
    so "not found" covers revoked too. A token asked for without `resource`, or for SITE_URL, is
    good for both of our resources; `resource=None` here skips the audience check."""
    AccessToken = get_access_token_model()
    checksum = hashlib.sha256(token.encode()).hexdigest()
    now = timezone.now()
    access = (
        AccessToken.objects.select_related("user", "application")
        .filter(token_checksum=checksum, expires__gt=now)
        .first()
    )
    if access is None or access.user is None or not access.user.is_active:
        return None
    if resource is not None and not token_serves(access, resource):
        return None
    if access.user.is_paused:
        raise AccountPausedForApi()
    if not access.allow_scopes([scope]):
        raise ApiScopeMissing(f"This token was not granted the '{scope}' scope.")
    if access.updated < now - LAST_USED_RESOLUTION:
        AccessToken.objects.filter(pk=access.pk).update(updated=now)
    request.oauth_token = access
    return access.user


def oauth_token_source(access) -> str:
    """Which door a token came through: "mcp" for a client that registered itself (RFC 7591) or a
    token bound to the MCP endpoint, "gpt_action" for a staff-created client (the GPT Action)."""
    Application = get_application_model()
    application = access.application
    if resource_mcp() in [value.rstrip("/") for value in access.resource or []]:
        return "mcp"
    if application is not None and application.registration_source == Application.RegistrationSource.MANUAL:
        return "gpt_action"
    return "mcp"


# --- redirect URIs of registered clients ---------------------------------------------------------


# The characters RFC 3986 allows in a URI (unreserved, reserved, and "%" of percent-encoding).
# Anything else is refused, whitespace and control characters above all: DOT keeps a client's
# redirect URIs in one whitespace-separated field, so a space inside one would register another.
URI_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
# One DNS label in its ASCII form: letters, digits, hyphens (LDH), IDNA A-labels ("xn--…") included.
_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# A last label that URL parsers read as part of an IPv4 address (decimal, octal, hex: "127.1").
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


def redirect_uri_check(uri: str) -> str:
    """`uri` if a client may register it, else RedirectUriRefused. https anywhere; plain http only
    to a loopback host (RFC 8252: native apps such as MCP clients on a desktop); never a fragment
    (RFC 6749 section 3.1.2), a wildcard, user info, or any other scheme (javascript:, data:,
    custom schemes: private-use schemes can be claimed by any app on a device). Only RFC 3986
    characters (no whitespace: see URI_CHARACTERS), and the host must be a DNS name in ASCII
    (LDH, IDNA A-labels) or an IP literal, since it is shown on the consent page and goes into
    its Content-Security-Policy."""
    if not isinstance(uri, str) or not uri:
        raise RedirectUriRefused("A redirect URI must be a non-empty string.")
    if not set(uri) <= URI_CHARACTERS:
        raise RedirectUriRefused(
            f"{uri!r}: a redirect URI must not contain spaces, control characters or other characters "
            "a URI can't hold (percent-encode them; give a host in its xn-- form)."
        )
    if "*" in uri:
        raise RedirectUriRefused(f"{uri!r}: wildcards are not allowed.")
    if "#" in uri:
        raise RedirectUriRefused(f"{uri!r}: a redirect URI must not have a fragment.")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise RedirectUriRefused(f"{uri!r} is not a valid URL.") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        raise RedirectUriRefused(f"{uri!r}: use an https URL (http only for 127.0.0.1, [::1] or localhost).")
    if parts.username is not None or parts.password is not None:
        raise RedirectUriRefused(f"{uri!r}: user information is not allowed in a redirect URI.")
    if not host_is_valid(host, bracketed=parts.netloc.startswith("[")):
        raise RedirectUriRefused(f"{uri!r}: the host must be a domain name or an IP address.")
    if scheme == "http" and not _is_loopback(host):
        raise RedirectUriRefused(f"{uri!r}: plain http is allowed only for 127.0.0.1, [::1] or localhost.")
    return uri


def host_is_valid(host: str, *, bracketed: bool) -> bool:
    """A DNS name in ASCII (LDH labels, IDNA A-labels included), an IPv4 address in dotted-quad
    form, or a bracketed IPv6 address (no zone). `host` is lower case, without brackets."""
    if bracketed:
        if "%" in host:  # a zone id ("fe80::1%25eth0") means nothing to another machine
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(_LDH_LABEL.fullmatch(label) for label in labels)


def redirect_uris_joined(uris: list[str]) -> str:
    """The value of DOT's `redirect_uris` field for checked URIs. DOT splits the field on
    whitespace; RedirectUriRefused unless that gives back exactly `uris`."""
    joined = " ".join(uris)
    if joined.split() != list(uris):
        raise RedirectUriRefused("The redirect URIs can't be stored as given.")
    return joined


def redirect_uris_stored_check(application, uris: list[str]) -> None:
    """After saving: the URIs DOT will match redirects against (its field, split on whitespace, as
    read back from the database) are exactly the checked `uris`, else RedirectUriRefused (the
    caller is inside a transaction, which this rolls back)."""
    stored = type(application).objects.filter(pk=application.pk).values_list("redirect_uris", flat=True).get()
    if stored.split() != list(uris):
        raise RedirectUriRefused("The redirect URIs can't be stored as given.")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host) in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    except ValueError:
        return False


# --- connected apps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """One app that holds live tokens for a person, as the connected apps page shows it."""

    application_id: int
    name: str
    redirect_host: str
    scopes: list[str]
    authorized_at: datetime
    last_used_at: datetime | None


def connections_for(*, user) -> list[Connection]:
    """The apps holding a live access or refresh token for `user`, newest use first. Two queries
    whatever the number of apps (the tokens are few per person)."""
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    now = timezone.now()
    by_app: dict[int, dict] = {}

    def entry(application):
        return by_app.setdefault(
            application.pk,
            {"application": application, "scopes": set(), "created": [], "used": []},
        )

    for access in AccessToken.objects.filter(user=user, expires__gt=now, application__isnull=False).select_related(
        "application"
    ):
        item = entry(access.application)
        item["scopes"].update(access.scope.split())
        item["created"].append(access.created)
        item["used"].append(access.updated)
    for refresh in RefreshToken.objects.filter(user=user, revoked__isnull=True).select_related(
        "application", "access_token"
    ):
        item = entry(refresh.application)
        if refresh.access_token is not None:
            item["scopes"].update(refresh.access_token.scope.split())
        item["created"].append(refresh.created)

    known = list(settings.OAUTH2_PROVIDER["SCOPES"])
    result = []
    for item in by_app.values():
        application = item["application"]
        result.append(
            Connection(
                application_id=application.pk,
                name=application.name or "Unnamed app",
                redirect_host=application_redirect_host(application),
                scopes=[scope for scope in known if scope in item["scopes"]],
                authorized_at=min(item["created"]),
                last_used_at=max(item["used"]) if item["used"] else None,
            )
        )
    result.sort(key=lambda c: c.last_used_at or c.authorized_at, reverse=True)
    return result


def application_redirect_host(application) -> str:
    """The host the app's first redirect URI points at: the name a person can check on the
    consent screen and the connected apps page (a client picks its own display name)."""
    uris = application.redirect_uris.split()
    return (urlsplit(uris[0]).hostname or "") if uris else ""


@transaction.atomic
def connection_revoke(*, user, application_id: int) -> int:
    """Revoke every access and refresh token and pending code `application_id` holds for `user`,
    at once. Returns how many went; 0 if the app holds nothing of theirs (the view answers 404, so
    nobody learns about other people's apps)."""
    return _tokens_revoke(user=user, application_id=application_id)


@transaction.atomic
def tokens_revoke_all(*, user) -> int:
    """Delete every OAuth access token, refresh token and authorization code of `user`, for every
    app (erasure: nothing of theirs is kept, not even a revoked row)."""
    return _tokens_revoke(user=user, application_id=None, delete=True)


def _tokens_revoke(*, user, application_id: int | None, delete: bool = False) -> int:
    AccessToken = get_access_token_model()
    RefreshToken = get_refresh_token_model()
    Grant = get_grant_model()
    scope = {"user": user}
    if application_id is not None:
        scope["application_id"] = application_id
    now = timezone.now()
    # Refresh tokens are marked revoked (DOT's own revocation keeps the row, so a replay is told
    # apart from an unknown token); access tokens and codes are deleted, which is DOT's revocation.
    if delete:
        refreshed, _ = RefreshToken.objects.filter(**scope).delete()
    else:
        refreshed = RefreshToken.objects.filter(revoked__isnull=True, **scope).update(
            revoked=now, updated=now, access_token=None
        )
    accessed, _ = AccessToken.objects.filter(**scope).delete()
    codes, _ = Grant.objects.filter(**scope).delete()
    return refreshed + accessed + codes


# --- the GPT Action client ---------------------------------------------------------------------------


def chatgpt_redirect_uris(redirect_uri: str) -> list[str]:
    """ChatGPT calls back on https://chat.openai.com/aip/<g-id>/oauth/callback or the same path on
    chatgpt.com, depending on where the person uses the GPT: register both for one given."""
    parts = urlsplit(redirect_uri)
    hosts = {"chat.openai.com", "chatgpt.com"}
    if parts.scheme == "https" and parts.hostname in hosts:
        return [f"https://{host}{parts.path}" for host in ("chat.openai.com", "chatgpt.com")]
    return [redirect_uri]


@transaction.atomic
def gpt_action_client_create(*, redirect_uri: str, name: str = "ChatGPT"):
    """A confidential authorization-code client for the GPT Action. Returns (application,
    client_secret); the secret is stored hashed and exists in plaintext only in this answer."""
    from oauth2_provider.generators import generate_client_secret

    Application = get_application_model()
    # The URI as given first: urlsplit drops tabs and newlines, so the rewritten twins could
    # look clean when the argument was not.
    uris = [redirect_uri_check(uri) for uri in chatgpt_redirect_uris(redirect_uri_check(redirect_uri))]
    secret = generate_client_secret()
    application = Application(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uris_joined(uris),
        client_secret=secret,
        hash_client_secret=True,
        registration_source=Application.RegistrationSource.MANUAL,
    )
    application.full_clean()
    application.save()
    redirect_uris_stored_check(application, uris)
    return application, secret


# --- housekeeping ------------------------------------------------------------------------------------


def unused_registrations():
    """Self-registered clients (RFC 7591) that hold no token and no pending code: nobody connected
    them, or nobody uses them any longer."""
    from django.db.models import Exists, OuterRef

    Application = get_application_model()
    holds = [
        Exists(model.objects.filter(application_id=OuterRef("pk")))
        for model in (get_access_token_model(), get_refresh_token_model(), get_grant_model())
    ]
    return Application.objects.filter(registration_source=Application.RegistrationSource.DCR).exclude(
        holds[0] | holds[1] | holds[2]
    )


def unused_registrations_full() -> bool:
    """True when OAUTH_UNUSED_CLIENT_MAX unused self-registered clients are waiting: registration
    stops until beat's sweep removes them (an open endpoint must not fill the table)."""
    limit = settings.OAUTH_UNUSED_CLIENT_MAX
    return unused_registrations()[: limit + 1].count() >= limit


def oauth_housekeeping(*, now: datetime | None = None) -> dict[str, int]:
    """Beat's sweep: DOT's `clear_expired` (expired access tokens and codes; revoked refresh tokens
    once they could no longer be replayed), then self-registered clients nobody ever connected
    within OAUTH_UNUSED_CLIENT_DAYS (open registration would otherwise pile them up)."""
    from oauth2_provider.models import clear_expired

    clear_expired()
    cutoff = (now or timezone.now()) - timedelta(days=settings.OAUTH_UNUSED_CLIENT_DAYS)
    Application = get_application_model()
    _total, per_model = unused_registrations().filter(created__lt=cutoff).delete()
    return {"unused_clients_removed": per_model.get(Application._meta.label, 0)}
