"""Replicate, through the official `replicate` client. Nothing else imports the SDK.

Errors are translated into ProviderError with `retryable` and `retry_after` so the task can
apply one retry policy: 5xx, 429 and network timeouts are worth retrying, 4xx are not.

Predictions are read as raw JSON (`_api`), never through the SDK's `Prediction` model: that
model admits five statuses and requires `model`, so Replicate's `aborted` status or a body
without `model` (both in Replicate's recorded responses) would raise an uncaught ValueError.
The SDK offers no public call that returns the body unparsed, so `_api` is the one place that
uses its `_request`; everything else (the webhook secret, signature checks) uses public calls.

Connections are reused: one SDK client (one httpx pool) per configuration and one httpx
client for downloading outputs, shared by the worker's threads.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Iterator
from functools import cache
from urllib.parse import quote, unquote_to_bytes, urlsplit

import httpx
import replicate
from django.conf import settings
from django.core.cache import cache as django_cache
from django.http import HttpRequest
from django.urls import reverse
from PIL import Image, UnidentifiedImageError
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from generation import catalog, storage
from generation.errors import InvalidInput, ProviderError
from generation.providers.base import (
    CANCELED,
    FAILED,
    PROCESSING,
    STARTING,
    SUCCEEDED,
    InputImage,
    Job,
    OutputRef,
    PredictionState,
    Provider,
    StartRequest,
    WebhookRejected,
)

logger = logging.getLogger(__name__)

# Replicate's statuses → ours. "aborted" (stopped before it started) counts as canceled.
_STATUS = {
    "starting": STARTING,
    "processing": PROCESSING,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
    "aborted": CANCELED,
}
# Replicate's prediction ids are short lowercase alphanumerics; anything else is not theirs
# (and a NUL or a slash must never reach a query or a URL path).
_PREDICTION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# Models that answer an object name their main file; the rest are previews (e.g. TRELLIS:
# model_file is the GLB, color_video a turntable video that must never pass for the model).
MAIN_OUTPUT_KEYS = ("model_file",)

# Replicate documents data: URLs for input files up to 256 KB; larger ones must be URLs.
DATA_URL_MAX_BYTES = 256 * 1024

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
    return _shared_client(settings.REPLICATE_API_TOKEN, settings.REPLICATE_BASE_URL, settings.REPLICATE_TIMEOUT)


@cache
def _shared_client(token: str, base_url: str, timeout: float) -> replicate.Client:
    """One client per configuration: its httpx pool keeps connections to Replicate open."""
    kwargs = {"timeout": httpx.Timeout(timeout, connect=5.0), "transport": _RetryAfterTransport()}
    if base_url:
        kwargs["base_url"] = base_url
    return replicate.Client(api_token=token, **kwargs)


@cache
def _downloads(timeout: float) -> httpx.Client:
    """Output downloads (replicate.delivery), pooled and shared across the worker's threads."""
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0), follow_redirects=True)


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


def _api(method: str, path: str, *, body: dict | None = None) -> dict:
    """One call to Replicate's HTTP API, answered as raw JSON (a dict). Raises ProviderError."""
    kwargs = {"json": body} if body is not None else {}
    try:
        response = _client()._request(method, path, **kwargs)
    except (ReplicateError, httpx.HTTPError) as exc:
        raise _translate(exc) from exc
    try:
        data = response.json()
    except ValueError as exc:
        raise ProviderError(
            "The model provider sent an answer we could not read.",
            retryable=True,
            detail=f"{method} {path}: not JSON ({response.status_code})",
        ) from exc
    if not isinstance(data, dict):
        raise ProviderError(
            "The model provider sent an answer we could not read.",
            retryable=True,
            detail=f"{method} {path}: {type(data).__name__} instead of an object",
        )
    return data


