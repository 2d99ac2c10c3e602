"""The provider seam: a third provider is one module (here, a class in this file), one registry
line and a catalog row; the services never ask a provider's name."""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason, Wallet
from generation import providers, services
from generation.errors import InvalidInput, ProviderError
from generation.models import CatalogEntry, Generation, Kind, Status
from generation.providers.base import (
    PROCESSING,
    SUCCEEDED,
    Job,
    OutputRef,
    PredictionState,
    Provider,
    StartRequest,
)
from tests.fakes.replicate_api import sample_png

pytestmark = pytest.mark.django_db


class Tinted(Provider):
    """A made-up hosted provider: polls (no webhooks), cancels remotely, takes the input image
    as raw bytes it inverts, refuses inputs wider than 1000 px at submit time."""

    name = "tinted"
    can_cancel = True
    predictions: dict[str, dict] = {}
    canceled: list[str] = []

    def check_input_image(self, image) -> None:
        if image.width > 1000:
            raise InvalidInput("Tinted takes pictures up to 1000 px wide.", field="image")

    def build_request(self, job: Job) -> StartRequest:
        return StartRequest(
            model=job.entry.provider_model,
            version="",
            input={"text": job.prompt, **job.params},
            webhook_url=job.webhook_url,
            input_image=job.input_image.read() if job.input_image else None,
            seed=job.seed,
        )

    def start(self, request: StartRequest) -> PredictionState:
        prediction_id = f"tinted{len(self.predictions) + 1}"
        self.predictions[prediction_id] = {"request": request, "reads": 0}
        return PredictionState(id=prediction_id, status=PROCESSING)

    def fetch(self, prediction_id: str) -> PredictionState:
        record = self.predictions[prediction_id]
        record["reads"] += 1
        if record["reads"] < 2:
            return PredictionState(id=prediction_id, status=PROCESSING)
        with Image.open(io.BytesIO(record["request"].input_image)) as image:
            out = io.BytesIO()
            Image.eval(image.convert("RGB"), lambda v: 255 - v).save(out, format="PNG")
        return PredictionState(id=prediction_id, status=SUCCEEDED, outputs=[OutputRef(content=out.getvalue())])

    def cancel(self, prediction_id: str) -> None:
        self.canceled.append(prediction_id)

    def open_output(self, ref: OutputRef) -> Iterator[bytes]:
        if ref.content is None:
            raise ProviderError("missing")
        yield ref.content


@pytest.fixture
def tinted(monkeypatch, settings):
    monkeypatch.setitem(providers.REGISTRY, "tinted", f"{__name__}.Tinted")
    Tinted.predictions, Tinted.canceled = {}, []
    settings.GENERATION_POLL_INTERVAL = 0.01
    return CatalogEntry.objects.create(
        slug="tinted-negative",
        title="Tinted negative",
        kind=Kind.IMAGE_TO_IMAGE,
        provider="tinted",
        provider_model="tinted/negative",
        credit_cost=2,
        parameters={"prompt": {"type": "text", "required": True}, "image": {"type": "image", "required": True}},
    )


def submit(user, entry, content: bytes, django_capture_on_commit_callbacks) -> Generation:
    upload = SimpleUploadedFile("in.png", content, content_type="image/png")
    spec = services.GenerationSpec(model=entry, values={"prompt": "negative"}, image_upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    return generation


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"s:{user.pk}")


def test_a_third_provider_is_offered_and_runs_a_job_end_to_end(alice, tinted, django_capture_on_commit_callbacks):
    fund(alice, 10)
    assert tinted in services.catalog_available()

    generation = submit(alice, tinted, sample_png(4, (80, 60)), django_capture_on_commit_callbacks)

    assert generation.status == Status.SUCCEEDED, generation.error_detail
    assert generation.provider_prediction_id == "tinted1"
    sent = Tinted.predictions["tinted1"]["request"]
    assert sent.input["text"] == "negative" and sent.webhook_url is None
    assert sent.input_image == services.storage.read_bytes(generation.assets.get(role="input").storage_key)
    output = generation.assets.get(role="output")
    with Image.open(io.BytesIO(services.storage.read_bytes(output.storage_key))) as image:
        assert image.getpixel((0, 0)) == tuple(255 - v for v in Image.open(io.BytesIO(sample_png(4))).getpixel((0, 0)))
    assert generation.assets.filter(role="thumbnail").exists()  # made in its own step, after
    assert Wallet.objects.get(user=alice).balance == 8


def test_a_third_providers_input_rule_refuses_at_submit_and_charges_nothing(
    alice, tinted, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    with pytest.raises(InvalidInput, match="up to 1000 px"):
        submit(alice, tinted, sample_png(1, (1200, 100)), django_capture_on_commit_callbacks)
    assert not Generation.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 10


def test_cancel_reaches_providers_that_can_cancel_and_never_the_local_one(
    alice, tinted, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from generation.providers.local import LocalProvider

    fund(alice, 10)
    settings.GENERATION_INLINE_WAIT = 0  # hand off while it is still running
    generation = submit(alice, tinted, sample_png(2), django_capture_on_commit_callbacks)
    assert generation.status == Status.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        services.generation_cancel(user=alice, generation=generation)
    assert Tinted.canceled == ["tinted1"]

    called = []
    monkeypatch.setattr(LocalProvider, "cancel", lambda self, prediction_id: called.append(prediction_id))
    local = Generation.objects.create(
        owner=alice,
        model=CatalogEntry.objects.get(slug="local-canvas"),
        kind=Kind.TEXT_TO_IMAGE,
        cost=1,
        status=Status.RUNNING,
        provider_prediction_id="local-abc",
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.generation_fail(generation_id=local.pk, message="x")
    assert called == []


def test_services_never_ask_a_providers_name():
    """No provider names or prefixes in the services: each decision is the provider's."""
    source = Path(services.__file__).read_text()
    literals = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not [text for text in literals if text.startswith(("local", "replicate"))]
    assert "Provider.LOCAL" not in source and "Provider.REPLICATE" not in source
