"""What the chat path keeps: prompts and parameters of jobs asked for from a GPT Action or an MCP
client are blanked after ASSISTANT_PROMPT_RETENTION_DAYS (the media stays), unless the person
chose to keep assistant history like the rest; the privacy centre offers that choice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import LedgerReason
from generation import services as generation_services
from generation import storage
from generation.models import AssetRole, CatalogEntry, Generation, Source, Status
from privacy.models import ActivityEvent, ActivityKind, PrivacySettings
from privacy.services import retention
from privacy.tasks.retention import apply_retention

pytestmark = pytest.mark.django_db


def fund(user, amount: int = 20) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"ar:{user.pk}")


def job(user, source, django_capture_on_commit_callbacks, *, age_days: float, prompt: str) -> Generation:
    """A real job on the offline local model, asked for `age_days` ago from `source`."""
    spec = generation_services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="local-canvas"),
        values={"prompt": prompt, "negative_prompt": "blurry", "aspect_ratio": "16:9", "seed": "1234"},
        source=source,
    )
    with django_capture_on_commit_callbacks(execute=True):
        generation = generation_services.generation_submit(user=user, spec=spec)
    Generation.objects.filter(pk=generation.pk).update(queued_at=timezone.now() - timedelta(days=age_days))
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    return generation


def test_old_assistant_prompts_are_blanked_and_the_media_stays(
    alice, bob, settings, django_capture_on_commit_callbacks
):
    settings.ASSISTANT_PROMPT_RETENTION_DAYS = 30
    fund(alice), fund(bob)
    PrivacySettings.objects.create(user=bob, keep_assistant_history=True)
    mcp_old = job(alice, Source.MCP, django_capture_on_commit_callbacks, age_days=31, prompt="my sister's wedding")
    gpt_old = job(alice, Source.GPT_ACTION, django_capture_on_commit_callbacks, age_days=45, prompt="my street")
    mcp_recent = job(alice, Source.MCP, django_capture_on_commit_callbacks, age_days=29, prompt="recent chat")
    web_old = job(alice, Source.WEB, django_capture_on_commit_callbacks, age_days=90, prompt="typed on the web")
    api_old = job(alice, Source.API, django_capture_on_commit_callbacks, age_days=90, prompt="from my script")
    kept_by_choice = job(bob, Source.MCP, django_capture_on_commit_callbacks, age_days=60, prompt="bob keeps it")
    output_key = mcp_old.assets.get(role=AssetRole.OUTPUT).storage_key
    picture = storage.read_bytes(output_key)

    done = apply_retention.delay().get()

    assert done["assistant_prompts"] == 2
    for purged in (mcp_old, gpt_old):
        purged.refresh_from_db()
        assert purged.prompt == "" and purged.negative_prompt == "" and purged.seed is None
        assert purged.params == {"aspect_ratio": "16:9", "num_outputs": 1}  # what the media needs, nothing else
        assert purged.prompt_purged_at is not None
        assert purged.assets.filter(role=AssetRole.OUTPUT).exists()
    assert storage.read_bytes(output_key) == picture  # the media stays until the person deletes it
    for untouched, prompt in (
        (mcp_recent, "recent chat"),
        (web_old, "typed on the web"),
        (api_old, "from my script"),
        (kept_by_choice, "bob keeps it"),
    ):
        untouched.refresh_from_db()
        assert untouched.prompt == prompt and untouched.prompt_purged_at is None
        assert untouched.negative_prompt == "blurry" and untouched.seed == 1234
    assert retention.retention_assistant_prompts_purge() == 0  # a second run finds nothing

    # The result page says what happened instead of showing an empty prompt.
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("generation:detail", args=[mcp_old.uuid])).content.decode()
    assert "The prompt was removed 31 days after it was sent from an assistant." in page
    assert "wedding" not in page
    web_page = client.get(reverse("generation:detail", args=[web_old.uuid])).content.decode()
    assert "The prompt was removed" not in web_page


def test_the_privacy_centre_choice_toggles_and_is_logged(alice, settings):
    settings.ASSISTANT_PROMPT_RETENTION_DAYS = 30
    client = Client()
    client.force_login(alice)
    centre = client.get(reverse("privacy:centre")).content.decode()
    assert "Keep prompts I send from ChatGPT and other assistants like the rest of my history" in centre
    assert "removed 30 days after you send them" in centre
    box = centre.split('name="keep_assistant_history"')[1][:40]
    assert "checked" not in box

    response = client.post(reverse("privacy:retention"), {"days": 0, "keep_assistant_history": "on"}, follow=True)
    assert "prompts you send from assistants are kept like the rest of your history" in response.content.decode()
    assert PrivacySettings.objects.get(user=alice).keep_assistant_history is True
    event = ActivityEvent.objects.get(user=alice, kind=ActivityKind.RETENTION_CHANGED)
    assert event.detail["keep_assistant_history"] is True
    centre = client.get(reverse("privacy:centre")).content.decode()
    assert "checked" in centre.split('name="keep_assistant_history"')[1][:40]

    client.post(reverse("privacy:retention"), {"days": 0, "keep_assistant_history": "on"})  # unchanged: no new entry
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.RETENTION_CHANGED).count() == 1

    response = client.post(reverse("privacy:retention"), {"days": 0}, follow=True)  # unticked
    assert "removed after 30 days" in response.content.decode()
    assert PrivacySettings.objects.get(user=alice).keep_assistant_history is False
    assert ActivityEvent.objects.filter(user=alice, kind=ActivityKind.RETENTION_CHANGED).count() == 2


def test_the_current_policy_says_what_the_chat_path_keeps(client, settings):
    from privacy.policy import current_policy

    policy = current_policy()
    assert policy.version == "2026-11-25" and not policy.material and policy.summary
    page = client.get(reverse("privacy:policy")).content.decode()
    assert f"kept {settings.ASSISTANT_PROMPT_RETENTION_DAYS} days after you send them" in page
    assert "Keep prompts I send from ChatGPT and other assistants like the rest of my history" in page
    assert "API keys" in page and "Connected apps" in page and "Webhook endpoints" in page
    assert "your API keys and connected assistants (GPT Action, MCP) are refused until you resume" in page
    assert "{" not in page.split("<main", 1)[1].split("</main>", 1)[0]  # every period filled in


def test_a_job_whose_prompt_was_removed_cannot_be_run_again_or_retried(alice, client):
    """Run again / Try again rebuild a job from its row: after the purge that would start (and
    charge) a job with an empty prompt. Both are refused, and the result page offers neither."""
    from django.utils import timezone

    from billing.models import LedgerReason
    from billing.services.ledger import credits_grant
    from generation import services
    from generation.errors import InvalidInput
    from generation.models import CatalogEntry, Generation, Source, Status

    credits_grant(user=alice, amount=10, reason=LedgerReason.ADMIN_GRANT, idempotency_key="purged-run-again")
    entry = CatalogEntry.objects.get(slug="local-canvas")
    purged = {
        "owner": alice, "model": entry, "kind": entry.kind, "prompt": "", "cost": 1, "source": Source.MCP,
        "prompt_purged_at": timezone.now(), "params": {"aspect_ratio": "1:1"},
    }  # fmt: skip
    done = Generation.objects.create(status=Status.SUCCEEDED, **purged)
    failed = Generation.objects.create(status=Status.FAILED, **purged)
    with pytest.raises(InvalidInput, match="prompt of this job was removed"):
        services.generation_run_again(user=alice, generation=done)
    with pytest.raises(InvalidInput, match="prompt of this job was removed"):
        services.generation_retry(user=alice, generation=failed)
    assert Generation.objects.filter(owner=alice).count() == 2

    client.force_login(alice)
    assert "Run again" not in client.get(f"/g/{done.uuid}/").content.decode()
    assert "Try again" not in client.get(f"/g/{failed.uuid}/").content.decode()
