"""The authorization endpoint: sign-in first, PKCE S256 required, a paused account's token
refused with a reason, the consent screen's content, and RFC 7009 revocation."""

from __future__ import annotations

from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client, RequestFactory

from accounts.errors import AccountPausedForApi, ApiScopeMissing
from atelier_oauth import services
from atelier_oauth.tests.conftest import GPT_CALLBACK, token_in_process
from privacy.services.restriction import account_pause

pytestmark = pytest.mark.django_db

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # S256 of RFC 7636's example verifier


def authorize_url(gpt_client, **overrides) -> str:
    params = {
        "response_type": "code",
        "client_id": gpt_client.client_id,
        "redirect_uri": GPT_CALLBACK,
        "scope": "read generate",
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **overrides,
    }
    return "/oauth/authorize/?" + urlencode({k: v for k, v in params.items() if v is not None})


def test_sign_in_comes_first_and_leads_back(client, gpt_client):
    url = authorize_url(gpt_client)
    answer = client.get(url)
    assert answer.status_code == 302
    location = urlsplit(answer["Location"])
    assert location.path == "/accounts/login/"
    assert parse_qs(location.query)["next"] == [url]


def test_consent_screen_names_app_host_and_scopes(client, gpt_client, alice):
    client.force_login(alice)
    page = client.get(authorize_url(gpt_client))
    assert page.status_code == 200
    html = page.content.decode()
    assert "ChatGPT" in html and "chat.openai.com" in html and alice.email in html
    assert "See your account, credits and generations" in html
    assert "Start generations that spend your credits" in html
    assert ">Allow</button>" in html and ">Cancel</button>" in html
    assert "hasn't checked who runs it" not in html  # staff-created client
    assert page["Cache-Control"].startswith("max-age=0")
    # Only the scopes asked for are listed.
    html = client.get(authorize_url(gpt_client, scope="read")).content.decode()
    assert "See your account" in html and "spend your credits" not in html


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "missing"),
        ({"code_challenge_method": "plain"}, "plain"),
        ({"code_challenge_method": None}, "defaults to plain"),
    ],
)
def test_pkce_missing_or_plain_is_refused_before_consent(client, gpt_client, alice, overrides, why):
    client.force_login(alice)
    answer = client.get(authorize_url(gpt_client, **overrides))
    assert answer.status_code == 302, why
    assert answer["Location"].startswith(GPT_CALLBACK)
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert query["error"] == ["invalid_request"], why
    assert query["state"] == ["xyz"]


def test_plain_smuggled_into_the_consent_form_is_refused(client, gpt_client, alice):
    from atelier_oauth.tests.conftest import consent_form

    client.force_login(alice)
    url = authorize_url(gpt_client)
    fields, _ = consent_form(client.get(url).content.decode())
    fields.update(allow="Authorize", code_challenge_method="plain", code_challenge="a" * 43)
    answer = client.post(url, data=fields)
    assert parse_qs(urlsplit(answer["Location"]).query)["error"] == ["invalid_request"]
    fields.update(code_challenge_method="S256", resource="https://other.example/")
    answer = client.post(url, data=fields)
    assert parse_qs(urlsplit(answer["Location"]).query)["error"] == ["invalid_target"]


