"""RFC 7591 dynamic client registration for MCP clients: redirect URIs checked, grant types
limited, public and confidential clients, a per-address rate limit; and a registered public
client going through the flow with PKCE and an RFC 8707 resource."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from django.test import Client, RequestFactory
from oauth2_provider.models import get_access_token_model, get_application_model

from atelier_oauth import services
from atelier_oauth.tests.conftest import consent, signed_in_session

pytestmark = pytest.mark.django_db


def register(client: Client, body: dict, *, address: str = "198.51.100.7"):
    return client.post("/oauth/register/", data=json.dumps(body), content_type="application/json", REMOTE_ADDR=address)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:33418/callback",
        "http://localhost:6274/oauth/callback",
        "http://[::1]:8080/cb",
        "https://claude.ai/api/mcp/auth_callback",
    ],
)
def test_registration_accepts_https_and_loopback_http(client, uri):
    answer = register(client, {"client_name": "Claude", "redirect_uris": [uri], "token_endpoint_auth_method": "none"})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["redirect_uris"] == [uri]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert "client_secret" not in body and "registration_access_token" not in body
    app = get_application_model().objects.get(client_id=body["client_id"])
    assert app.client_type == "public" and app.registration_source == "dcr" and app.user is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://evil.example/cb",
        "javascript:alert(1)",
        "https://app.example/cb#fragment",
        "https://*.example.com/cb",
        "data:text/html,hi",
        "com.example.app:/callback",
        "https://user:pass@app.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "",
    ],
)
def test_registration_refuses_unsafe_redirect_uris(client, uri):
    answer = register(client, {"client_name": "Evil", "redirect_uris": [uri]})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_redirect_uri"
    assert not get_application_model().objects.exists()


def test_registration_needs_redirect_uris_and_limits_grant_types(client):
    assert register(client, {"client_name": "x"}).json()["error"] == "invalid_redirect_uri"
    for grants in (["client_credentials"], ["authorization_code", "password"], ["implicit"], ["refresh_token"]):
        answer = register(client, {"redirect_uris": ["https://app.example/cb"], "grant_types": grants})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_client_metadata", grants
    answer = register(client, {"redirect_uris": ["https://app.example/cb"], "response_types": ["token"]})
    assert answer.status_code == 400
    answer = register(
        client, {"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}
    )
    assert answer.status_code == 400
    assert client.post("/oauth/register/", data="not json", content_type="application/json").status_code == 400


def test_confidential_registration_returns_a_secret_once(client):
    answer = register(
        client,
        {
            "client_name": "Server app",
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert answer["Cache-Control"] == "no-store"
    app = get_application_model().objects.get(client_id=body["client_id"])
    assert app.client_type == "confidential"
    assert app.client_secret != body["client_secret"]  # stored hashed


def test_registration_is_rate_limited_per_address(client, settings):
    settings.OAUTH_REGISTER_RATE = "3/h"
    body = {"redirect_uris": ["http://127.0.0.1:9999/cb"], "token_endpoint_auth_method": "none"}
    for _ in range(3):
        assert register(client, body, address="203.0.113.5").status_code == 201
    limited = register(client, body, address="203.0.113.5")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["error"] == "too_many_requests"
    # Another address is counted on its own; IPv6 by /64.
    assert register(client, body, address="203.0.113.6").status_code == 201
    for n in range(3):
        assert register(client, body, address=f"2001:db8:1:2::{n + 1}").status_code == 201
    assert register(client, body, address="2001:db8:1:2:ffff::9").status_code == 429
    assert get_application_model().objects.count() == 7


def test_a_signed_in_cookie_does_not_make_the_app_someones(client, alice):
    client.force_login(alice)
    answer = register(client, {"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"})
    assert answer.status_code == 201
    assert get_application_model().objects.get().user is None


# --- a registered MCP client through the flow --------------------------------------------------


@pytest.fixture
def mcp_client(oauth_site):
    answer = requests.post(
        f"{oauth_site}/oauth/register/",
        json={
            "client_name": "Test MCP client",
            "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
        timeout=10,
    )
    assert answer.status_code == 201
    return answer.json()


def mcp_session(mcp_client) -> OAuth2Session:
    return OAuth2Session(
        client_id=mcp_client["client_id"],
        scope="read",
        redirect_uri=mcp_client["redirect_uris"][0],
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )


@pytest.mark.django_db(transaction=True)
def test_public_client_with_resource_gets_a_token_bound_to_it(oauth_site, mcp_client, alice):
    oauth = mcp_session(mcp_client)
    verifier = generate_token(64)
    mcp = f"{oauth_site}/mcp"
    url, _ = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=verifier, resource=mcp)
    page = signed_in_session(alice).get(url)
    assert "Test MCP client" in page.text and "127.0.0.1" in page.text
    assert "hasn't checked who runs it" in page.text
    callback = consent(signed_in_session(alice), url)
    token = oauth.fetch_token(
        f"{oauth_site}/oauth/token/", authorization_response=callback, code_verifier=verifier, resource=mcp
    )
    row = get_access_token_model().objects.get(user=alice)
    assert row.resource == [mcp]

    request = RequestFactory().get("/mcp")
    assert (
        services.access_token_authenticate(request=request, token=token["access_token"], scope="read", resource=mcp)
        == alice
    )
    assert request.oauth_token.pk == row.pk
    assert services.oauth_token_source(row) == "mcp"
    # Bound to /mcp: not good for the API.
    assert (
        services.access_token_authenticate(
            request=request, token=token["access_token"], scope="read", resource=services.resource_api()
        )
        is None
    )

    # The refreshed token keeps its resource.
    refreshed = oauth.refresh_token(f"{oauth_site}/oauth/token/", refresh_token=token["refresh_token"])
    assert get_access_token_model().objects.get(user=alice).resource == [mcp]
    assert refreshed["access_token"] != token["access_token"]


@pytest.mark.django_db(transaction=True)
def test_resource_not_ours_is_refused_at_authorize(oauth_site, mcp_client, alice):
    oauth = mcp_session(mcp_client)
    url, state = oauth.create_authorization_url(
        f"{oauth_site}/oauth/authorize/", code_verifier=generate_token(64), resource="https://other.example/mcp"
    )
    answer = signed_in_session(alice).get(url, allow_redirects=False)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert answer.headers["Location"].startswith("http://127.0.0.1:33418/callback?")
    assert query["error"] == ["invalid_target"] and query["state"] == [state]


@pytest.mark.django_db(transaction=True)
def test_resource_mismatch_at_token_endpoint_is_invalid_target(oauth_site, mcp_client, alice):
    oauth = mcp_session(mcp_client)
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        f"{oauth_site}/oauth/authorize/", code_verifier=verifier, resource=f"{oauth_site}/mcp"
    )
    callback = consent(signed_in_session(alice), url)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    for resource in (f"{oauth_site}/api/v1", "https://other.example/mcp"):
        answer = requests.post(
            f"{oauth_site}/oauth/token/",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": mcp_client["redirect_uris"][0],
                "client_id": mcp_client["client_id"],
                "code_verifier": verifier,
                "resource": resource,
            },
            timeout=10,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_target"
    assert not get_access_token_model().objects.filter(user=alice).exists()


# --- redirect URIs that would smuggle a second URI or a CSP directive ---------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://ok.example/cb http://evil.example/cb",  # DOT splits its field on whitespace
        "https://ok.example/cb\thttps://x.example/*",
        "https://ok.example/cb\nhttps://user@evil.example/cb",
        "https://ok.example/cb\x1fhttps://evil.example/cb",  # str.split() splits on \x1f too
        "https://ok.example/c\u2028b",
        "https://ok.example/c\x00b",
        "https://ok.example/cb\n",
    ],
)
def test_registration_refuses_whitespace_and_control_characters_anywhere(client, uri):
    answer = register(client, {"redirect_uris": [uri], "token_endpoint_auth_method": "none"})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid_redirect_uri"
    assert not get_application_model().objects.exists()


def test_a_smuggled_second_uri_is_not_accepted_at_authorize(client, alice):
    """The reviewer's case end to end: nothing registered, so the evil URI can't be used."""
    register(
        client,
        {"redirect_uris": ["https://ok.example/cb http://evil.example/cb"], "token_endpoint_auth_method": "none"},
    )
    assert not get_application_model().objects.filter(redirect_uris__contains="evil.example").exists()
    # Eleven URIs packed into ten elements are refused as well (the cap counts what is stored).
    packed = [f"https://ok.example/cb{n}" for n in range(9)] + ["https://ok.example/a https://ok.example/b"]
    assert register(client, {"redirect_uris": packed}).status_code == 400


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example;report-uri/cb",
        "https://evil.example'/cb",
        "https://evil.example%3Bsandbox/cb",
        "https://e\u0301vil.example/cb",
        "https://évil.example/cb",
        "https://good.example\\.evil.com/cb",
        "https://evil\\@good.example/cb",
        "https://-evil.example/cb",
        "https://evil..example/cb",
        "https://evil_example.com/cb",
        "http://127.1/cb",
        "http://0x7f.1/cb",
        "https://[fe80::1%25eth0]/cb",
        "https://[v1.x]/cb",
        'https://evil.example"/cb',
    ],
)
def test_registration_refuses_hosts_that_are_not_names_or_addresses(client, uri):
    answer = register(client, {"redirect_uris": [uri], "token_endpoint_auth_method": "none"})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "uri",
    [
        "https://xn--vil-bma.example/cb",  # an IDNA A-label
        "https://app-1.example.co.uk:8443/oauth/callback?x=1&y=%20",
        "https://203.0.113.9/cb",
        "https://[2001:db8::1]:8443/cb",
    ],
)
def test_registration_accepts_ldh_idna_and_ip_hosts(client, uri):
    answer = register(client, {"redirect_uris": [uri], "token_endpoint_auth_method": "none"})
    assert answer.status_code == 201, answer.content
    app = get_application_model().objects.get(client_id=answer.json()["client_id"])
    assert app.redirect_uris.split() == [uri]


# --- how much registering one address, one site and everyone can do ------------------------------


def test_registration_has_a_per_48_and_a_global_limit(client, settings):
    settings.OAUTH_REGISTER_RATE = "2/h"
    settings.OAUTH_REGISTER_RATE_IPV6_48 = "3/h"
    settings.OAUTH_REGISTER_RATE_GLOBAL = "5/h"
    body = {"redirect_uris": ["http://127.0.0.1:9999/cb"], "token_endpoint_auth_method": "none"}
    # Three /64s inside one /48: the third /64's first registration is the /48's fourth.
    assert register(client, body, address="2001:db8:7:1::1").status_code == 201
    assert register(client, body, address="2001:db8:7:2::1").status_code == 201
    assert register(client, body, address="2001:db8:7:3::1").status_code == 201
    limited = register(client, body, address="2001:db8:7:4::1")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    # Everyone together: two more from elsewhere reach the global five, the next is refused.
    assert register(client, body, address="203.0.113.20").status_code == 201
    assert register(client, body, address="203.0.113.21").status_code == 201
    limited = register(client, body, address="198.51.100.99")
    assert limited.status_code == 429
    assert limited.json()["error"] == "too_many_requests"
    assert get_application_model().objects.count() == 5


def test_registration_stops_while_too_many_unused_clients_wait(client, settings, alice):
    from atelier_oauth.tests.conftest import ClientCredentials, token_in_process

    settings.OAUTH_UNUSED_CLIENT_MAX = 2
    body = {"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"}
    first = register(client, body, address="203.0.113.30")
    assert first.status_code == 201
    assert register(client, body, address="203.0.113.31").status_code == 201
    full = register(client, body, address="203.0.113.32")
    assert full.status_code == 503
    assert full.json()["error"] == "temporarily_unavailable"
    assert "registered without being used" in full.json()["error_description"]
    assert full["Retry-After"]
    assert get_application_model().objects.count() == 2
    # Once someone connects one of them, it no longer counts and registration opens again.
    app = get_application_model().objects.get(client_id=first.json()["client_id"])
    app.redirect_uris = "https://chat.openai.com/aip/g-0123456789abcdef/oauth/callback"
    app.save()
    token_in_process(Client(), ClientCredentials(app, first.json()["client_id"], first.json()["client_secret"]), alice)
    assert register(client, body, address="203.0.113.33").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_a_client_that_reads_the_root_document_can_ask_for_its_resource(oauth_site, mcp_client, alice):
    """The root RFC 9728 document names SITE_URL itself (section 3.3); a token asked for that
    resource is granted and good at the API and at /mcp."""
    resource = requests.get(f"{oauth_site}/.well-known/oauth-protected-resource", timeout=10).json()["resource"]
    assert resource == oauth_site
    oauth = mcp_session(mcp_client)
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(f"{oauth_site}/oauth/authorize/", code_verifier=verifier, resource=resource)
    callback = consent(signed_in_session(alice), url)
    token = oauth.fetch_token(f"{oauth_site}/oauth/token/", authorization_response=callback, code_verifier=verifier)
    assert get_access_token_model().objects.get(user=alice).resource == [resource]
    me = requests.get(
        f"{oauth_site}/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    for bound in services.resources():
        assert (
            services.access_token_authenticate(
                request=RequestFactory().get("/"), token=token["access_token"], scope="read", resource=bound
            )
            == alice
        )
