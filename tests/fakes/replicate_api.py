"""A small server that speaks Replicate's predictions API (v1), for the real `replicate` client.

Routes, as the client calls them:
  POST /v1/models/{owner}/{name}/predictions   create (official model)
  POST /v1/predictions                         create (by version)
  GET  /v1/predictions/{id}                    read
  POST /v1/predictions/{id}/cancel             cancel
  GET  /v1/webhooks/default/secret             the webhook signing secret
  GET  /files/{id}/{name}                      output files (404 once "expired")

Behaviour per model is scripted with `script(...)`: how many reads before a final state,
the final state, queued HTTP errors (500, 429 with Retry-After, slow answers), expired
outputs, failed downloads. Webhooks, when the create call asked for one, are signed exactly as
Replicate signs them (HMAC-SHA256 over "id.timestamp.body" with the base64 key after "whsec_").

Shapes from Replicate's recorded responses that the SDK's own Prediction model refuses are
scriptable too: a body without `model` (`omit_fields`), the `aborted` status (`create_status`,
`cancel_status`, `final_status`), and TRELLIS objects with `model_file: null`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import threading
import time
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

FINAL = {"succeeded", "failed", "canceled", "aborted"}

# Enum inputs as each model's schema on Replicate declares them; a value outside is a 422, as
# Replicate answers it. (flux-dev's schema has the schnell list; with an input image it follows
# the image's ratio.)
_FLUX_RATIOS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
INPUT_ENUMS: dict[str, dict[str, list]] = {
    "black-forest-labs/flux-schnell": {"aspect_ratio": _FLUX_RATIOS},
    "black-forest-labs/flux-dev": {"aspect_ratio": _FLUX_RATIOS},
    "black-forest-labs/flux-1.1-pro": {
        "aspect_ratio": ["custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3"]
    },
    "black-forest-labs/flux-kontext-pro": {"aspect_ratio": ["match_input_image", *_FLUX_RATIOS]},
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sample_png(seed: int = 0, size: tuple[int, int] = (64, 64)) -> bytes:
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, 180))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Script:
    """What the server does for one model."""

    final_status: str = "succeeded"  # succeeded | failed | canceled
    reads_before_final: int = 1  # GETs answered "processing" before the final state
    delay: float = 0.0  # or: seconds after creation before the final state
    error: str = "The model could not process this input."
    output_files: int = 1
    output_content: bytes | None = None
    output_mime: str = "image/png"
    output_ext: str = "png"
    output_expired: bool = False
    output_as_list: bool = True  # FLUX models answer a list of URLs; some models a single URL
    output_key: str = ""  # if set, output is {key: url} (e.g. TRELLIS "model_file")
    output_null_keys: tuple = ()  # keys of an object output answered as null (TRELLIS without model_file)
    # Shapes from Replicate's recorded responses that the SDK's Prediction model refuses:
    omit_fields: tuple = ()  # fields left out of every prediction body, e.g. ("model",)
    create_status: str = "starting"  # the status the create call answers, e.g. "aborted"
    cancel_status: str = "canceled"  # what a cancel of an unfinished prediction turns it into
    file_errors: deque = field(default_factory=deque)  # HTTP statuses answered for output downloads
    # HTTP failures answered before normal behaviour, one per request, e.g. [500] or [(429, 2)].
    create_errors: deque = field(default_factory=deque)
    read_errors: deque = field(default_factory=deque)
    read_stall: float = 0.0  # seconds each read waits before answering (timeouts)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.predictions: dict[str, dict] = {}
        self.reads: dict[str, int] = {}
        self.created_at: dict[str, float] = {}
        self.scripts: dict[str, Script] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.webhook_deliveries: list[dict] = []
        self.token = "r8_test_token"
        self.webhook_secret = "whsec_" + base64.b64encode(b"atelier-test-replicate-secret!!").decode()


class ReplicateAPIServer:
    def __init__(self) -> None:
        self.state = _State()
        self._httpd: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> ReplicateAPIServer:
        state = self.state
        server = self

        class Handler(_Handler):
            pass

        Handler.state, Handler.server_obj = state, server
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="replicate-api").start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reset(self) -> None:
        with self.state.lock:
            self.state.predictions.clear()
            self.state.reads.clear()
            self.state.created_at.clear()
            self.state.scripts.clear()
            self.state.files.clear()
            self.state.requests.clear()
            self.state.webhook_deliveries.clear()

    # --- scripting -------------------------------------------------------------------

    def script(self, model: str, **kwargs) -> Script:
        for key in ("create_errors", "read_errors", "file_errors"):
            if key in kwargs:
                kwargs[key] = deque(kwargs[key])
        script = Script(**kwargs)
        with self.state.lock:
            self.state.scripts[model] = script
        return script

    def expire_outputs(self, prediction_id: str) -> None:
        with self.state.lock:
            for key in [k for k in self.state.files if k.startswith(f"{prediction_id}/")]:
                del self.state.files[key]

    def complete(self, prediction_id: str) -> dict:
        """Move a prediction to its scripted final state now (as if the model finished)."""
        with self.state.lock:
            prediction = self.state.predictions[prediction_id]
            self._finish_unlocked(prediction)
            return json.loads(json.dumps(prediction))

    def _finish_unlocked(self, prediction: dict) -> None:
        script = self.state.scripts.setdefault(prediction["model"], Script())
        _Handler.finish_prediction(self.state, self, prediction, script)

    def prediction(self, prediction_id: str) -> dict:
        with self.state.lock:
            return json.loads(json.dumps(self.state.predictions[prediction_id]))

    def body(self, prediction_id: str) -> dict:
        """The prediction as this server sends it (fields the script omits left out)."""
        with self.state.lock:
            prediction = self.state.predictions[prediction_id]
            script = self.state.scripts.setdefault(prediction["model"], Script())
            return _public(prediction, script)

    def sign(self, webhook_id: str, timestamp: int, body: str) -> str:
        key = base64.b64decode(self.state.webhook_secret.split("_", 1)[1])
        digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def deliver_webhook(self, prediction_id: str, *, url: str | None = None, webhook_id: str | None = None) -> int:
        """POST the prediction to its webhook URL, signed; returns the HTTP status."""
        prediction = self.body(prediction_id)
        target = url or self.prediction(prediction_id).get("webhook")
        body = json.dumps(prediction)
        webhook_id = webhook_id or f"msg_{prediction_id}_{prediction['status']}"
        timestamp = int(time.time())
        request = urllib.request.Request(
            target,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": self.sign(webhook_id, timestamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.state.webhook_deliveries.append({"prediction": prediction_id, "status": status})
        return status


class _Handler(BaseHTTPRequestHandler):
    state: _State
    server_obj: ReplicateAPIServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without TCP_NODELAY a kept-alive connection
    # (the provider's pooled clients) waits ~40 ms for the client's delayed ACK before the body.
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # keep test output quiet
        return

    # --- plumbing ----------------------------------------------------------------------

    def _send(self, status: int, payload: dict | None = None, headers: dict | None = None) -> None:
        body = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._send(401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token"})
            return False
        return True

    def _queued_error(self, queue: deque) -> bool:
        if not queue:
            return False
        item = queue.popleft()
        status, retry_after = item if isinstance(item, tuple) else (item, None)
        if status == "stall":
            time.sleep(retry_after or 5)
            return False
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self._send(status, {"title": "Error", "detail": f"Simulated {status}", "status": status}, headers)
        return True

    # --- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.state.requests.append(("GET", self.path))
        if match := re.fullmatch(r"/files/([^/]+)/([^/?]+)", self.path):
            key = f"{match[1]}/{match[2]}"
            with self.state.lock:
                item = self.state.files.get(key)
                model = self.state.predictions.get(match[1], {}).get("model", "")
            if item is not None and self._queued_error(self._script(model).file_errors):
                return
            if item is None:
                self._send(404, {"detail": "Not found."})
                return
            content, mime = item
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            return
        if not self._authorized():
            return
        if self.path == "/v1/webhooks/default/secret":
            self._send(200, {"key": self.state.webhook_secret})
            return
        if match := re.fullmatch(r"/v1/predictions/([A-Za-z0-9_-]+)", self.path):
            self._read(match[1])
            return
        self._send(404, {"detail": "Not found."})

    def do_POST(self) -> None:
        self.state.requests.append(("POST", self.path))
        if not self._authorized():
            return
        if match := re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", self.path):
            self._create(model=f"{match[1]}/{match[2]}", version="", body=self._body())
            return
        if self.path == "/v1/predictions":
            body = self._body()
            version = str(body.get("version", ""))
            model, _, version_id = version.rpartition(":")
            self._create(model=model or "unknown/unknown", version=version_id or version, body=body)
            return
        if match := re.fullmatch(r"/v1/predictions/([A-Za-z0-9_-]+)/cancel", self.path):
            self._cancel(match[1])
            return
        self._send(404, {"detail": "Not found."})

    def _script(self, model: str) -> Script:
        with self.state.lock:
            return self.state.scripts.setdefault(model, Script())

    def _create(self, *, model: str, version: str, body: dict) -> None:
        script = self._script(model)
        if self._queued_error(script.create_errors):
            return
        if not isinstance(body.get("input"), dict):
            self._send(422, {"title": "Invalid input", "detail": "input is required", "status": 422})
            return
        for name, allowed in INPUT_ENUMS.get(model, {}).items():
            if name in body["input"] and body["input"][name] not in allowed:
                detail = f"input.{name}: {name} must be one of the following: " + ", ".join(map(repr, allowed))
                self._send(422, {"title": "Input validation failed", "detail": detail, "status": 422})
                return
        prediction_id = uuid.uuid4().hex[:26]
        base = self.server_obj.url
        prediction = {
            "id": prediction_id,
            "model": model,
            "version": version or "hidden",
            "input": body["input"],
            "logs": "",
            "output": None,
            "error": None,
            "status": script.create_status,
            "created_at": _now(),
            "started_at": None,
            "completed_at": None,
            "data_removed": False,
            "webhook": body.get("webhook"),
            "webhook_events_filter": body.get("webhook_events_filter"),
            "metrics": {},
            "urls": {
                "get": f"{base}/v1/predictions/{prediction_id}",
                "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
                "web": f"{base}/p/{prediction_id}",
            },
        }
        with self.state.lock:
            self.state.predictions[prediction_id] = prediction
            self.state.reads[prediction_id] = 0
            self.state.created_at[prediction_id] = time.monotonic()
        if script.delay and prediction["webhook"]:
            threading.Timer(script.delay, self._finish_and_notify, args=(prediction_id, script)).start()
        self._send(201, _public(prediction, script))

    def _finish_and_notify(self, prediction_id: str, script: Script) -> None:
        with self.state.lock:
            prediction = self.state.predictions[prediction_id]
            if prediction["status"] in FINAL:
                return
            self._finish(prediction, script)
        self.server_obj.deliver_webhook(prediction_id)

    def _finish(self, prediction: dict, script: Script) -> None:
        _Handler.finish_prediction(self.state, self.server_obj, prediction, script)

    @staticmethod
    def finish_prediction(state: _State, server: ReplicateAPIServer, prediction: dict, script: Script) -> None:
        """Move a prediction to its scripted final state (caller holds the lock)."""
        prediction["status"] = script.final_status
        prediction["started_at"] = prediction["started_at"] or _now()
        prediction["completed_at"] = _now()
        prediction["metrics"] = {"predict_time": 0.1}
        if script.final_status == "succeeded":
            urls = []
            for index in range(script.output_files):
                name = f"output_{index}.{script.output_ext}"
                content = script.output_content if script.output_content is not None else sample_png(index)
                if not script.output_expired:
                    state.files[f"{prediction['id']}/{name}"] = (content, script.output_mime)
                urls.append(f"{server.url}/files/{prediction['id']}/{name}")
            if script.output_key:
                prediction["output"] = {
                    script.output_key: urls[0],
                    "no_background_images": None,
                    **dict.fromkeys(script.output_null_keys),
                }
            else:
                prediction["output"] = urls if script.output_as_list else urls[0]
        elif script.final_status == "failed":
            prediction["error"] = script.error

    def _read(self, prediction_id: str) -> None:
        with self.state.lock:
            prediction = self.state.predictions.get(prediction_id)
        if prediction is None:
            self._send(404, {"detail": "Not found."})
            return
        script = self._script(prediction["model"])
        if script.read_stall:
            time.sleep(script.read_stall)
        if self._queued_error(script.read_errors):
            return
        with self.state.lock:
            if prediction["status"] not in FINAL:
                self.state.reads[prediction_id] += 1
                elapsed = time.monotonic() - self.state.created_at[prediction_id]
                due = (
                    elapsed >= script.delay
                    if script.delay
                    else self.state.reads[prediction_id] > script.reads_before_final
                )
                if due:
                    self._finish(prediction, script)
                else:
                    prediction["status"] = "processing"
                    prediction["started_at"] = prediction["started_at"] or _now()
            payload = _public(prediction, script)
        self._send(200, payload)

    def _cancel(self, prediction_id: str) -> None:
        with self.state.lock:
            prediction = self.state.predictions.get(prediction_id)
            if prediction is None:
                self._send(404, {"detail": "Not found."})
                return
            script = self.state.scripts.setdefault(prediction["model"], Script())
            if prediction["status"] not in FINAL:
                prediction["status"] = script.cancel_status
                prediction["completed_at"] = _now()
            payload = _public(prediction, script)
        self._send(200, payload)


def _public(prediction: dict, script: Script) -> dict:
    """A copy of the prediction as sent on the wire (the script may leave fields out)."""
    payload = json.loads(json.dumps(prediction))
    for name in script.omit_fields:
        payload.pop(name, None)
    return payload
