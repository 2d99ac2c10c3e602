"""API v1's generation endpoints: models, and generations (create, list, get, cancel, delete).

Thin: each handler parses, calls `apiv1.engine` (shared with the MCP server) and serializes.
Errors are the services' ApplicationErrors, answered as application/problem+json by the one
handler in `accounts.api.api_errors_install`. The OpenAPI document is written for ChatGPT's GPT
Actions as much as for people: operationIds, short summaries, examples, and
`x-openai-isConsequential` on the calls that spend or destroy.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, Header, Path, Query, Router, Schema, Status

from accounts.api import Problem, generate_auth, read_auth
from apiv1 import engine
from apiv1.holds import wait_slot

router = Router(tags=["generations"])

KindName = Literal["text_to_image", "image_to_image", "image_to_3d"]
StatusName = Literal["queued", "running", "succeeded", "failed", "canceled"]


# --- schemas -------------------------------------------------------------------------------------------------


class ParameterOut(Schema):
    name: str
    type: str = Field(description="text, choice, int, float, bool, or image (give image_url / openaiFileIdRefs).")
    required: bool
    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    default: Any = None
    max_length: int | None = None
    description: str | None = None


class ModelOut(Schema):
    slug: str = Field(description="Pass this as `model` to createGeneration.")
    title: str
    description: str
    kind: KindName
    credit_cost: int = Field(description="Credits per result (num_outputs results cost that many times).")
    pro_only: bool
    parameters: list[ParameterOut]


class ModelsOut(Schema):
    models: list[ModelOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "models": [
                        {
                            "slug": "local-canvas",
                            "title": "Atelier Canvas (offline)",
                            "description": "Abstract pictures painted from your words.",
                            "kind": "text_to_image",
                            "credit_cost": 1,
                            "pro_only": False,
                            "parameters": [
                                {"name": "prompt", "type": "text", "required": True, "max_length": 2000},
                                {
                                    "name": "aspect_ratio",
                                    "type": "choice",
                                    "required": False,
                                    "choices": ["1:1", "16:9", "9:16"],
                                    "default": "1:1",
                                },
                            ],
                        }
                    ]
                }
            ]
        }
    }


class OutputOut(Schema):
    url: str = Field(description="Short-lived signed link to the file (minutes): fetch or show it now.")
    mime_type: str
    width: int | None = None
    height: int | None = None
    bytes: int


GENERATION_EXAMPLE = {
    "id": "0b7e6a43-5a8c-4d53-9a57-2a4f1c7e9d21",
    "status": "succeeded",
    "kind": "text_to_image",
    "model": "local-canvas",
    "prompt": "a red fox in the snow, watercolor",
    "negative_prompt": "",
    "params": {"aspect_ratio": "16:9", "style": "none", "seed": 42},
    "cost": 1,
    "source": "api",
    "created_at": "2026-11-25T14:03:12.120000+00:00",
    "finished_at": "2026-11-25T14:03:13.480000+00:00",
    "error": None,
    "outputs": [
        {
            "url": "https://atelier.example/files/eyJrIjoi.../",
            "mime_type": "image/png",
            "width": 1024,
            "height": 576,
            "bytes": 412345,
        }
    ],
    "viewer_url": None,
    "web_url": "https://atelier.example/g/0b7e6a43-5a8c-4d53-9a57-2a4f1c7e9d21/",
}


class GenerationOut(Schema):
    id: uuid.UUID
    status: StatusName
    kind: KindName
    model: str
    prompt: str
    negative_prompt: str
    params: dict[str, Any]
    cost: int = Field(description="Credits charged (given back if it fails or is canceled).")
    source: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None = Field(description="Why it failed, in a sentence for the person.")
    outputs: list[OutputOut]
    viewer_url: str | None = Field(
        description="3D results: a page that shows the model without sign-in for a limited time (signed link)."
    )
    web_url: str = Field(description="The generation's page on Atelier (for its owner, signed in).")

    model_config = {"json_schema_extra": {"examples": [GENERATION_EXAMPLE]}}


class GenerationListOut(Schema):
    items: list[GenerationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last.")

    model_config = {"json_schema_extra": {"examples": [{"items": [GENERATION_EXAMPLE], "next_cursor": None}]}}


class FileRef(Schema):
    """A file from the ChatGPT conversation, as GPT Actions send it."""

    name: str = Field("", max_length=500)
    id: str = Field("", max_length=200)
    mime_type: str = Field("", max_length=200)
    download_link: str = Field(max_length=4096, description="Where to fetch the file (valid five minutes).")


class GenerationIn(Schema):
    model: str = Field(min_length=1, max_length=50, description="A model's slug from listModels, e.g. local-canvas.")
    prompt: str = Field(
        "", max_length=2000, description="What to make (text-to-image) or what to change (edit). Unused for 3D."
    )
    negative_prompt: str = Field("", max_length=1000, description="What to keep out, where the model takes it.")
    aspect_ratio: str | None = Field(None, max_length=20, description="One of the model's choices, e.g. 16:9.")
    style: str | None = Field(None, max_length=40, description="A style preset the model offers, e.g. watercolor.")
    seed: int | None = Field(None, ge=0, le=2147483647, description="Same seed and settings, same picture.")
    strength: float | None = Field(None, ge=0, le=1, description="Edits: how far the picture may move (0-1).")
    num_outputs: int | None = Field(None, ge=1, le=4, description="Variations, where the model offers them.")
    image_url: str = Field(
        "", max_length=2048, description="Edits and 3D: a public http(s) link to the input picture (PNG, JPEG, WebP)."
    )
    openaiFileIdRefs: list[FileRef] = Field(  # noqa: N815 - the name ChatGPT fills in
        default_factory=list,
        max_length=10,
        description="ChatGPT only: the picture the person attached in the chat, for an edit or a 3D model. "
        "Send one image file; the first image is used. Leave empty for text-to-image.",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"model": "local-canvas", "prompt": "a red fox in the snow, watercolor", "aspect_ratio": "16:9"},
                {"model": "local-relief", "image_url": "https://example.com/chair.png"},
            ]
        }
    }


# --- Prefer: wait -------------------------------------------------------------------------------------------


_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d{1,6})\"?", re.IGNORECASE)
_ASYNC = re.compile(r"(?:^|[,;\s])respond-async(?:$|[,;\s])", re.IGNORECASE)


def _wait_of(prefer: str | None, wait: int | None) -> tuple[float | None, bool]:
    """Seconds to hold the request (RFC 7240 `Prefer: wait=N`, or the `wait` query parameter that
    GPT Actions can send), clamped to 40; None for "answer at once". True when it came from Prefer
    (so the answer says `Preference-Applied`)."""
    prefer = prefer or ""
    if _ASYNC.search(prefer):
        return None, False
    match = _WAIT.search(prefer)
    if match:
        return min(float(match.group(1)), engine.MAX_WAIT_SECONDS), True
    if wait is not None:
        # Clamped as an integer first: a huge value (pydantic takes any size) must not overflow float.
        return float(min(max(wait, 0), engine.MAX_WAIT_SECONDS)), False
    return None, False


def _answer(request: HttpRequest, response: HttpResponse, generation, *, seconds, from_prefer, started: float):
    """200 with the final result, or 202 with the job so far and where to poll (`Location`).

    The wait counts from the start of the request, so fetching an input picture is part of it
    and a `wait=40` call answers within about 40 s (GPT Actions give up at 45)."""
    if seconds is not None and not generation.is_final:
        with wait_slot(request.auth) as may_wait:
            if may_wait:
                generation = engine.generation_wait(generation, max(0.0, seconds - (time.monotonic() - started)))
            else:
                seconds = None  # this person already holds API_WAITS_PER_USER waits: 202 at once
    if seconds is not None and from_prefer:
        response["Preference-Applied"] = f"wait={int(seconds)}"
    if seconds is not None and generation.is_final:
        return _generation_answer(request, response, generation, status=200)
    response["Location"] = request.build_absolute_uri(
        reverse("api:get_generation", kwargs={"generation_id": generation.uuid})
    )
    response["Retry-After"] = "2"
    return _generation_answer(request, response, generation, status=202)


_PASSED_ON = ("Location", "Retry-After", "Preference-Applied", "Idempotent-Replayed")


def _generation_answer(request: HttpRequest, response: HttpResponse, generation, *, status: int) -> HttpResponse:
    """One generation as ninja would write GenerationOut (the engine's text, `generation_text`),
    without ninja validating our own answer again field by field; the headers set on ninja's
    temporal `response` come along."""
    answer = HttpResponse(
        engine.generation_text(generation, request=request),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    for name in _PASSED_ON:
        if name in response:
            answer[name] = response[name]
    return answer


PREFER = Header(
    None,
    alias="Prefer",
    description="`wait=N` (seconds, at most 40): hold the answer until the job is final or N passes, then "
    "answer 200 with the result or 202 with the job. Without it, 202 at once.",
)
WAIT = Query(
    None,
    ge=0,
    description="Same as `Prefer: wait=N` for clients that cannot set headers (GPT Actions): seconds to "
    "wait for the result, at most 40 (bigger values count as 40).",
)

GENERATION_ID = Path(description="The generation's id (from createGeneration or listGenerations).")
KIND_FILTER = Query(None, description="Only this kind.")
STATUS_FILTER = Query(None, description="Only this status.")

ACCEPTED_HEADERS = {
    "Location": {"description": "Where to poll the job (getGeneration).", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before polling.", "schema": {"type": "string"}},
}
RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds until calls are allowed again.", "schema": {"type": "string"}}
}


def _problems(*codes: int) -> dict:
    return dict.fromkeys(codes, Problem)


def _extra(consequential: bool, **responses: dict) -> dict:
    # Integer status keys, as ninja writes them: the two are merged, not written twice.
    extra: dict = {"x-openai-isConsequential": consequential, "responses": {429: {"headers": RATE_LIMIT_HEADERS}}}
    for code, headers in responses.items():
        extra["responses"][int(code.lstrip("_"))] = {"headers": headers}
    return extra


# --- endpoints ---------------------------------------------------------------------------------------------


@router.get(
    "/models",
    response={200: ModelsOut, **_problems(401, 403, 429)},
    auth=read_auth,
    operation_id="listModels",
    summary="List the models you can use, with their kinds, parameters and credit costs",
    description="Models for text-to-image, image edits (image_to_image) and image-to-3D. Pick one's slug for "
    "createGeneration; parameters list what it accepts (choices, limits, defaults).",
    openapi_extra=_extra(False),
)
def list_models(request):
    return Status(200, {"models": engine.catalog_list()})


@router.post(
    "/generations",
    response={200: GenerationOut, 202: GenerationOut, **_problems(400, 401, 402, 403, 409, 422, 429, 502, 503)},
    auth=generate_auth,
    operation_id="createGeneration",
    summary="Start a generation (image from text, edit a picture, or 3D model from a picture); spends credits",
    description="Charges the model's credit cost. Pass wait=40 (or Prefer: wait=40) to get the finished result "
    "in the answer (200); otherwise, or if it takes longer, 202 with the job to poll with getGeneration.",
    openapi_extra=_extra(True, _202=ACCEPTED_HEADERS),
)
def create_generation(
    request,
    response: HttpResponse,
    payload: GenerationIn,
    wait: int | None = WAIT,
    prefer: str | None = PREFER,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        max_length=255,
        description="Any unique string per intended job (e.g. a UUID): retrying with the same key returns the "
        "first job and charges once (for 24 hours).",
    ),
):
    started = time.monotonic()
    seconds, from_prefer = _wait_of(prefer, wait)  # read before anything is charged
    values = {
        name: value
        for name, value in payload.dict(
            include={"negative_prompt", "aspect_ratio", "style", "seed", "strength", "num_outputs"}
        ).items()
        if value not in (None, "")
    }
    generation, created = engine.generation_create(
        user=request.auth,
        model=payload.model,
        prompt=payload.prompt,
        params=values,
        image_url=payload.image_url,
        file_refs=[ref.dict() for ref in payload.openaiFileIdRefs],
        source=engine.source_for_request(request),
        idempotency_key=idempotency_key or "",
        request=request,
    )
    if not created:
        response["Idempotent-Replayed"] = "true"
    return _answer(request, response, generation, seconds=seconds, from_prefer=from_prefer, started=started)


@router.get(
    "/generations",
    response={200: GenerationListOut, **_problems(401, 403, 422, 429)},
    auth=read_auth,
    operation_id="listGenerations",
    summary="List your generations, newest first, a page at a time",
    description="Filter by kind or status. Pass next_cursor from one page as cursor to get the next (older) one. "
    "A page may hold fewer items than limit (answers stay under 60,000 characters).",
    openapi_extra=_extra(False),
)
def list_generations(
    request,
    cursor: str = Query("", max_length=500, description="next_cursor from the previous page; empty for the first."),
    limit: int = Query(20, ge=1, le=engine.LIST_LIMIT_MAX, description="Items per page (1-50)."),
    kind: KindName | None = KIND_FILTER,
    status: StatusName | None = STATUS_FILTER,
):
    # Written by the engine as ninja would write GenerationListOut, without validating our own
    # page again field by field (that took as long as reading and signing it).
    page = engine.generation_page_json(
        user=request.auth, cursor=cursor, limit=limit, kind=kind or "", status=status or "", request=request
    )
    return HttpResponse(page, content_type="application/json; charset=utf-8")


@router.get(
    "/generations/{generation_id}",
    response={200: GenerationOut, 202: GenerationOut, **_problems(401, 403, 404, 422, 429)},
    auth=read_auth,
    operation_id="getGeneration",
    summary="Get one generation: its status, and when done, links to its files (and 3D viewer)",
    description="Pass wait=N (or Prefer: wait=N, N up to 40) to hold the answer until the job is final: 200 when "
    "final, else 202. Output links are signed and short-lived: fetch again for fresh ones.",
    openapi_extra=_extra(False, _202=ACCEPTED_HEADERS),
)
def get_generation(
    request,
    response: HttpResponse,
    generation_id: uuid.UUID = GENERATION_ID,
    wait: int | None = WAIT,
    prefer: str | None = PREFER,
):
    started = time.monotonic()
    generation = engine.generation_get(user=request.auth, generation_id=generation_id)
    seconds, from_prefer = _wait_of(prefer, wait)
    if seconds is None:
        return _generation_answer(request, response, generation, status=200)
    return _answer(request, response, generation, seconds=seconds, from_prefer=from_prefer, started=started)


@router.post(
    "/generations/{generation_id}/cancel",
    response={200: GenerationOut, **_problems(401, 403, 404, 409, 422, 429)},
    auth=generate_auth,
    operation_id="cancelGeneration",
    summary="Cancel a queued or running generation; its credits come back",
    description="Only while it is queued or running (409 once it is final).",
    openapi_extra=_extra(True),
)
def cancel_generation(request, generation_id: uuid.UUID = GENERATION_ID):
    generation = engine.generation_cancel(user=request.auth, generation_id=generation_id)
    return Status(200, engine.generation_json(generation, request=request))


@router.delete(
    "/generations/{generation_id}",
    response={204: None, **_problems(401, 403, 404, 422, 429)},
    auth=generate_auth,
    operation_id="deleteGeneration",
    summary="Delete a generation and its files for good",
    description="A running one is canceled and refunded first. It disappears from listings at once; the files "
    "go within moments. This cannot be undone.",
    openapi_extra=_extra(True),
)
def delete_generation(request, generation_id: uuid.UUID = GENERATION_ID):
    engine.generation_delete(user=request.auth, generation_id=generation_id)
    return Status(204, None)
