"""Replicate, through the official `replicate` client. Nothing else imports the SDK.

Errors are translated into ProviderError with `retryable` and `retry_after` so the task can
apply one retry policy: 5xx, 429 and network timeouts are worth retrying, 4xx are not.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterator
from urllib.parse import quote, unquote_to_bytes

import httpx
import replicate
import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from generation.errors import ProviderError
from generation.providers.base import (
    CANCELED,
    FAILED,
    PROCESSING,
    STARTING,
    SUCCEEDED,
    OutputRef,
    PredictionState,
    Provider,
    StartRequest,
    WebhookRejected,
)

# Replicate's statuses → ours. "aborted" (stopped before it started) counts as canceled.
_STATUS = {
    "starting": STARTING,
    "processing": PROCESSING,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
    "aborted": CANCELED,
}

_retry_after = threading.local()
MAX_INLINE_RETRY_AFTER = 30.0


class _RetryAfterTransport(httpx.HTTPTransport):
    """Remembers the Retry-After of the last 429/503, which ReplicateError does not carry."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        value = response.headers.get("retry-after", "")
        seconds = float(value) if value.replace(".", "", 1).isdigit() else None
        _retry_after.value = seconds
        if seconds is not None and seconds > MAX_INLINE_RETRY_AFTER:
            # The SDK sleeps Retry-After inside the worker before retrying a GET; past this cap we
            # would rather let the task retry later than hold a worker slot.
            response.headers["retry-after"] = str(int(MAX_INLINE_RETRY_AFTER))
        return response


def _client() -> replicate.Client:
    timeout = httpx.Timeout(settings.REPLICATE_TIMEOUT, connect=5.0)
    kwargs = {"timeout": timeout, "transport": _RetryAfterTransport()}
    if settings.REPLICATE_BASE_URL:
        kwargs["base_url"] = settings.REPLICATE_BASE_URL
    return replicate.Client(api_token=settings.REPLICATE_API_TOKEN, **kwargs)


