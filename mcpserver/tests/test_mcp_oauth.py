"""Connecting an MCP client with OAuth, the way ChatGPT, Claude or Cursor do it, with the official
MCP Python client's own OAuth support (`mcp.client.auth.OAuthClientProvider`): discovery from the
401's resource_metadata, dynamic client registration, PKCE, a person signing in and pressing
Allow in Chromium, the token exchange, then tools and a generated image through the token; the
person revokes the app on Atelier and the next call is refused."""

from __future__ import annotations

import asyncio
import queue
import threading
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
import requests
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from oauth2_provider.models import get_access_token_model, get_application_model

from generation.models import Generation, Source, Status
from mcpserver.tests.conftest import mcp_session
from tests.browser import screenshot, sign_in
from tests.harness import free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STEP_TIMEOUT = 60


class MemoryTokenStorage(TokenStorage):
    """What a desktop client keeps between runs, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class McpClientThread(threading.Thread):
    """The MCP client, on its own event loop in a thread: Playwright's sync API owns the test's
    thread. The two talk through queues: the client hands over the authorization URL, the
    browser hands back what arrived at the loopback redirect."""

    def __init__(self, url: str, redirect_uri: str):
        super().__init__(name="mcp-client", daemon=True)
        self.url, self.redirect_uri = url, redirect_uri
        self.to_browser: queue.Queue = queue.Queue()
        self.from_browser: queue.Queue = queue.Queue()
        self.revoked = threading.Event()
        self.storage = MemoryTokenStorage()
        self.outcome: dict = {}
        self.authorizations = 0

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorizations += 1
        self.to_browser.put(("authorize", authorization_url))

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.revoked.is_set():
            raise RuntimeError("the person does not connect again")
        params = await anyio.to_thread.run_sync(lambda: self.from_browser.get(timeout=STEP_TIMEOUT))
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))

    async def scenario(self) -> None:
        auth = OAuthClientProvider(
            server_url=self.url,
            client_metadata=OAuthClientMetadata(
                client_name="Desktop assistant (MCP test)",
                redirect_uris=[self.redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
                scope="read generate",
            ),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
        )
        async with mcp_session(self.url, auth=auth) as session:
            self.outcome["tools"] = [tool.name for tool in (await session.list_tools()).tools]
            self.outcome["generated"] = await session.call_tool(
                "generate_image", {"prompt": "a paper boat on a pond", "model": "local-canvas"}
            )
            self.to_browser.put(("generated", None))
            await anyio.to_thread.run_sync(lambda: self.revoked.wait(STEP_TIMEOUT))
            self.outcome["after_revoke"] = await session.list_tools()  # expected to fail

    def run(self) -> None:
        try:
            asyncio.run(self.scenario())
        except BaseException as exc:
            if self.revoked.is_set():  # the refusal after the revocation (the client cannot go on)
                self.outcome["after_revoke"] = exc
                return
            self.outcome["crash"] = exc  # reported to the test, which fails with it
            self.to_browser.put(("crash", exc))


def _next(client: McpClientThread, expected: str):
    kind, value = client.to_browser.get(timeout=STEP_TIMEOUT)
    if kind == "crash":
        raise value
    assert kind == expected, (kind, value)
    return value


def test_an_mcp_client_connects_with_oauth_generates_an_image_and_is_cut_off_when_revoked(
    page, mcp_site, funded_alice, settings
):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": mcp_site.url}
    callback_port = free_port()
    redirect_uri = f"http://127.0.0.1:{callback_port}/callback"
    client = McpClientThread(f"{mcp_site.url}/mcp", redirect_uri)

    # The desktop client's loopback listener: the browser's redirect lands here.
    arrived: list[str] = []

    def loopback(route):
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>Connected. You can close this window.</p>")

    page.context.route(f"http://127.0.0.1:{callback_port}/**", loopback)

    client.start()
    authorization_url = _next(client, "authorize")
    query = parse_qs(urlsplit(authorization_url).query)
    assert authorization_url.startswith(f"{mcp_site.url}/oauth/authorize/")  # found from the 401's metadata
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["resource"] == [f"{mcp_site.url}/mcp"]
    registered = get_application_model().objects.get(client_id=query["client_id"][0])  # registered itself
    assert registered.name == "Desktop assistant (MCP test)"

    # The person signs in, reads the consent screen and allows.
    sign_in(page, funded_alice)
    page.goto(authorization_url)
    page.get_by_role("button", name="Allow", exact=True).wait_for()
    assert "Desktop assistant (MCP test)" in page.content()
    screenshot(page, "mcp-oauth-consent")
    page.get_by_role("button", name="Allow", exact=True).click()
    page.wait_for_url(f"http://127.0.0.1:{callback_port}/**")
    callback = parse_qs(urlsplit(arrived[-1]).query)
    client.from_browser.put({name: values[0] for name, values in callback.items()})

    # Token exchange, tools/list and a generated image, all through the access token.
    _next(client, "generated")
    assert set(client.outcome["tools"]) >= {"generate_image", "list_models", "get_credits"}
    result = client.outcome["generated"]
    assert result.is_error is False, result.content
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1 and images[0].data
    job = result.structured_content
    assert job["status"] == "succeeded"
    generation = Generation.objects.get(uuid=job["id"])
    assert generation.owner == funded_alice and generation.source == Source.MCP
    assert generation.status == Status.SUCCEEDED
    access_token = client.storage.tokens.access_token
    assert get_access_token_model().objects.filter(user=funded_alice, application=registered).exists()

    # The person revokes the app from their connected apps; the client is refused from then on.
    page.goto("/oauth/connections/")
    assert "Desktop assistant (MCP test)" in page.content()
    page.get_by_text("Revoke", exact=True).click()  # opens the confirmation
    page.get_by_role("button", name="Revoke access").click()
    page.wait_for_load_state()
    client.revoked.set()
    client.join(timeout=STEP_TIMEOUT)
    assert not client.is_alive()
    assert "crash" not in client.outcome, client.outcome.get("crash")
    # The next call failed: answered 401, the client went back to ask the person (who declined).
    assert isinstance(client.outcome["after_revoke"], BaseException), client.outcome["after_revoke"]
    assert client.authorizations == 2
    refused = requests.post(
        f"{mcp_site.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert not get_access_token_model().objects.filter(user=funded_alice, application=registered).exists()