def _state(data: dict) -> PredictionState:
    """Our view of one prediction body (API answer or webhook). Raises ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError(f"prediction is a {type(data).__name__}, not an object")
    prediction_id = data.get("id")
    if not isinstance(prediction_id, str) or not _PREDICTION_ID.fullmatch(prediction_id):
        raise ValueError(f"prediction id {prediction_id!r} is not a Replicate id")
    raw_status = str(data.get("status"))
    status = _STATUS.get(raw_status)
    if status is None:
        logger.warning("prediction %s has an unknown status %r; treated as still running", prediction_id, raw_status)
        status = PROCESSING
    error = str(data.get("error") or "")
    outputs: list[OutputRef] = []
    if status == SUCCEEDED:
        urls, problem = _output_urls(data.get("output"))
        outputs = [OutputRef(url=url) for url in urls]
        error = error or problem
    # Official models answer "hidden" (no pinned version to report); keep only a real id.
    version = data.get("version")
    version = version if isinstance(version, str) and version != "hidden" else ""
    return PredictionState(id=prediction_id, status=status, outputs=outputs, error=error, version=version[:100])


def _output_urls(output) -> tuple[list[str], str]:
    """Output URLs in order, and what is wrong when there are none.

    A URL or a list of URLs (FLUX) is taken as is; an object (TRELLIS) gives only its main file,
    so a missing `model_file` is said, not papered over with the preview video.
    """
    if isinstance(output, dict):
        for key in MAIN_OUTPUT_KEYS:
            if key in output:
                urls = _urls(output[key])
                if urls:
                    return urls[:1], ""
                return [], f"succeeded without {key} (other outputs: {', '.join(sorted(output)) or 'none'})"
        return [], f"succeeded with an object output without {' / '.join(MAIN_OUTPUT_KEYS)}: {sorted(output)}"
    urls = _urls(output)
    return urls, "" if urls else f"succeeded without output ({type(output).__name__})"


def _urls(output) -> list[str]:
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://", "data:")) else []
    if isinstance(output, list):
        return [url for item in output for url in _urls(item)]
    return []


def _is_public_site(url: str) -> bool:
    """https and a name the internet can reach (not localhost, not a private address)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or host == "localhost" or host.endswith((".localhost", ".local")):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host


class ReplicateProvider(Provider):
    """Hosted models. Input images travel as URLs Replicate fetches (our presigned S3 URL, or a
    short-lived signed URL of our own site), else as a data: URL within Replicate's 256 KB limit.
    Webhooks when WEBHOOK_BASE_URL is set; predictions can be canceled remotely."""

    name = "replicate"
    can_cancel = True

    def available(self) -> bool:
        return bool(settings.REPLICATE_API_TOKEN)

    def webhook_url(self) -> str | None:
        if not settings.WEBHOOK_BASE_URL:
            return None
        return settings.WEBHOOK_BASE_URL.rstrip("/") + reverse("generation:replicate_webhook")

    # --- input images ----------------------------------------------------------------------

    def check_input_image(self, image) -> None:
        if _linkable() or len(image.content) <= DATA_URL_MAX_BYTES:
            return
        if _small_copy(image.content) is None:
            raise InvalidInput(
                "This picture is too detailed to send to the model from this server "
                f"(over {DATA_URL_MAX_BYTES // 1024} KB even when reduced). Try a smaller or simpler picture.",
                field="image",
            )

    def _image_reference(self, image: InputImage) -> str:
        """How the model gets our copy: a URL when Replicate can fetch one, else a data: URL."""
        if _linkable():
            url = storage.provider_url(image.key)
            if url:
                return url
        content = image.read()
        mime = image.mime
        if len(content) > DATA_URL_MAX_BYTES:
            small = _small_copy(content)
            if small is None:  # checked at submit time; only a changed setting gets here
                raise ProviderError(
                    "The input picture is too large to send to the model.",
                    retryable=False,
                    detail=f"input {len(content)} bytes, no copy under {DATA_URL_MAX_BYTES}",
                )
            content, mime = small
        return f"data:{mime};base64,{base64.b64encode(content).decode()}"

    # --- predictions -----------------------------------------------------------------------

    def build_request(self, job: Job) -> StartRequest:
        image_url = self._image_reference(job.input_image) if job.input_image else None
        payload = catalog.provider_input(
            job.entry, prompt=job.prompt, negative_prompt=job.negative_prompt, params=job.params, image_url=image_url
        )
        return StartRequest(
            model=job.entry.provider_model,
            version=job.entry.provider_version,
            input=payload,
            webhook_url=job.webhook_url,
            input_image=None,
            seed=job.seed,
        )

    def start(self, request: StartRequest) -> PredictionState:
        body: dict = {"input": request.input}
        if request.webhook_url:
            body["webhook"] = request.webhook_url
            body["webhook_events_filter"] = ["completed"]
        if request.version:
            # Replicate accepts "owner/name:version" here; the name makes logs and dashboards readable.
            body["version"] = f"{request.model}:{request.version}"
            path = "/v1/predictions"
        else:
            owner, _, name = request.model.partition("/")
            path = f"/v1/models/{quote(owner, safe='')}/{quote(name, safe='')}/predictions"
        data = _api("POST", path, body=body)
        try:
            return _state(data)
        except ValueError as exc:
            # Created (we were charged) but we cannot follow it: retrying would start another one.
            raise ProviderError(
                "The model provider sent an answer we could not read.", retryable=False, detail=f"create: {exc}"
            ) from exc

    def fetch(self, prediction_id: str) -> PredictionState:
        data = _api("GET", f"/v1/predictions/{quote(prediction_id, safe='')}")
        try:
            return _state(data)
        except ValueError as exc:
            raise ProviderError(
                "The model provider sent an answer we could not read.", retryable=True, detail=f"read: {exc}"
            ) from exc

    def cancel(self, prediction_id: str) -> None:
        # The answer's body does not matter (and may not be a prediction we can parse).
        _api("POST", f"/v1/predictions/{quote(prediction_id, safe='')}/cancel")

    def open_output(self, ref: OutputRef) -> Iterator[bytes]:
        if ref.url.startswith("data:"):
            return iter([_decode_data_url(ref.url)])
        client = _downloads(settings.REPLICATE_TIMEOUT)
        try:
            response = client.send(client.build_request("GET", ref.url), stream=True)
        except httpx.HTTPError as exc:
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
        return _stream(response, ref.url)

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
            webhook_id = headers["webhook-id"]
            if "\x00" in webhook_id:
                raise ValueError("NUL in webhook-id")
            return webhook_id, _state(json.loads(body))
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"malformed body: {exc!r}") from exc


