"""Each model offers exactly the aspect ratios its own input schema accepts (migration 0005), and
the form offers the chosen model's ratios only. The suite's Replicate-API server refuses an
enum value outside a model's schema with a 422, as Replicate does."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation import catalog, services
from generation.errors import InvalidInput
from generation.forms import CreateForm
from generation.models import CatalogEntry, Status
from generation.providers import get_provider
from generation.providers.base import InputImage, Job
from generation.tests.test_replicate_pipeline import fund, submit
from tests.fakes.replicate_api import INPUT_ENUMS, sample_png

pytestmark = pytest.mark.django_db

COMMON = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4"]
EXPECTED = {
    "local-canvas": COMMON + ["21:9", "9:21"],
    "flux-schnell": COMMON + ["21:9", "9:21"],
    "flux-1-1-pro": COMMON,
    "flux-kontext-pro": ["match_input_image", *COMMON, "21:9", "9:21"],
}


def offered(slug: str) -> list[str]:
    entry = CatalogEntry.objects.get(slug=slug)
    form = CreateForm(initial={"model": slug}, models=CatalogEntry.objects.filter(kind=entry.kind))
    return [value for value, _ in form.fields["aspect_ratio"].choices]


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_the_form_offers_exactly_the_models_own_ratios(slug):
    assert offered(slug) == EXPECTED[slug]


def test_models_without_a_ratio_offer_no_ratio_field():
    for slug in ("flux-dev-img2img", "trellis", "local-restyle", "local-relief"):
        entry = CatalogEntry.objects.get(slug=slug)
        form = CreateForm(initial={"model": slug}, models=CatalogEntry.objects.filter(kind=entry.kind))
        assert "aspect_ratio" not in [bound.name for bound in form.parameter_fields()]


def test_no_hosted_model_offers_a_ratio_its_schema_refuses():
    for entry in CatalogEntry.objects.filter(provider="replicate"):
        rule = entry.parameters.get("aspect_ratio")
        if rule is None:
            continue
        schema = INPUT_ENUMS[entry.provider_model]["aspect_ratio"]
        assert set(rule["choices"]) <= set(schema), entry.slug
        assert rule["default"] in rule["choices"]


@pytest.mark.parametrize("slug", ["flux-schnell", "flux-1-1-pro", "flux-kontext-pro"])
def test_every_offered_ratio_is_accepted_by_the_api(slug, replicate_env):
    entry = CatalogEntry.objects.get(slug=slug)
    provider = get_provider("replicate")
    image = None
    if "image" in entry.parameters:
        image = InputImage(key="k", mime="image/png", width=8, height=8, read=lambda: sample_png(1, (8, 8)))
    replicate_env["s3"]  # noqa: B018 - storage is S3 here, but the tiny input goes as a data: URL anyway
    for ratio in entry.parameters["aspect_ratio"]["choices"]:
        job = Job(
            entry=entry,
            prompt="a fox",
            negative_prompt="",
            params={"aspect_ratio": ratio, "seed": 1},
            seed=1,
            input_image=image,
            webhook_url=None,
        )
        state = provider.start(provider.build_request(job))  # a 422 would raise ProviderError
        assert replicate_env["api"].prediction(state.id)["input"]["aspect_ratio"] == ratio


def test_a_wide_ratio_reaches_flux_schnell(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks, aspect_ratio="21:9")
    assert generation.status == Status.SUCCEEDED
    assert replicate_env["api"].prediction(generation.provider_prediction_id)["input"]["aspect_ratio"] == "21:9"


def test_flux_1_1_pro_refuses_21_9_when_the_parameters_are_checked():
    entry = CatalogEntry.objects.get(slug="flux-1-1-pro")
    with pytest.raises(InvalidInput, match="Aspect ratio must be one of"):
        catalog.clean_params(entry, {"prompt": "x", "aspect_ratio": "21:9"})
    assert catalog.clean_params(entry, {"prompt": "x", "aspect_ratio": "5:4"}).params["aspect_ratio"] == "5:4"


def test_kontext_keeps_the_input_pictures_ratio_unless_asked(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 20)
    for values, expected in (({}, "match_input_image"), ({"aspect_ratio": "4:5"}, "4:5")):
        upload = SimpleUploadedFile("me.png", sample_png(3, (64, 48)), content_type="image/png")
        spec = services.GenerationSpec(
            model=CatalogEntry.objects.get(slug="flux-kontext-pro"),
            values={"prompt": "make it winter", **values},
            image_upload=upload,
        )
        with django_capture_on_commit_callbacks(execute=True):
            generation = services.generation_submit(user=alice, spec=spec)
        generation.refresh_from_db()
        assert generation.status == Status.SUCCEEDED
        sent = replicate_env["api"].prediction(generation.provider_prediction_id)["input"]
        assert sent["aspect_ratio"] == expected


def test_the_local_canvas_renders_the_new_ratios(alice, django_capture_on_commit_callbacks):
    fund(alice, 10)
    generation = submit(alice, "local-canvas", django_capture_on_commit_callbacks, aspect_ratio="9:21")
    assert generation.status == Status.SUCCEEDED
    output = generation.assets.get(role="output")
    assert (output.width, output.height) == (504, 1176)
