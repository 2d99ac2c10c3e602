"""Seeds, model versions and variations: what a remix needs to give the same picture again."""

from __future__ import annotations

import pytest

from billing.models import Wallet
from generation import services, storage
from generation.errors import InvalidInput
from generation.models import CatalogEntry, Generation, Status
from generation.providers.local import LOCAL_VERSION
from generation.tests.test_replicate_pipeline import fund, submit
from tests.fakes.replicate_api import sample_png

pytestmark = pytest.mark.django_db


def outputs(generation: Generation) -> list[bytes]:
    return [storage.read_bytes(a.storage_key) for a in generation.assets.filter(role="output").order_by("index")]


def test_a_seed_is_picked_stored_and_reported_with_the_model_version(alice, django_capture_on_commit_callbacks):
    fund(alice, 10)
    first = submit(alice, "local-canvas", django_capture_on_commit_callbacks)
    second = submit(alice, "local-canvas", django_capture_on_commit_callbacks)
    assert first.status == second.status == Status.SUCCEEDED
    assert first.seed is not None and 0 <= first.seed < 2**31
    assert first.params["seed"] == first.seed
    assert first.seed != second.seed  # picked anew each time (secrets)
    assert first.provider_version == LOCAL_VERSION
    assert outputs(first) != outputs(second)


def test_the_same_seed_gives_the_same_image_bytes(alice, django_capture_on_commit_callbacks):
    fund(alice, 10)
    first = submit(alice, "local-canvas", django_capture_on_commit_callbacks, seed=1234, style="watercolor")
    again = submit(alice, "local-canvas", django_capture_on_commit_callbacks, seed=1234, style="watercolor")
    assert first.seed == again.seed == 1234
    assert outputs(first) == outputs(again)


def test_variations_make_n_outputs_and_cost_n_times(alice, django_capture_on_commit_callbacks):
    fund(alice, 10)
    generation = submit(alice, "local-canvas", django_capture_on_commit_callbacks, seed=5, num_outputs=3)
    assert generation.status == Status.SUCCEEDED
    assert generation.cost == 3
    assert Wallet.objects.get(user=alice).balance == 7
    images = outputs(generation)
    assert len(images) == 3 and len(set(images)) == 3
    # The first variation is the picture a single run with the same seed makes.
    single = submit(alice, "local-canvas", django_capture_on_commit_callbacks, seed=5)
    assert outputs(single) == images[:1]


def test_variations_are_limited_to_four_and_to_models_that_take_them(alice, django_capture_on_commit_callbacks):
    fund(alice, 20)
    with pytest.raises(InvalidInput, match="between 1 and 4"):
        submit(alice, "local-canvas", django_capture_on_commit_callbacks, num_outputs=5)
    # local-restyle does not take num_outputs: the value is ignored, one result, one price.
    assert "num_outputs" not in CatalogEntry.objects.get(slug="local-restyle").parameters


def test_too_few_credits_for_all_variations_is_refused_before_anything(alice, django_capture_on_commit_callbacks):
    fund(alice, 2)
    with pytest.raises(Exception, match="credits"):
        submit(alice, "local-canvas", django_capture_on_commit_callbacks, num_outputs=3)
    assert not Generation.objects.exists()
    assert Wallet.objects.get(user=alice).balance == 2


def test_run_again_keeps_everything_but_the_seed(alice, django_capture_on_commit_callbacks):
    fund(alice, 10)
    first = submit(alice, "local-canvas", django_capture_on_commit_callbacks, seed=9, aspect_ratio="16:9")
    with django_capture_on_commit_callbacks(execute=True):
        again = services.generation_run_again(user=alice, generation=first)
    again.refresh_from_db()
    assert again.status == Status.SUCCEEDED
    assert (again.prompt, again.params["aspect_ratio"]) == (first.prompt, "16:9")
    assert again.seed != 9


def test_replicate_gets_the_seed_and_variations_and_the_version_is_kept(
    alice, replicate_env, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    replicate_env["api"].script("black-forest-labs/flux-schnell", output_files=2)
    generation = submit(alice, "flux-schnell", django_capture_on_commit_callbacks, num_outputs=2)
    assert generation.status == Status.SUCCEEDED
    sent = replicate_env["api"].prediction(generation.provider_prediction_id)["input"]
    assert sent["seed"] == generation.seed and sent["num_outputs"] == 2
    assert generation.cost == 2
    assert [o[:8] for o in outputs(generation)] == [sample_png(0)[:8], sample_png(1)[:8]]
    # An official model reports no version ("hidden"): nothing invented.
    assert generation.provider_version == ""


def test_the_version_a_prediction_reports_is_read_and_hidden_is_not_a_version():
    from generation.providers.replicate import _state

    body = {"id": "abcdefghijklmnopqrstuvwxyz", "status": "starting", "version": "4876f2a8da1c"}
    assert _state(body).version == "4876f2a8da1c"
    assert _state({**body, "version": "hidden"}).version == ""