def _linkable() -> bool:
    """Can Replicate fetch our copy by URL? From S3 (presigned), or from our site when public."""
    return storage.provider_links_available(public_site=_is_public_site(settings.SITE_URL))


def _small_copy(content: bytes) -> tuple[bytes, str] | None:
    """A re-encoded copy under the data: URL limit (JPEG, or WebP where there is transparency),
    shrinking step by step; None if even the smallest step is too big."""
    try:
        with Image.open(io.BytesIO(content)) as opened:
            opened.load()
            has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
            image = opened.convert("RGBA" if has_alpha else "RGB")
    except (UnidentifiedImageError, OSError):
        return None
    fmt, mime = ("WEBP", "image/webp") if has_alpha else ("JPEG", "image/jpeg")
    for side in (max(image.size), 1536, 1024, 768, 512):
        if side > max(image.size):
            continue
        resized = image.copy()
        resized.thumbnail((side, side), Image.Resampling.LANCZOS)
        for quality in (90, 80, 70):
            buffer = io.BytesIO()
            resized.save(buffer, format=fmt, quality=quality)
            if buffer.tell() <= DATA_URL_MAX_BYTES:
                return buffer.getvalue(), mime
    return None


def _decode_data_url(url: str) -> bytes:
    """Some models answer small outputs inline as `data:<mime>;base64,<bytes>`."""
    header, _, payload = url.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError("The model returned a result we could not read.", detail=f"bad data URL: {exc}") from exc


def _stream(response: httpx.Response, url: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(chunk_size=256 * 1024)
    except httpx.HTTPError as exc:
        raise ProviderError("We could not download the result.", retryable=True, detail=f"GET {url}: {exc!r}") from exc
    finally:
        response.close()


def webhook_secret() -> str:
    """The signing secret: from settings, else asked from Replicate once and cached."""
    if settings.REPLICATE_WEBHOOK_SECRET:
        return settings.REPLICATE_WEBHOOK_SECRET

    def fetch() -> str:
        try:
            return _client().webhooks.default.secret().key
        except (ReplicateError, httpx.HTTPError) as exc:
            raise WebhookRejected(f"could not fetch the signing secret: {exc!r}") from exc

    return django_cache.get_or_set("replicate:webhook-secret", fetch, timeout=3600)
