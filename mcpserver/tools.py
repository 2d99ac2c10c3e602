"""Atelier's MCP server: seven tools over the same engine as the web and the API (apiv1.engine).

Each HTTP request to /mcp is served by a fresh stateless session manager of the official SDK
(`serve`): no MCP session outlives its request, so any web worker can answer any call and no
state needs sharing between processes. The caller (the credential's owner) comes in the ASGI
scope from the Django view that checked the credential (mcpserver/views.py).

Tools are async (the SDK runs them on its event loop); everything that touches the database
goes through `sync_to_async` (thread-sensitive: the bridge's request thread). A refusal by a
service (`ApplicationError`: bad input, too few credits, not found...) comes back as a tool
error (`isError: true`) carrying the service's own sentence, never as a protocol error.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from config.errors import ApplicationError
from generation.catalog import STYLE_PRESETS

CALLER_SCOPE_KEY = "atelier.caller"
WAIT_SECONDS = 40  # a generation tool holds the call this long at most, then answers with the job
POLL_WAIT_MAX = 40  # get_generation's wait_seconds (apiv1.engine waits at most MAX_WAIT_SECONDS)
WAIT_SLICE = 2.0  # seconds between progress notifications while a job runs
IMAGE_BLOCK_MAX_BYTES = 1_000_000  # larger pictures are sent downscaled (JPEG); the link has the original
MAX_IMAGE_BLOCKS = 4

INSTRUCTIONS = (
    "Atelier makes images, image edits and 3D models with AI. Call list_models to see the models, "
    "what each accepts and what it costs in credits; get_credits shows the balance. generate_image, "
    "edit_image and image_to_3d spend credits and wait up to 40 seconds for the result; a job that is "
    "still running is returned with its id, and get_generation checks on it later. Output links are "
    "signed and expire after a few minutes: call get_generation again for fresh ones."
)


@dataclass(frozen=True)
class Caller:
    """Who acts: the owner of the Bearer credential the view accepted, with that credential (a
    spending tool checks it again for the `generate` scope) and the Django request it came on."""

    user: Any
    token: str
    request: HttpRequest


class ToolRefused(Exception):
    """A refusal to put in front of the person as is (the tool error's text)."""

    def __init__(self, message: str, *, type: str = "invalid_request", field: str | None = None):
        super().__init__(message)
        self.type, self.field = type, field


server = MCPServer(
    name="atelier",
    title="Atelier",
    description="AI images, edits and 3D models from your Atelier account.",
    instructions=INSTRUCTIONS,
    website_url=settings.SITE_URL,
    subscriptions=False,  # stateless: nothing stays connected to be told about changes
)


async def serve(scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
    """Answer one HTTP request with a stateless session manager made for it.

    An SSE answer (the client accepts text/event-stream, as MCP clients do) carries progress
    notifications while a tool runs; a client that accepts only JSON gets the result as JSON."""
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    manager = StreamableHTTPSessionManager(
        # The MCPServer's protocol server, as the SDK's own Client and session manager take it.
        app=server._lowlevel_server,
        stateless=True,
        json_response="text/event-stream" not in accept,
        max_request_body_size=1_000_000,
    )
    async with manager.run():
        await manager.handle_request(scope, receive, send)


# --- helpers ----------------------------------------------------------------------------------------


def _engine():
    from apiv1 import engine

    return engine


def _caller(ctx: Context) -> Caller:
    request = ctx.request_context.request
    caller = request.scope.get(CALLER_SCOPE_KEY) if request is not None else None
    if caller is None:  # only /mcp's view runs this server, and it always sets the caller
        raise ToolRefused("Not signed in.", type="unauthorized")
    return caller


def _ok(text: str, data: dict, *blocks) -> CallToolResult:
    body = f"{text}\n\n{json.dumps(data, indent=1, default=str)}"
    return CallToolResult(content=[TextContent(text=body), *blocks], structured_content=data)


def _refused(message: str, *, type: str, field: str | None = None) -> CallToolResult:
    error = {"type": type, "detail": message, **({"field": field} if field else {})}
    return CallToolResult(content=[TextContent(text=message)], structured_content={"error": error}, is_error=True)


async def _run(call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """A tool's body, with the services' refusals turned into tool errors (their own sentence)."""
    try:
        return await call()
    except ApplicationError as exc:
        return _refused(str(exc), type=exc.type, field=exc.field)
    except ToolRefused as exc:
        return _refused(str(exc), type=exc.type, field=exc.field)


def _require_generate(caller: Caller) -> None:
    """Spending tools need the `generate` scope on the credential itself (checked again by the
    same function as the API; a credential revoked since the request began fails here too)."""
    from accounts.api import bearer_authenticate
    from accounts.models import ApiScope

    if bearer_authenticate(request=caller.request, token=caller.token, scope=ApiScope.GENERATE) is None:
        raise ToolRefused("This connection is no longer valid. Connect again.", type="unauthorized")


def _model_slug(kind: str, model: str | None) -> str:
    """The model asked for, or the first available one of the kind (what the create page
    preselects); an unknown slug is refused here in MCP's words (the tool, not the API route)."""
    from generation.services import catalog_available, catalog_entry_available

    slug = (model or "").strip()
    if slug:
        entry = catalog_entry_available(slug)  # the engine's own lookup (kept per process), no query
        entry = entry if entry is not None and entry.kind == kind else None
    else:
        entry = catalog_available().filter(kind=kind).first()
    if entry is None:
        if slug:
            raise ToolRefused(
                f"There is no model '{slug}' for this. Call list_models and pass one's slug.",
                type="invalid_input",
                field="model",
            )
        raise ToolRefused("No model of this kind is available right now.", type="invalid_input", field="model")
    return entry.slug


def _submit(caller: Caller, *, kind: str, model: str | None, prompt: str, params: dict, image_url: str = ""):
    """Charge and queue one job through the engine the API uses (source: MCP)."""
    from generation.models import Source

    _require_generate(caller)
    generation, _created = _engine().generation_create(
        user=caller.user,
        model=_model_slug(kind, model),
        prompt=prompt,
        params={name: value for name, value in params.items() if value is not None},
        image_url=image_url,
        file_refs=[],
        source=Source.MCP,
        request=caller.request,
    )
    return generation


def _image_blocks(generation) -> list[ImageContent]:
    """The finished job's pictures as image blocks, each under ~1 MB: an image job's outputs; for
    a 3D model, the picture its gallery card shows (poster, or the thumbnail of its input)."""
    from generation import storage
    from generation.models import AssetRole, Kind
    from generation.selectors import gallery_picture

    if generation.kind == Kind.IMAGE_TO_3D:
        picture = gallery_picture(generation)
        pictures = [picture] if picture is not None else []
    else:
        outputs = [a for a in generation.assets.all() if a.role == AssetRole.OUTPUT]
        pictures = sorted((a for a in outputs if a.mime_type.startswith("image/")), key=lambda a: a.index)
    blocks = []
    for asset in pictures[:MAX_IMAGE_BLOCKS]:
        data, mime = image_for_chat(storage.read_bytes(asset.storage_key), asset.mime_type)
        blocks.append(ImageContent(data=base64.b64encode(data).decode("ascii"), mime_type=mime))
    return blocks


def image_for_chat(content: bytes, mime: str, *, limit: int = IMAGE_BLOCK_MAX_BYTES) -> tuple[bytes, str]:
    """A PNG or JPEG a chat can show inline: as stored when it already is one and fits `limit`,
    else re-encoded as JPEG and halved in size until it fits."""
    from PIL import Image

    if mime in ("image/png", "image/jpeg") and len(content) <= limit:
        return content, mime
    with Image.open(io.BytesIO(content)) as opened:
        image = opened.convert("RGB")
    while True:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85, optimize=True)
        if out.tell() <= limit or max(image.size) <= 256:
            return out.getvalue(), "image/jpeg"
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)


def _job_answer(caller: Caller, generation, *, fresh: bool = False) -> CallToolResult:
    """The job as JSON (signed links, viewer for 3D), its pictures when done, and what to do next.
    Read again unless `fresh` (just read, outputs included)."""
    from generation.models import Status

    if not fresh:
        generation = _engine().generation_get(user=caller.user, generation_id=generation.uuid)  # as it is now
    data = _engine().generation_json(generation, request=caller.request)
    if generation.status == Status.SUCCEEDED:
        links = [output.get("url") for output in data.get("outputs", []) if isinstance(output, dict)]
        lines = ["Done."]
        if data.get("viewer_url"):
            lines.append(f"Open the 3D model in the viewer: {data['viewer_url']}")
        lines += [f"Output: {link}" for link in links if link]
        lines.append("The links are signed and expire in a few minutes; get_generation gives fresh ones.")
        return _ok("\n".join(lines), data, *_image_blocks(generation))
    if generation.status in (Status.FAILED, Status.CANCELED):
        reason = generation.error_message or "The job did not finish."
        return _ok(f"The job {generation.get_status_display().lower()}: {reason} Its credits were returned.", data)
    return _ok(
        f"Still {generation.get_status_display().lower()} after waiting. Call get_generation with "
        f'generation_id "{generation.uuid}" (and wait_seconds up to {POLL_WAIT_MAX}) to get the result.',
        data,
    )


def _left(started: float) -> float:
    """What is left of the call's WAIT_SECONDS after the submit (which may have fetched a link):
    the whole call stays within the time assistants give a tool (and a web worker's timeout)."""
    return max(0.0, WAIT_SECONDS - (time.monotonic() - started))


def _still_there(generation) -> bool:
    from generation.models import Generation

    return Generation.objects.filter(pk=generation.pk, deleting_at__isnull=True).exists()


async def _wait(ctx: Context, caller: Caller, generation, seconds: float, *, fresh: bool = False) -> CallToolResult:
    """Hold the call until the job is final or `seconds` pass, telling the client how long it has
    been (progress notifications, when the client asked for them with a progress token). A person
    already holding API_WAITS_PER_USER waits gets the job as it stands at once (apiv1/holds.py)."""
    from apiv1.holds import wait_slot
    from generation.models import FINAL_STATUSES

    if generation.status not in FINAL_STATUSES and seconds > 0:
        with wait_slot(caller.user) as may_wait:
            if may_wait:
                generation = await _hold(ctx, generation, seconds)  # read afresh by the engine's wait
                fresh = True
    return await sync_to_async(_job_answer)(caller, generation, fresh=fresh)


async def _hold(ctx: Context, generation, seconds: float):
    from generation.models import FINAL_STATUSES

    started = time.monotonic()
    while generation.status not in FINAL_STATUSES:
        left = seconds - (time.monotonic() - started)
        if left <= 0:
            break
        generation = await sync_to_async(_engine().generation_wait)(generation, min(WAIT_SLICE, left))
        if generation.status not in FINAL_STATUSES and not await sync_to_async(_still_there)(generation):
            # Deleted (from the gallery, or the account) while we waited: stop now instead of
            # polling a row that is gone for the rest of the call.
            raise ToolRefused("This generation was deleted while it ran.", type="not_found")
        elapsed = min(seconds, time.monotonic() - started)
        await ctx.report_progress(elapsed, seconds, f"{generation.get_status_display()} ({elapsed:.0f} s)")
    return generation


# --- tools -------------------------------------------------------------------------------------------


def _reading(title: str) -> ToolAnnotations:
    # Reads the person's own account: no change anywhere, same answer when repeated.
    return ToolAnnotations(
        title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )


def _spending(title: str) -> ToolAnnotations:
    # Spends credits and makes a new job each time: not read-only, not idempotent; nothing is
    # destroyed; open world (it may fetch an image link from the internet, or run at a provider).
    return ToolAnnotations(
        title=title, read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    )


STYLES = [name for name in STYLE_PRESETS if name != "none"]
KindName = Literal["text_to_image", "image_to_image", "image_to_3d"]
StatusName = Literal["queued", "running", "succeeded", "failed", "canceled"]
ModelSlug = Annotated[
    str | None,
    Field(description="A model id from list_models (default: the first model of this kind listed there)."),
]
AspectRatio = Annotated[str | None, Field(description="e.g. 1:1, 16:9, 9:16; list_models shows each model's choices.")]
Seed = Annotated[int | None, Field(description="Repeat a result by giving the same seed.", ge=0, le=2147483647)]
ImageUrl = Annotated[str, Field(description="A public http(s) link to a PNG, JPEG or WebP picture.", max_length=2048)]


@server.tool(
    title="List models",
    description="The models you can use, with their kind (text_to_image, image_to_image, image_to_3d), "
    "the parameters each accepts and the credits one run costs.",
    annotations=_reading("List models"),
)
async def list_models(
    kind: Annotated[KindName | None, Field(description="Only models of this kind.")] = None,
) -> CallToolResult:
    async def call():
        models = await sync_to_async(_engine().catalog_list)()
        if kind:
            models = [model for model in models if model.get("kind") == kind]
        return _ok(f"{len(models)} model(s).", {"models": models})

    return await _run(call)


@server.tool(
    title="Generate an image (spends credits)",
    description="Make a new image from a text prompt. Spends the model's credits (see list_models). "
    f"Waits up to {WAIT_SECONDS} s and returns the picture and a signed link; a job still running "
    "comes back with its id for get_generation.",
    annotations=_spending("Generate an image (spends credits)"),
)
async def generate_image(
    ctx: Context,
    prompt: Annotated[str, Field(description="What the picture shows.", max_length=2000)],
    model: ModelSlug = None,
    aspect_ratio: AspectRatio = None,
    style: Annotated[str | None, Field(description=f"A style preset: {', '.join(STYLES)}.")] = None,
    negative_prompt: Annotated[
        str | None, Field(description="What to keep out of the picture.", max_length=2000)
    ] = None,
    seed: Seed = None,
) -> CallToolResult:
    async def call():
        started = time.monotonic()
        caller = _caller(ctx)
        params = {"aspect_ratio": aspect_ratio, "style": style, "negative_prompt": negative_prompt, "seed": seed}
        generation = await sync_to_async(_submit)(
            caller, kind="text_to_image", model=model, prompt=prompt, params=params
        )
        return await _wait(ctx, caller, generation, _left(started))

    return await _run(call)


@server.tool(
    title="Edit an image (spends credits)",
    description="Change a picture (given by link) as the prompt says. Spends the model's credits (see "
    f"list_models). Waits up to {WAIT_SECONDS} s and returns the new picture and a signed link.",
    annotations=_spending("Edit an image (spends credits)"),
)
async def edit_image(
    ctx: Context,
    image_url: ImageUrl,
    prompt: Annotated[str, Field(description="What to change.", max_length=2000)],
    model: ModelSlug = None,
    strength: Annotated[
        float | None, Field(description="How far from the original, 0 to 1 (models that accept it).", ge=0, le=1)
    ] = None,
    aspect_ratio: AspectRatio = None,
    seed: Seed = None,
) -> CallToolResult:
    async def call():
        started = time.monotonic()
        caller = _caller(ctx)
        params = {"strength": strength, "aspect_ratio": aspect_ratio, "seed": seed}
        generation = await sync_to_async(_submit)(
            caller, kind="image_to_image", model=model, prompt=prompt, params=params, image_url=image_url
        )
        return await _wait(ctx, caller, generation, _left(started))

    return await _run(call)


@server.tool(
    title="Make a 3D model from an image (spends credits)",
    description="Turn a picture (given by link) into a 3D model (GLB). Spends the model's credits (see "
    f"list_models). Waits up to {WAIT_SECONDS} s; returns a viewer link that opens without signing in, "
    "the GLB link and a preview picture.",
    annotations=_spending("Make a 3D model from an image (spends credits)"),
)
async def image_to_3d(
    ctx: Context,
    image_url: ImageUrl,
    model: ModelSlug = None,
    seed: Seed = None,
) -> CallToolResult:
    async def call():
        started = time.monotonic()
        caller = _caller(ctx)
        generation = await sync_to_async(_submit)(
            caller, kind="image_to_3d", model=model, prompt="", params={"seed": seed}, image_url=image_url
        )
        return await _wait(ctx, caller, generation, _left(started))

    return await _run(call)


@server.tool(
    title="Get a generation",
    description="One of your generations by id: status, fresh signed output links (and the 3D viewer "
    "link), the picture when it is done. wait_seconds holds the call until the job finishes "
    f"(up to {POLL_WAIT_MAX}).",
    annotations=_reading("Get a generation"),
)
async def get_generation(
    ctx: Context,
    generation_id: Annotated[str, Field(description="The id a generation tool or list_generations returned.")],
    wait_seconds: Annotated[
        int, Field(description="Wait this long for a running job to finish.", ge=0, le=POLL_WAIT_MAX)
    ] = 0,
) -> CallToolResult:
    async def call():
        caller = _caller(ctx)
        generation = await sync_to_async(_engine().generation_get)(user=caller.user, generation_id=generation_id)
        return await _wait(ctx, caller, generation, wait_seconds, fresh=True)

    return await _run(call)


@server.tool(
    title="List generations",
    description="Your generations, newest first, with status and signed output links. Pass next_cursor "
    "back as cursor for the next page.",
    annotations=_reading("List generations"),
)
async def list_generations(
    ctx: Context,
    cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
    limit: Annotated[int, Field(description="How many (1-50).", ge=1, le=50)] = 20,
    kind: Annotated[KindName | None, Field(description="Only this kind.")] = None,
    status: Annotated[StatusName | None, Field(description="Only this status.")] = None,
) -> CallToolResult:
    async def call():
        caller = _caller(ctx)

        def page():
            engine = _engine()
            items, next_cursor = engine.generation_list(
                user=caller.user, cursor=cursor or "", limit=limit, kind=kind or "", status=status or ""
            )
            return [engine.generation_json(g, request=caller.request) for g in items], next_cursor

        items, next_cursor = await sync_to_async(page)()
        data = {"items": items, "next_cursor": next_cursor}
        more = " More with cursor=next_cursor." if next_cursor else ""
        return _ok(f"{len(items)} generation(s).{more}", data)

    return await _run(call)


@server.tool(
    title="Get credits",
    description="Your credit balance (and any debt) and your plan.",
    annotations=_reading("Get credits"),
)
async def get_credits(ctx: Context) -> CallToolResult:
    async def call():
        caller = _caller(ctx)
        data = await sync_to_async(_engine().credits_json)(caller.user)
        return _ok(f"Balance: {data.get('balance', data)} credits.", data)

    return await _run(call)