def test_wrong_code_verifier_is_invalid_grant(client, gpt_client, alice):
    client.force_login(alice)
    from atelier_oauth.tests.conftest import consent_form

    url = authorize_url(gpt_client)
    fields, _ = consent_form(client.get(url).content.decode())
    fields["allow"] = "Authorize"
    code = parse_qs(urlsplit(client.post(url, data=fields)["Location"]).query)["code"][0]
    answer = Client().post(
        "/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": GPT_CALLBACK,
            "code_verifier": "x" * 50,
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_unknown_client_is_shown_an_error_not_redirected(client, alice):
    client.force_login(alice)
    answer = client.get(
        "/oauth/authorize/?"
        + urlencode({"response_type": "code", "client_id": "nope", "redirect_uri": "https://evil.example/cb"})
    )
    assert answer.status_code == 400
    assert "can't go ahead" in answer.content.decode()


def test_paused_account_token_is_403_with_reason(client, gpt_client, alice):
    token = token_in_process(client, gpt_client, alice)
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 200
    account_pause(user=alice)
    answer = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert answer.status_code == 403
    assert "paused" in answer.content.decode()  # the reason, whatever the error format
    with pytest.raises(AccountPausedForApi):
        services.access_token_authenticate(request=RequestFactory().get("/"), token=token["access_token"], scope="read")


def test_scope_not_granted_is_refused(client, gpt_client, alice):
    token = token_in_process(client, gpt_client, alice, scope="read")
    request = RequestFactory().get("/")
    assert services.access_token_authenticate(request=request, token=token["access_token"], scope="read") == alice
    with pytest.raises(ApiScopeMissing):
        services.access_token_authenticate(request=request, token=token["access_token"], scope="generate")
    assert services.oauth_token_source(request.oauth_token) == "gpt_action"


def test_expired_token_is_refused(client, gpt_client, alice):
    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model

    token = token_in_process(client, gpt_client, alice)
    get_access_token_model().objects.filter(user=alice).update(expires=timezone.now())
    assert (
        services.access_token_authenticate(request=RequestFactory().get("/"), token=token["access_token"], scope="read")
        is None
    )
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401


def test_revocation_endpoint_rfc7009(client, gpt_client, alice):
    token = token_in_process(client, gpt_client, alice)
    answer = Client().post(
        "/oauth/revoke/",
        data={
            "token": token["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": gpt_client.client_id,
            "client_secret": gpt_client.client_secret,
        },
    )
    assert answer.status_code == 200
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401
    # A wrong secret cannot revoke.
    other = token_in_process(client, gpt_client, alice)
    refused = Client().post(
        "/oauth/revoke/",
        data={"token": other["access_token"], "client_id": gpt_client.client_id, "client_secret": "wrong"},
    )
    assert refused.status_code == 401
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {other['access_token']}").status_code == 200


def test_last_used_moves_at_most_once_a_minute(client, gpt_client, alice):
    from datetime import timedelta

    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model

    token = token_in_process(client, gpt_client, alice)
    AccessToken = get_access_token_model()
    old = timezone.now() - timedelta(minutes=5)
    AccessToken.objects.filter(user=alice).update(updated=old)
    services.access_token_authenticate(request=RequestFactory().get("/"), token=token["access_token"], scope="read")
    used = AccessToken.objects.get(user=alice).updated
    assert used > old
    services.access_token_authenticate(request=RequestFactory().get("/"), token=token["access_token"], scope="read")
    assert AccessToken.objects.get(user=alice).updated == used
    assert services.connections_for(user=alice)[0].last_used_at == used


def test_pkce_exemption_is_per_named_client_only(client, gpt_client, alice, settings):
    """The operator's way out for a GPT Action without PKCE: that client id only, and the token
    endpoint still wants its secret."""
    client.force_login(alice)
    no_pkce = {"code_challenge": None, "code_challenge_method": None}
    settings.OAUTH_PKCE_EXEMPT_CLIENT_IDS = ["someone-else"]
    refused = client.get(authorize_url(gpt_client, **no_pkce))
    assert parse_qs(urlsplit(refused["Location"]).query)["error"] == ["invalid_request"]

    settings.OAUTH_PKCE_EXEMPT_CLIENT_IDS = [gpt_client.client_id]
    from atelier_oauth.tests.conftest import consent_form

    url = authorize_url(gpt_client, **no_pkce)
    fields, _ = consent_form(client.get(url).content.decode())
    fields["allow"] = "Authorize"
    code = parse_qs(urlsplit(client.post(url, data=fields)["Location"]).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": GPT_CALLBACK}
    wrong = Client().post("/oauth/token/", data={**exchange, "client_id": gpt_client.client_id, "client_secret": "no"})
    assert wrong.status_code == 401
    token = Client().post(
        "/oauth/token/",
        data={**exchange, "client_id": gpt_client.client_id, "client_secret": gpt_client.client_secret},
    )
    assert token.status_code == 200, token.content


def test_client_cannot_skip_the_consent_screen(client, gpt_client, alice):
    """approval_prompt=auto would let DOT issue a code without asking when an earlier token covers
    the scopes; Atelier asks every time."""
    token_in_process(client, gpt_client, alice)
    client.force_login(alice)
    page = client.get(authorize_url(gpt_client, approval_prompt="auto"))
    assert page.status_code == 200
    assert ">Allow</button>" in page.content.decode()


def test_token_asked_without_resource_is_good_for_both_resources(client, gpt_client, alice):
    token = token_in_process(client, gpt_client, alice)
    for resource in services.resources():
        request = RequestFactory().get("/")
        assert (
            services.access_token_authenticate(
                request=request, token=token["access_token"], scope="read", resource=resource
            )
            == alice
        )
    assert (
        services.access_token_authenticate(
            request=RequestFactory().get("/"), token="not-a-token", scope="read", resource=services.resource_mcp()
        )
        is None
    )


# --- RFC 9207 `iss` on every redirect back, the consent page's CSP, an app that went -------------


def issuer(client) -> str:
    return client.get("/.well-known/oauth-authorization-server").json()["issuer"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain"},  # ours, before consent
        {"resource": "https://other.example/mcp"},  # ours: invalid_target
        {"code_challenge": None, "code_challenge_method": None},  # DOT's (PKCE required)
    ],
)
def test_refusal_redirects_carry_iss(client, gpt_client, alice, overrides):
    client.force_login(alice)
    answer = client.get(authorize_url(gpt_client, **overrides))
    assert answer.status_code == 302 and answer["Location"].startswith(GPT_CALLBACK)
    query = parse_qs(urlsplit(answer["Location"]).query)
    assert query["iss"] == [issuer(client)]
    assert query["state"] == ["xyz"] and query["error"]


def test_refusals_after_the_form_and_cancel_carry_iss_once(client, gpt_client, alice):
    from atelier_oauth.tests.conftest import consent_form

    client.force_login(alice)
    url = authorize_url(gpt_client)
    fields, _ = consent_form(client.get(url).content.decode())
    smuggled = {**fields, "allow": "Authorize", "code_challenge_method": "plain"}
    query = parse_qs(urlsplit(client.post(url, data=smuggled)["Location"]).query)
    assert query["error"] == ["invalid_request"] and query["iss"] == [issuer(client)]
    cancelled = parse_qs(urlsplit(client.post(url, data=fields)["Location"]).query)
    assert cancelled["error"] == ["access_denied"] and cancelled["iss"] == [issuer(client)]
    allowed = parse_qs(urlsplit(client.post(url, data={**fields, "allow": "Authorize"})["Location"]).query)
    assert allowed["code"] and allowed["iss"] == [issuer(client)]


def dcr_application(redirect_uri: str):
    """A self-registered app as a row (as one registered before today's checks would be)."""
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    return Application.objects.create(
        name="Some MCP client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        registration_source=Application.RegistrationSource.DCR,
    )


def test_consent_page_allows_the_redirect_origin_in_form_action(client, alice):
    app = dcr_application("https://app.example:8443/cb")
    client.force_login(alice)
    page = client.get(authorize_url(app, redirect_uri="https://app.example:8443/cb"))
    assert page.status_code == 200
    form_action = next(d for d in page["Content-Security-Policy"].split(";") if "form-action" in d)
    assert "https://app.example:8443" in form_action


@pytest.mark.parametrize(
    "uri", ["https://evil.example;report-uri/cb", "https://evil.example'/cb", "https://evil.example%3Bsandbox/cb"]
)
def test_a_host_that_is_not_a_name_puts_nothing_into_the_csp(client, alice, uri):
    app = dcr_application(uri)
    client.force_login(alice)
    page = client.get(authorize_url(app, redirect_uri=uri))
    csp = page["Content-Security-Policy"]
    assert "evil" not in csp and "report-uri" not in csp and "sandbox" not in csp and "'/" not in csp


def test_an_app_removed_while_its_consent_page_is_open_is_a_clear_400(client, alice):
    from atelier_oauth.tests.conftest import consent_form

    app = dcr_application("http://127.0.0.1:33418/callback")
    client.force_login(alice)
    url = authorize_url(app, redirect_uri="http://127.0.0.1:33418/callback")
    fields, _ = consent_form(client.get(url).content.decode())
    app.delete()  # beat's sweep, a moment later
    for data in ({**fields, "allow": "Authorize"}, {**fields, "code_challenge_method": "plain"}, fields):
        answer = client.post(url, data=data)
        assert answer.status_code == 400
        assert "This app's registration expired; start again from the app." in unescape(answer.content.decode())


def test_consent_page_says_a_paused_account_refuses_the_app(client, gpt_client, alice):
    client.force_login(alice)
    html = client.get(authorize_url(gpt_client)).content.decode()
    assert "if you pause your account it is refused until you resume" in html