def _translate(exc: Exception) -> ProviderError:
    if isinstance(exc, ReplicateError):
        status = exc.status or 0
        if status == 429:
            retry_after = getattr(_retry_after, "value", None) or 10.0
            return ProviderError(
                "The model provider is busy; we'll try again shortly.",
                retryable=True,
                retry_after=retry_after,
                detail=f"429 {exc.detail}",
            )
        if status >= 500:
            return ProviderError(
                "The model provider had a problem; we'll try again shortly.",
                retryable=True,
                detail=f"{status} {exc.detail}",
            )
        return ProviderError(
            "The model provider refused this request.", retryable=False, detail=f"{status} {exc.title}: {exc.detail}"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError("The model provider did not answer in time.", retryable=True, detail=repr(exc))
    if isinstance(exc, httpx.TransportError):
        return ProviderError("We could not reach the model provider.", retryable=True, detail=repr(exc))
    raise exc


def _state(prediction) -> PredictionState:
    data = prediction if isinstance(prediction, dict) else prediction.dict()
    status = _STATUS.get(str(data.get("status")), PROCESSING)
    outputs = [OutputRef(url=url) for url in _urls(data.get("output"))] if status == SUCCEEDED else []
    error = data.get("error") or ""
    return PredictionState(id=str(data["id"]), status=status, outputs=outputs, error=str(error))


def _urls(output) -> list[str]:
    """Output URLs in order, whatever shape the model returns (a URL, a list, or a dict).

    For dicts (e.g. TRELLIS: model_file, color_video, ...) a GLB model file comes first.
    """
    if output is None:
        return []
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://", "data:")) else []
    if isinstance(output, list):
        return [url for item in output for url in _urls(item)]
    if isinstance(output, dict):
        ordered = sorted(output.items(), key=lambda kv: (kv[0] != "model_file", kv[0]))
        return [url for _, value in ordered for url in _urls(value)]
    return []


class ReplicateProvider(Provider):
    name = "replicate"

    def start(self, request: StartRequest) -> PredictionState:
        client = _client()
        kwargs: dict = {"input": request.input}
        if request.webhook_url:
            kwargs["webhook"] = request.webhook_url
            kwargs["webhook_events_filter"] = ["completed"]
        try:
            if request.version:
                # Replicate accepts "owner/name:version" here; the name makes logs and dashboards readable.
                prediction = client.predictions.create(version=f"{request.model}:{request.version}", **kwargs)
            else:
                prediction = client.predictions.create(model=request.model, **kwargs)
        except (ReplicateError, httpx.HTTPError) as exc:
            raise _translate(exc) from exc
        return _state(prediction)

    def fetch(self, prediction_id: str) -> PredictionState:
        # Read the raw JSON rather than `predictions.get`: the client's model only admits five
        # statuses and fails validation on "aborted" (stopped before it started), which is a
        # terminal state we must act on.
        try:
            response = _client()._request("GET", f"/v1/predictions/{quote(prediction_id, safe='')}")
            return _state(response.json())
        except (ReplicateError, httpx.HTTPError) as exc:
            raise _translate(exc) from exc
        except (ValueError, KeyError) as exc:
            raise ProviderError(
                "The model provider sent an answer we could not read.", retryable=True, detail=repr(exc)
            ) from exc

    def cancel(self, prediction_id: str) -> None:
        try:
            _client().predictions.cancel(prediction_id)
        except (ReplicateError, httpx.HTTPError) as exc:
            raise _translate(exc) from exc

    def open_output(self, ref: OutputRef) -> Iterator[bytes]:
        if ref.url.startswith("data:"):
            return iter([_decode_data_url(ref.url)])
        try:
            response = requests.get(ref.url, stream=True, timeout=(5, settings.REPLICATE_TIMEOUT))
        except requests.RequestException as exc:
            raise ProviderError(
                "We could not download the result.", retryable=True, detail=f"GET {ref.url}: {exc!r}"
            ) from exc
        if response.status_code in (404, 410):
            response.close()
            raise ProviderError(
                "The result expired at the provider before we could save it.",
                retryable=False,
                detail=f"GET {ref.url}: {response.status_code}",
            )
        if response.status_code != 200:
            response.close()
            raise ProviderError(
                "We could not download the result.",
                retryable=response.status_code >= 500,
                detail=f"GET {ref.url}: {response.status_code}",
            )
        return _stream(response)

    def parse_webhook(self, request: HttpRequest) -> tuple[str, PredictionState]:
        body = request.body.decode("utf-8", errors="replace")
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            Webhooks.validate(
                headers=headers,
                body=body,
                secret=WebhookSigningSecret(key=webhook_secret()),
                tolerance=settings.REPLICATE_WEBHOOK_TOLERANCE,
            )
        except ValueError as exc:  # the SDK's WebhookValidationError family, bad base64, bad timestamp
            raise WebhookRejected(f"{type(exc).__name__}: {exc}") from exc
        try:
            data = json.loads(body)
            return headers["webhook-id"], _state(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"malformed body: {exc!r}") from exc


def _decode_data_url(url: str) -> bytes:
    """Some models answer small outputs inline as `data:<mime>;base64,<bytes>`."""
    header, _, payload = url.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError("The model returned a result we could not read.", detail=f"bad data URL: {exc}") from exc


def _stream(response: requests.Response) -> Iterator[bytes]:
    with response:
        yield from response.iter_content(chunk_size=256 * 1024)


def webhook_secret() -> str:
    """The signing secret: from settings, else asked from Replicate once and cached."""
    if settings.REPLICATE_WEBHOOK_SECRET:
        return settings.REPLICATE_WEBHOOK_SECRET

    def fetch() -> str:
        try:
            return _client().webhooks.default.secret().key
        except (ReplicateError, httpx.HTTPError) as exc:
            raise WebhookRejected(f"could not fetch the signing secret: {exc!r}") from exc

    return cache.get_or_set("replicate:webhook-secret", fetch, timeout=3600)
