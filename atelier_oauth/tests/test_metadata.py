"""RFC 8414 authorization server metadata and RFC 9728 protected resource metadata."""

from __future__ import annotations

import pytest
import requests

from atelier_oauth import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_authorization_server_metadata(oauth_site):
    answer = requests.get(f"{oauth_site}/.well-known/oauth-authorization-server", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    doc = answer.json()
    assert doc["issuer"] == oauth_site
    assert doc["authorization_endpoint"] == f"{oauth_site}/oauth/authorize/"
    assert doc["token_endpoint"] == f"{oauth_site}/oauth/token/"
    assert doc["registration_endpoint"] == f"{oauth_site}/oauth/register/"
    assert doc["revocation_endpoint"] == f"{oauth_site}/oauth/revoke/"
    assert "introspection_endpoint" not in doc
    assert doc["scopes_supported"] == ["generate", "read"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["client_id_metadata_document_supported"] is False
    # Every endpoint it names answers (the token endpoint refuses a GET, the others need a POST).
    assert requests.post(doc["token_endpoint"], data={}, timeout=10).status_code == 400
    assert requests.post(doc["registration_endpoint"], data="{}", timeout=10).status_code == 400


@pytest.mark.parametrize(
    ("path", "resource", "name"),
    [
        ("/.well-known/oauth-protected-resource", "", "Atelier"),  # RFC 9728 section 3.3: SITE_URL itself
        ("/.well-known/oauth-protected-resource/api/v1", "/api/v1", "Atelier API"),
        ("/.well-known/oauth-protected-resource/mcp", "/mcp", "Atelier MCP server"),
    ],
)
def test_protected_resource_metadata(oauth_site, path, resource, name):
    answer = requests.get(oauth_site + path, timeout=10)
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["resource"] == oauth_site + resource
    assert doc["authorization_servers"] == [oauth_site]
    assert doc["scopes_supported"] == ["generate", "read"]
    assert doc["bearer_methods_supported"] == ["header"]
    assert doc["resource_name"] == name
    assert doc["resource_documentation"] == f"{oauth_site}/developers/"
    # The authorization server it names publishes its metadata.
    server = requests.get(doc["authorization_servers"][0] + "/.well-known/oauth-authorization-server", timeout=10)
    assert server.json()["issuer"] == doc["authorization_servers"][0]


def test_resource_metadata_url_points_at_the_documents(oauth_site):
    """What the API's and MCP's 401s name in WWW-Authenticate: each URL serves its resource."""
    for resource in services.resources():
        url = services.resource_metadata_url(resource)
        assert requests.get(url, timeout=10).json()["resource"] == resource
    assert (
        services.resource_metadata_url(f"{oauth_site}/mcp") == f"{oauth_site}/.well-known/oauth-protected-resource/mcp"
    )
    # The API's document is the path form: the root one belongs to SITE_URL (RFC 9728 section 3.3).
    assert (
        services.resource_metadata_url(services.resource_api())
        == f"{oauth_site}/.well-known/oauth-protected-resource/api/v1"
    )


def test_the_apis_401_names_the_apis_own_document(oauth_site):
    challenge = requests.get(f"{oauth_site}/api/v1/me", timeout=10).headers["WWW-Authenticate"]
    url = challenge.split('resource_metadata="')[1].split('"')[0]
    assert url == f"{oauth_site}/.well-known/oauth-protected-resource/api/v1"
    assert requests.get(url, timeout=10).json()["resource"] == f"{oauth_site}/api/v1"
