"""The official MCP Python client against a live Atelier (pytest-django's live server: Django's
threaded WSGI server, as runserver is), signed in with an API key."""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from django.db import connections
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from accounts.services import api_key_create
from billing.models import LedgerReason
from billing.services.ledger import credits_grant


@pytest.fixture
def mcp_site(live_server, settings):
    """The live server as the site: absolute links, the resource URL and its metadata URL use it."""
    settings.SITE_URL = live_server.url
    return live_server


@pytest.fixture
def funded_alice(alice):
    credits_grant(user=alice, amount=50, reason=LedgerReason.ADMIN_GRANT, idempotency_key="mcp-tests")
    return alice


def make_key(user, scopes=("read", "generate")) -> str:
    return api_key_create(user=user, name="MCP test", scopes=list(scopes))[1]


@asynccontextmanager
async def mcp_session(url: str, token: str | None = None, *, auth=None):
    """An initialized MCP client session on `url` (Bearer `token`, or an httpx2 auth flow)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, auth=auth, timeout=httpx2.Timeout(60.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def off_loop(function, *args, **kwargs):
    """Database work in the middle of a scenario, in a worker thread that closes its connection
    (an ORM call on the scenario's event loop would leave one open)."""

    def work():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return await anyio.to_thread.run_sync(work)


def run(coroutine, *, timeout: float = 120):
    """Drive an async client from a sync test, on an event loop in a thread of its own: once a
    browser test has started Playwright's sync API, the test thread has an event loop running.
    Database calls the scenario makes use that thread's connection, closed at its end."""
    outcome: dict = {}

    def main():
        try:
            outcome["result"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=main, name="mcp-test-client", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the MCP client scenario did not finish within {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
