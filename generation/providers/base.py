"""The one small interface every provider implements.

Everything that differs between providers is decided here, never by a provider's name in the
services: how the request is built from a job (`build_request`), how an input image travels
(`check_input_image` at submit time, `build_request` in the worker), whether the provider calls
us back (`webhook_url`), and whether stopping a prediction remotely means anything
(`can_cancel`). A new provider is one module with a subclass, one line in
`generation.providers.REGISTRY`, and a catalog row naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from generation.inputs import CleanImage
    from generation.models import CatalogEntry

# Provider states, mapped onto ours by the services.
STARTING, PROCESSING, SUCCEEDED, FAILED, CANCELED = "starting", "processing", "succeeded", "failed", "canceled"
TERMINAL = {SUCCEEDED, FAILED, CANCELED}


@dataclass(frozen=True)
class OutputRef:
    """One result: a URL to copy from before it expires, or bytes the local provider made."""

    url: str = ""
    content: bytes | None = None
    mime_hint: str = ""


@dataclass(frozen=True)
class PredictionState:
    id: str
    status: str  # one of the constants above
    outputs: list[OutputRef] = field(default_factory=list)
    error: str = ""  # the provider's own words (for staff)
    version: str = ""  # the model version that ran, when the provider says (for reproducibility)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class InputImage:
    """Our stored copy of a job's input image. Reading it costs a storage round trip, so a
    provider reads only what it sends: the bytes (local work) or a URL (hosted models)."""

    key: str
    mime: str
    width: int | None
    height: int | None
    read: Callable[[], bytes]


@dataclass(frozen=True)
class Job:
    """What the worker knows about one generation, in provider-neutral terms."""

    entry: CatalogEntry  # the catalog row: provider_model, provider_version, input_map, fixed_input
    prompt: str
    negative_prompt: str
    params: dict  # validated parameters (aspect_ratio, style, seed, strength, ...)
    seed: int
    input_image: InputImage | None
    webhook_url: str | None  # where to call us back, when this provider does webhooks and they are on


@dataclass(frozen=True)
class StartRequest:
    model: str  # "owner/name"
    version: str  # "" for official models
    input: dict  # provider input, already mapped
    webhook_url: str | None
    input_image: bytes | None  # our stored copy, for providers that work on bytes (local)
    seed: int


class Provider:
    name: str
    # True when cancelling at the provider stops work (and cost); False for providers whose work
    # is over when `start` returns, so nothing is ever sent.
    can_cancel: bool = False

    def available(self) -> bool:
        """Configured here (keys present); the catalog only offers models of available providers."""
        return True

    def webhook_url(self) -> str | None:
        """Where this provider should call us back when a prediction ends, or None: then the
        worker polls (and the beat poller is the fallback)."""
        return None

    @property
    def supports_webhooks(self) -> bool:
        return self.webhook_url() is not None

    def check_input_image(self, image: CleanImage) -> None:
        """At submit time: raise InvalidInput if this image cannot be passed to the provider
        (so nothing is charged). The worker never raises InvalidInput."""
        return None

    def build_request(self, job: Job) -> StartRequest:
        """The provider's request for one job (input mapping, how the input image travels)."""
        raise NotImplementedError

    def start(self, request: StartRequest) -> PredictionState:
        raise NotImplementedError

    def fetch(self, prediction_id: str) -> PredictionState:
        raise NotImplementedError

    def cancel(self, prediction_id: str) -> None:
        raise NotImplementedError

    def open_output(self, ref: OutputRef) -> Iterator[bytes]:
        """Stream one output's bytes. Raises ProviderError (e.g. the output expired)."""
        raise NotImplementedError

    def parse_webhook(self, request: HttpRequest) -> tuple[str, PredictionState]:
        """Verify a webhook delivery; returns (delivery id, state). Raises WebhookRejected."""
        raise WebhookRejected(f"{self.name} does not send webhooks")


class WebhookRejected(Exception):
    """A webhook we refuse: bad signature, stale timestamp, malformed body."""
