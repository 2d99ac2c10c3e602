"""/mcp with the official MCP Python client (`mcp.client.streamable_http` + `ClientSession`)
against a live server, signed in with an API key."""

from __future__ import annotations

import base64
import io
import os

import pytest
import requests
from mcp.shared.exceptions import MCPError
from PIL import Image

from accounts.services import api_key_revoke
from generation.models import Generation, Source, Status
from mcpserver.tests.conftest import make_key, mcp_session, off_loop, run

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {
    "list_models",
    "generate_image",
    "edit_image",
    "image_to_3d",
    "get_generation",
    "list_generations",
    "get_credits",
}
SPENDING = {"generate_image", "edit_image", "image_to_3d"}


def url_of(site) -> str:
    return f"{site.url}/mcp"


# --- the door ---------------------------------------------------------------------------------------


def test_no_credential_is_401_naming_the_resource_metadata(mcp_site):
    response = requests.post(
        url_of(mcp_site),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{mcp_site.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert response.json()["reason"] == "missing_credential"


def test_a_revoked_key_is_refused_with_401(mcp_site, alice):
    token = make_key(alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            assert (await session.list_tools()).tools  # works while the key is live
            await off_loop(lambda: api_key_revoke(user=alice, key=alice.api_keys.get()))
            with pytest.raises(MCPError):
                await session.list_tools()

    run(scenario())
    response = requests.post(
        url_of(mcp_site),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["reason"] == "invalid_token"


def test_a_paused_account_is_refused_with_403_and_the_reason(mcp_site, alice):
    from privacy.services.restriction import account_pause

    token = make_key(alice)
    account_pause(user=alice)
    response = requests.post(
        url_of(mcp_site),
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "account_paused"
    assert response.json()["detail"].startswith("Your account is paused")


# --- the tools --------------------------------------------------------------------------------------


def test_initialize_and_list_the_seven_tools_with_their_annotations(mcp_site, alice):
    token = make_key(alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            return session.initialize_result, (await session.list_tools()).tools

    initialized, tools = run(scenario())
    assert initialized.server_info.name == "atelier"
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == TOOLS
    for name, tool in by_name.items():
        hints = tool.annotations
        assert hints is not None and hints.title
        assert hints.destructive_hint is False
        if name in SPENDING:
            assert hints.read_only_hint is False
            assert "spends credits" in tool.description.lower() or "spends" in (tool.title or "").lower()
            assert "credits" in hints.title
        else:
            assert hints.read_only_hint is True
    assert by_name["generate_image"].input_schema["required"] == ["prompt"]
    assert set(by_name["edit_image"].input_schema["required"]) == {"image_url", "prompt"}


def _text(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def _picture(block) -> Image.Image:
    assert block.type == "image"
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


def test_generate_image_runs_to_completion_and_returns_the_picture_and_a_signed_link(mcp_site, funded_alice):
    token = make_key(funded_alice)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            result = await session.call_tool(
                "generate_image",
                {"prompt": "a lighthouse at dusk", "model": "local-canvas", "aspect_ratio": "16:9"},
                progress_callback=on_progress,
            )
            credits = await session.call_tool("get_credits", {})
            listed = await session.call_tool("list_generations", {"limit": 5})
            return result, credits, listed

    result, credits, listed = run(scenario())
    assert result.is_error is False, _text(result)
    job = result.structured_content
    assert job["status"] == "succeeded"
    assert job["model"] == "local-canvas"
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1
    picture = _picture(images[0])
    assert picture.size == (1024, 576)
    # The signed link works without any credential, and is the same picture.
    link = job["outputs"][0]["url"]
    assert link.startswith(mcp_site.url) and link in _text(result)
    download = requests.get(link, timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == images[0].mime_type
    assert Image.open(io.BytesIO(download.content)).size == (1024, 576)
    assert requests.get(link[:-3] + "xyz", timeout=10).status_code in (403, 404)  # the signature matters
    # The job is the person's, made here, and charged.
    generation = Generation.objects.get(uuid=job["id"])
    assert generation.owner == funded_alice and generation.source == Source.MCP
    assert generation.status == Status.SUCCEEDED and generation.prompt == "a lighthouse at dusk"
    assert credits.structured_content["balance"] == 50 - generation.cost
    assert [item["id"] for item in listed.structured_content["items"]] == [job["id"]]


def test_edit_and_3d_take_a_picture_link_and_a_3d_result_links_its_viewer(mcp_site, funded_alice, settings):
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"localhost:{mcp_site.url.rsplit(':', 1)[1]}"]
    token = make_key(funded_alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            first = await session.call_tool("generate_image", {"prompt": "a red teapot", "model": "local-canvas"})
            link = first.structured_content["outputs"][0]["url"]
            edited = await session.call_tool(
                "edit_image", {"image_url": link, "prompt": "make it blue", "model": "local-restyle"}
            )
            model = await session.call_tool("image_to_3d", {"image_url": link, "model": "local-relief"})
            return edited, model

    edited, model = run(scenario())
    assert edited.is_error is False, _text(edited)
    assert edited.structured_content["kind"] == "image_to_image"
    assert [block.type for block in edited.content] == ["text", "image"]
    assert model.is_error is False, _text(model)
    job = model.structured_content
    assert job["kind"] == "image_to_3d" and job["status"] == "succeeded"
    assert job["outputs"][0]["mime_type"] == "model/gltf-binary"
    assert job["viewer_url"] and job["viewer_url"] in _text(model)
    assert [block.type for block in model.content] == ["text", "image"]  # a picture of what was made
    viewer = requests.get(job["viewer_url"], timeout=10)  # opens without signing in
    assert viewer.status_code == 200


def test_pictures_for_a_chat_are_png_or_jpeg_under_a_megabyte():
    from mcpserver.tools import image_for_chat

    small = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(small, "PNG")
    assert image_for_chat(small.getvalue(), "image/png") == (small.getvalue(), "image/png")  # as stored

    noisy = Image.frombytes("RGB", (2400, 2400), os.urandom(2400 * 2400 * 3))  # ~17 MB as PNG
    big = io.BytesIO()
    noisy.save(big, "WEBP", lossless=True)
    data, mime = image_for_chat(big.getvalue(), "image/webp")
    assert mime == "image/jpeg" and len(data) <= 1_000_000
    shrunk = Image.open(io.BytesIO(data))
    assert shrunk.format == "JPEG" and shrunk.width * 2400 == shrunk.height * 2400  # same shape, smaller


def test_a_spending_call_without_credits_is_a_tool_error_naming_credits(mcp_site, alice):
    token = make_key(alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            return await session.call_tool("generate_image", {"prompt": "a lighthouse", "model": "local-canvas"})

    result = run(scenario())
    assert result.is_error is True
    assert "credit" in _text(result)
    assert result.structured_content["error"]["type"] == "insufficient_credits"
    assert not Generation.objects.filter(owner=alice).exists()


def test_a_bad_input_is_refused_with_the_services_sentence(mcp_site, funded_alice):
    token = make_key(funded_alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            private = await session.call_tool(
                "edit_image", {"image_url": "http://10.0.0.1/cat.png", "prompt": "hat", "model": "local-restyle"}
            )
            unknown = await session.call_tool("generate_image", {"prompt": "x", "model": "no-such-model"})
            ratio = await session.call_tool(
                "generate_image", {"prompt": "x", "model": "local-canvas", "aspect_ratio": "7:1"}
            )
            return private, unknown, ratio

    private, unknown, ratio = run(scenario())
    assert private.is_error and "private or local network" in _text(private)
    assert unknown.is_error and "list_models" in _text(unknown)
    assert ratio.is_error and ratio.structured_content["error"]["field"] == "aspect_ratio"
    assert not Generation.objects.filter(owner=funded_alice).exists()


def test_a_key_without_the_generate_scope_reads_but_cannot_spend(mcp_site, funded_alice):
    token = make_key(funded_alice, scopes=("read",))

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            models = await session.call_tool("list_models", {"kind": "text_to_image"})
            spend = await session.call_tool("generate_image", {"prompt": "a lighthouse"})
            return models, spend

    models, spend = run(scenario())
    assert models.is_error is False
    assert {model["kind"] for model in models.structured_content["models"]} == {"text_to_image"}
    assert "local-canvas" in {model["slug"] for model in models.structured_content["models"]}
    assert spend.is_error is True and "'generate' scope" in _text(spend)
    assert not Generation.objects.filter(owner=funded_alice).exists()


def test_another_persons_generation_is_not_found(mcp_site, funded_alice, bob):
    from billing.models import LedgerReason
    from billing.services.ledger import credits_grant

    credits_grant(user=bob, amount=10, reason=LedgerReason.ADMIN_GRANT, idempotency_key="bob")
    bobs_token = make_key(bob)
    alices_token = make_key(funded_alice)

    async def scenario():
        async with mcp_session(url_of(mcp_site), bobs_token) as session:
            bobs = await session.call_tool("generate_image", {"prompt": "bob's secret", "model": "local-canvas"})
        async with mcp_session(url_of(mcp_site), alices_token) as session:
            seen = await session.call_tool("get_generation", {"generation_id": bobs.structured_content["id"]})
            listed = await session.call_tool("list_generations", {})
            garbage = await session.call_tool("get_generation", {"generation_id": "not-an-id"})
            return seen, listed, garbage

    seen, listed, garbage = run(scenario())
    assert seen.is_error is True and seen.structured_content["error"]["type"] == "not_found"
    assert "bob's secret" not in _text(seen)
    assert listed.structured_content["items"] == []
    assert garbage.is_error is True and _text(garbage) == _text(seen)


def test_an_oauth_token_bound_to_the_api_is_refused_here(mcp_site, alice):
    from atelier_oauth import services
    from atelier_oauth.tests.conftest import ClientCredentials, obtain_token

    application, secret = services.gpt_action_client_create(
        redirect_uri="https://chat.openai.com/aip/g-0123456789abcdef/oauth/callback", name="ChatGPT"
    )
    gpt = ClientCredentials(application=application, client_id=application.client_id, client_secret=secret)
    for_api = obtain_token(mcp_site.url, gpt, alice, resource=f"{mcp_site.url}/api/v1")["access_token"]
    unbound = obtain_token(mcp_site.url, gpt, alice)["access_token"]
    for_site = obtain_token(mcp_site.url, gpt, alice, resource=mcp_site.url)["access_token"]

    def tools_list(token):
        return requests.post(
            url_of(mcp_site),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=10,
        )

    refused = tools_list(for_api)
    assert refused.status_code == 401
    assert "another Atelier resource" in refused.json()["detail"]
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    accepted = tools_list(unbound)  # asked for without a resource: good for the API and here
    assert accepted.status_code == 200
    assert len(accepted.json()["result"]["tools"]) == 7
    # Asked for the site itself (the root RFC 9728 document's resource): good for both, as at the API.
    assert tools_list(for_site).status_code == 200


def test_calls_count_against_the_api_rate_limit(mcp_site, alice, settings):
    settings.API_RATE_PER_KEY = "3/m"
    token = make_key(alice)
    answers = [
        requests.post(
            url_of(mcp_site),
            json={"jsonrpc": "2.0", "id": n, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=10,
        )
        for n in range(4)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["reason"] == "rate_limited"


def test_a_client_of_the_2026_protocol_discovers_the_server_and_generates(mcp_site, funded_alice):
    """`mcp.Client` in its default mode probes server/discover (protocol 2026-07-28, one request
    per call, no initialize) before falling back to the handshake: both eras work here."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    token = make_key(funded_alice)

    async def scenario():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
            Client(streamable_http_client(url_of(mcp_site), http_client=http), mode="auto") as client,
        ):
            version = client.session.protocol_version
            tools = await client.list_tools()
            result = await client.call_tool("generate_image", {"prompt": "a comet", "model": "local-canvas"})
            return version, tools, result

    version, tools, result = run(scenario())
    assert version == "2026-07-28"
    assert {tool.name for tool in tools.tools} == TOOLS
    assert result.is_error is False and result.structured_content["status"] == "succeeded"
    assert [block.type for block in result.content] == ["text", "image"]


def test_every_tool_keeps_the_orm_out_of_the_event_loop(mcp_site, funded_alice, settings, monkeypatch):
    """The suite allows ORM calls from async code (DJANGO_ALLOW_ASYNC_UNSAFE, for Playwright);
    production does not. With the allowance off, each tool still answers: its database work
    goes through sync_to_async."""
    # The key first: after a browser test, Playwright leaves an event loop running in this thread,
    # and the test's own setup is not what is being checked.
    token = make_key(funded_alice)
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    settings.INPUT_URL_ALLOWED_PRIVATE_HOSTS = [f"localhost:{mcp_site.url.rsplit(':', 1)[1]}"]

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            first = await session.call_tool("generate_image", {"prompt": "a fox", "model": "local-canvas"})
            job, link = first.structured_content["id"], first.structured_content["outputs"][0]["url"]
            calls = {
                "generate_image": first,
                "list_models": await session.call_tool("list_models", {}),
                "get_credits": await session.call_tool("get_credits", {}),
                "edit_image": await session.call_tool(
                    "edit_image", {"image_url": link, "prompt": "in snow", "model": "local-restyle"}
                ),
                "image_to_3d": await session.call_tool("image_to_3d", {"image_url": link, "model": "local-relief"}),
                "get_generation": await session.call_tool("get_generation", {"generation_id": job, "wait_seconds": 1}),
                "list_generations": await session.call_tool("list_generations", {"limit": 2}),
            }
            cursor = calls["list_generations"].structured_content["next_cursor"]
            second_page = await session.call_tool("list_generations", {"limit": 2, "cursor": cursor})
            return calls, second_page

    calls, second_page = run(scenario())
    assert set(calls) == TOOLS
    for name, result in calls.items():
        assert result.is_error is False, (name, _text(result))
    assert len(calls["list_generations"].structured_content["items"]) == 2
    assert len(second_page.structured_content["items"]) == 1  # three jobs in all
    assert second_page.structured_content["next_cursor"] == ""


def test_a_job_deleted_while_get_generation_waits_ends_the_wait_at_once(mcp_site, funded_alice):
    """Deleting a job (gallery, account) while a tool waits for it stops the wait with a clear
    error, instead of polling a row that is gone until the call's time runs out."""
    import threading
    import time

    from django.db import connections
    from django.utils import timezone

    from generation.models import CatalogEntry, Generation

    token = make_key(funded_alice)
    entry = CatalogEntry.objects.get(slug="local-canvas")
    job = Generation.objects.create(owner=funded_alice, model=entry, kind=entry.kind, prompt="a fox", cost=1)

    def delete():
        Generation.objects.filter(pk=job.pk).update(deleting_at=timezone.now())
        connections.close_all()

    async def scenario():
        async with mcp_session(url_of(mcp_site), token) as session:
            threading.Timer(1.5, delete).start()
            started = time.monotonic()
            result = await session.call_tool("get_generation", {"generation_id": str(job.uuid), "wait_seconds": 30})
            return result, time.monotonic() - started

    result, took = run(scenario())
    assert result.is_error is True and "deleted" in _text(result)
    assert result.structured_content["error"]["type"] == "not_found"
    assert took < 8, took
