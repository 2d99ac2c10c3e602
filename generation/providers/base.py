"""The one small interface every provider implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.http import HttpRequest

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

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


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
        raise NotImplementedError


class WebhookRejected(Exception):
    """A webhook we refuse: bad signature, stale timestamp, malformed body."""
