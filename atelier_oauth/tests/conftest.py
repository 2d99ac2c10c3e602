"""OAuth test helpers: the live server as SITE_URL (issuer, resources), the staff-created GPT
Action client, and signing the consent screen with a real session over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from atelier_oauth import services

GPT_CALLBACK = "https://chat.openai.com/aip/g-0123456789abcdef/oauth/callback"


@pytest.fixture
def oauth_site(settings, live_server) -> str:
    """The live server is the site: SITE_URL (resources, metadata) and the issuer (RFC 9207)."""
    settings.SITE_URL = live_server.url
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": live_server.url}
    return live_server.url


@dataclass
class ClientCredentials:
    application: object
    client_id: str
    client_secret: str


@pytest.fixture
def gpt_client(db) -> ClientCredentials:
    application, secret = services.gpt_action_client_create(redirect_uri=GPT_CALLBACK, name="ChatGPT")
    return ClientCredentials(application=application, client_id=application.client_id, client_secret=secret)


def signed_in_session(user) -> requests.Session:
    """A requests session carrying a Django session cookie for `user` (the consent screen needs a
    signed-in person; signing in through the form is the browser tests' job)."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set(django_settings.SESSION_COOKIE_NAME, client.cookies[django_settings.SESSION_COOKIE_NAME].value)
    return session


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.buttons: list[dict] = []
        self.in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "consent-form" in (attrs.get("class") or ""):
            self.in_form = True
        if not self.in_form:
            return
        if tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""
        if tag == "button":
            self.buttons.append(attrs)

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False


def consent_form(html: str) -> tuple[dict[str, str], list[dict]]:
    parser = _FormParser()
    parser.feed(html)
    return parser.fields, parser.buttons


def consent(session: requests.Session, authorization_url: str, *, allow: bool = True) -> str:
    """Open the consent screen and press Allow (or Cancel); the redirect the app gets back."""
    page = session.get(authorization_url, allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"), page.text[:500])
    fields, _buttons = consent_form(page.text)
    assert fields, "no consent form on the page"
    if allow:
        fields["allow"] = "Authorize"
    answer = session.post(page.url, data=fields, allow_redirects=False, headers={"Referer": page.url})
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    return urljoin(page.url, answer.headers["Location"])


def obtain_token(base: str, gpt_client: ClientCredentials, user, *, scope: str = "read generate", **params) -> dict:
    """The whole GPT Action flow with Authlib (consent over HTTP): the token response."""
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session

    oauth = OAuth2Session(
        client_id=gpt_client.client_id,
        client_secret=gpt_client.client_secret,
        scope=scope,
        redirect_uri=GPT_CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",
    )
    verifier = generate_token(64)
    url, _state = oauth.create_authorization_url(f"{base}/oauth/authorize/", code_verifier=verifier, **params)
    callback = consent(signed_in_session(user), url)
    return oauth.fetch_token(f"{base}/oauth/token/", authorization_response=callback, code_verifier=verifier, **params)


def token_in_process(client: Client, gpt_client: ClientCredentials, user, *, scope: str = "read generate") -> dict:
    """The same flow through Django's test client (no live server): for tests that must look at
    the database inside their own transaction."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode, urlsplit

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": gpt_client.client_id,
        "redirect_uri": GPT_CALLBACK,
        "scope": scope,
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    client.force_login(user)
    page = client.get("/oauth/authorize/?" + urlencode(params))
    assert page.status_code == 200
    fields, _ = consent_form(page.content.decode())
    fields["allow"] = "Authorize"
    answer = client.post("/oauth/authorize/?" + urlencode(params), data=fields)
    assert answer.status_code == 302, answer.content[:300]
    code = parse_qs(urlsplit(answer["Location"]).query)["code"][0]
    client.logout()
    token = client.post(
        "/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": GPT_CALLBACK,
            "code_verifier": verifier,
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
    )
    assert token.status_code == 200, token.content
    return token.json()
