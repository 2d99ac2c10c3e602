"""Serve one Django request with an ASGI application, from a WSGI worker, streaming its answer.

The MCP SDK's streamable HTTP transport is an ASGI application (Starlette), and Atelier runs
under a WSGI server (gunicorn in the image, runserver in `make run`). `asgi_response` builds the
ASGI scope from the Django request and runs the application for it on an event loop of its own,
then hands the answer back to the WSGI server as it comes:

- the application runs in a helper thread through asgiref's `async_to_sync`, so that thread is
  the one `sync_to_async(thread_sensitive=True)` sends ORM calls to: one thread, and so one
  database connection, per request, closed when the request ends (never the process-wide
  executor asgiref uses outside `async_to_sync`, which would queue every request's queries
  behind one another);
- the WSGI thread waits for the response start (status, headers), then either answers at once
  (a JSON body or an error: one body message) or returns a `StreamingHttpResponse` that yields
  each body message as the application sends it, so an SSE stream (an MCP tool's progress
  notifications, then its result) reaches the client while the tool still runs;
- when the WSGI server stops iterating (the client went away, or the body ended), the
  application's `receive()` answers `http.disconnect`, which is how ASGI applications learn
  that nobody is listening any more.

Hop-by-hop headers (`Connection`, `Transfer-Encoding`, ...) are dropped: WSGI servers own them
(wsgiref refuses them outright).

Why not an ASGI route: serving Django from an ASGI server (uvicorn workers, or the SDK's Starlette
app mounted beside Django) would change how every page runs for the sake of one endpoint, or add
a second server and port to deploy and to start in `make run`. The MCP server runs stateless (no
session outlives its request; nothing is pushed to clients outside a request), so a short-lived
event loop per request inside whichever worker got it is all it needs. The cost: a web worker (a
sync gunicorn worker, or one thread of a threaded one) is held while a tool waits for a job, at
most ~40 s, as the API's `Prefer: wait` holds one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.request import split_domain_port

logger = logging.getLogger(__name__)

AsgiApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
_DONE = object()  # the application returned (or crashed)
# How long the WSGI thread waits for the application to start its answer. The MCP transport
# starts an SSE answer before the tool runs and a JSON answer when the tool is done; tools
# return within about 40 s, so this is only a guard against a stuck application.
START_TIMEOUT = 120.0


def asgi_scope(request: HttpRequest, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ASGI HTTP scope of a Django request (headers as the client sent them, lower-cased)."""
    headers = [
        (name.lower().encode("latin-1"), str(value).encode("latin-1")) for name, value in request.headers.items()
    ]
    host, port = split_domain_port(request.get_host())
    scheme = request.scheme
    server_port = int(port) if port.isdigit() else (443 if scheme == "https" else 80)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": scheme,
        "path": request.path,
        "raw_path": request.path.encode("utf-8"),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (request.META.get("REMOTE_ADDR", ""), int(request.META.get("REMOTE_PORT") or 0)),
        "server": (host, server_port),
        "state": {},
        **(extra or {}),
    }


def asgi_response(request: HttpRequest, app: AsgiApp, *, extra_scope: dict[str, Any] | None = None) -> HttpResponse:
    """Run `app` for `request` and return its answer as a Django response (streamed when the
    application sends its body in several messages)."""
    scope = asgi_scope(request, extra=extra_scope)
    body = request.body  # read here, in the WSGI thread, before the application starts
    run = _Run(app, scope, body)
    run.start()

    start = run.next(timeout=START_TIMEOUT)
    if start is _DONE or start is None or start.get("type") != "http.response.start":
        run.disconnect()
        logger.error("mcp: the ASGI application ended without an answer")
        return JsonResponse({"detail": "The server could not answer this request."}, status=500)
    status = int(start["status"])
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in start.get("headers", [])
        if name.decode("latin-1").lower() not in _HOP_BY_HOP
    ]

    first = run.next(timeout=START_TIMEOUT)
    if first is _DONE or first is None or not first.get("more_body", False):
        body_bytes = b"" if first in (_DONE, None) else first.get("body", b"")
        run.disconnect()
        response: HttpResponse | StreamingHttpResponse = HttpResponse(body_bytes, status=status)
        _copy_headers(response, headers)
        return response

    response = StreamingHttpResponse(run.chunks(first), status=status)
    _copy_headers(response, [(name, value) for name, value in headers if name.lower() != "content-length"])
    return response


def _copy_headers(response, headers: list[tuple[str, str]]) -> None:
    del response["Content-Type"]  # the application's own, when it sends one
    for name, value in headers:
        if name in response:
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value


class _Run:
    """One application run: a helper thread with its event loop, and the messages it sends."""

    def __init__(self, app: AsgiApp, scope: dict, body: bytes):
        self.app, self.scope, self.body = app, scope, body
        self.outbox: queue.Queue = queue.Queue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.gone: asyncio.Event | None = None
        self.ready = threading.Event()
        self.client_gone = False
        self.thread = threading.Thread(target=self._thread_main, name="mcp-request", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def next(self, *, timeout: float):
        try:
            return self.outbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def chunks(self, first: dict) -> Iterator[bytes]:
        """The body as the application sends it; stops at its last body message."""
        message = first
        try:
            while True:
                if message is _DONE or message is None:
                    return
                if message.get("type") == "http.response.body":
                    if message.get("body"):
                        yield message["body"]
                    if not message.get("more_body", False):
                        return
                message = self.next(timeout=START_TIMEOUT)
        finally:
            self.disconnect()

    def disconnect(self) -> None:
        """Tell the application nobody listens any more (its `receive()` answers http.disconnect)."""
        self.client_gone = True
        self.ready.wait(timeout=5)
        if self.loop is not None and self.gone is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self.loop.call_soon_threadsafe(self.gone.set)

    def _thread_main(self) -> None:
        try:
            async_to_sync(self._serve)()
        except Exception:
            logger.exception("mcp: the ASGI application crashed")
        finally:
            self.ready.set()
            # The connections this thread's sync_to_async calls opened: one request's worth.
            connections.close_all()
            self.outbox.put(_DONE)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.gone = asyncio.Event()
        if self.client_gone:
            self.gone.set()
        self.ready.set()
        body_sent = False

        async def receive() -> dict:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message.get("type") in ("http.response.start", "http.response.body"):
                self.outbox.put(message)

        await self.app(self.scope, receive, send)
