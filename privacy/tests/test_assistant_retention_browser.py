"""The assistant-history choice on the privacy centre and the result page of a purged assistant
job, in Chromium at desktop and phone width (screenshots in test-artifacts/screenshots/)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Generation, Source
from privacy.models import PrivacySettings
from privacy.services import retention
from privacy.tests.test_assistant_retention import fund, job
from tests.browser import screenshot, sign_in
from tests.fixtures import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_choice_on_the_privacy_centre_and_the_purged_result_page(page, alice, django_capture_on_commit_callbacks):
    fund(alice)
    generation = job(alice, Source.GPT_ACTION, django_capture_on_commit_callbacks, age_days=40, prompt="my garden")
    sign_in(page, alice)

    page.goto("/privacy/#activity")
    box = page.get_by_label("Keep prompts I send from ChatGPT and other assistants like the rest of my history")
    assert not box.is_checked()
    page.locator("#activity form.retention-form").screenshot(
        path=str(ARTIFACTS / "screenshots" / "privacy-assistant-retention-desktop.png")
    )
    box.check()
    page.locator("#activity form.retention-form").get_by_role("button", name="Save").click()
    page.get_by_text("prompts you send from assistants are kept like the rest of your history").wait_for()
    assert PrivacySettings.objects.get(user=alice).keep_assistant_history
    assert retention.retention_assistant_prompts_purge() == 0  # kept by choice

    page.get_by_label("Keep prompts I send from ChatGPT and other assistants like the rest of my history").uncheck()
    page.locator("#activity form.retention-form").get_by_role("button", name="Save").click()
    page.get_by_text("prompts you send from assistants are removed after").wait_for()
    assert retention.retention_assistant_prompts_purge() == 1
    Generation.objects.filter(pk=generation.pk).update(prompt_purged_at=generation.queued_at + timedelta(days=30))
    assert Generation.objects.get(pk=generation.pk).prompt_purged_at < timezone.now()

    page.goto(f"/g/{generation.uuid}/")
    assert page.get_by_text("The prompt was removed 30 days after it was sent from an assistant.").is_visible()
    assert page.get_by_text("my garden").count() == 0
    screenshot(page, "result-prompt-purged-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/privacy/#activity")
    page.locator("#activity form.retention-form").screenshot(
        path=str(ARTIFACTS / "screenshots" / "privacy-assistant-retention-phone.png")
    )
    page.goto(f"/g/{generation.uuid}/")
    screenshot(page, "result-prompt-purged-phone")
