"""Policy re-acceptance and the activity log in Chromium: a new version is published, the person
sees the notice, generating is refused, the accept page shows what changed, and after accepting
the generation goes through; then the privacy centre's log and history retention choice.
Screenshots at desktop (1280) and phone (390) width, copied to /work/notes/shots/ when it exists."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from billing import services as billing
from billing.models import LedgerReason
from generation.models import Generation
from privacy.models import ActivityKind, PolicyAcceptance, PolicyVersion, PrivacySettings
from privacy.services.activity import activity_record
from privacy.services.policy import policy_publish
from tests.browser import screenshot, sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
NOTES_SHOTS = Path("/work/notes/shots")


def shot(page, name: str, locator=None) -> None:
    path = screenshot(page, name)
    if locator is not None:  # the section only, cut from the full page (the sticky header stays on top)
        box = locator.bounding_box()
        scroll = page.evaluate("() => window.scrollY")
        clip = {"x": 0, "y": box["y"] + scroll - 12, "width": page.viewport_size["width"], "height": box["height"] + 24}
        page.screenshot(path=str(path), full_page=True, clip=clip)
    if NOTES_SHOTS.is_dir():
        shutil.copy(path, NOTES_SHOTS / path.name)


def both_sizes(page, name: str, locator=None) -> None:
    for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        shot(page, f"{name}-{suffix}", locator)
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def person(db):
    user = UserFactory(email="noor@example.com", display_name="Noor")
    billing.credits_grant(user=user, amount=10, reason=LedgerReason.ADMIN_GRANT, idempotency_key="browser-policy")
    return user


def essential_cookies_only(page) -> None:
    notice = page.get_by_role("region", name="Cookie choice")
    if notice.count():
        notice.get_by_role("button", name="Essential only").click()
        notice.wait_for(state="detached")


def test_new_policy_version_notice_accept_then_generate(page, person):
    sign_in(page, person)
    essential_cookies_only(page)
    page.goto("/privacy/policy/")
    assert page.get_by_role("heading", name="Privacy policy", level=1).is_visible()
    assert page.get_by_role("heading", name="Your rights and where to use them").is_visible()
    both_sizes(page, "policy-page")

    policy = PolicyVersion.objects.create(
        version="2026-12-01",
        body="## What changed\n\nWe now keep IP addresses in the activity log for 14 days instead of 30.",
        summary="IP addresses in your activity log are now removed after 14 days instead of 30.",
        material=True,
        effective_at=timezone.now() - timedelta(minutes=1),
    )
    assert policy_publish(policy=policy)

    page.goto("/create/")
    notice = page.get_by_role("region", name="Privacy policy update")
    notice.wait_for()
    assert "removed after 14 days" in notice.inner_text()
    both_sizes(page, "policy-notice")

    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dawn")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Our privacy policy has changed. Accept the new version").wait_for()
    assert not Generation.objects.filter(owner=person).exists()

    notice.get_by_role("link", name="Review and accept").click()
    page.wait_for_url("**/privacy/policy/accept/**")
    assert page.get_by_role("heading", name="Our privacy policy has changed").is_visible()
    assert page.get_by_text("removed after 14 days instead of 30").is_visible()
    assert page.get_by_role("link", name="Read the full privacy policy").is_visible()
    assert page.get_by_role("region", name="Privacy policy update").count() == 0
    both_sizes(page, "policy-accept")

    page.get_by_role("button", name="I accept the new privacy policy").click()
    page.wait_for_url("**/create/**")
    assert page.get_by_role("region", name="Privacy policy update").count() == 0
    assert PolicyAcceptance.objects.filter(user=person, policy=policy).exists()

    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dawn")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r".*/g/[0-9a-f-]+/$"))
    assert Generation.objects.filter(owner=person).count() == 1

    page.goto("/privacy/policy/")
    history = page.get_by_role("complementary").filter(has_text="Versions")
    # By address: another version may carry the same date (2026-11-25 took effect on a day like today).
    assert history.locator(f'a[href="/privacy/policy/{policy.version}/"]').is_visible()
    assert history.get_by_role("link", name="1 Nov 2026").is_visible()
    page.get_by_role("link", name="1 Nov 2026").click()
    page.get_by_text("This is an earlier version, kept for the record.").wait_for()


def test_activity_log_and_history_retention_on_the_privacy_centre(page, person):
    for hours in range(12):
        activity_record(user=person, kind=ActivityKind.CONSENT_CHANGED, consent="marketing", granted=hours % 2 == 0)
    staff = UserFactory(email="support@example.com", is_staff=True)
    billing.credits_adjust(user=person, amount=25, reason="Sorry about the outage on Monday", staff=staff)
    sign_in(page, person)
    essential_cookies_only(page)

    page.goto("/privacy/#activity")
    section = page.locator("#activity")
    assert section.get_by_text("Added 25 credits: Sorry about the outage on Monday").is_visible()
    assert section.get_by_text("by Atelier staff", exact=True).is_visible()
    sign_in_entry = section.locator(".activity-item", has_text="Signed in").first
    assert "Chrome on Linux" in sign_in_entry.inner_text()
    assert re.search(r"now|seconds? ago", sign_in_entry.inner_text())
    more = section.get_by_text(re.compile(r"Show \d+ more"))
    assert more.is_visible()
    more.click()
    assert section.locator(".activity-item").nth(12).is_visible()

    assert section.get_by_label("Keep until I delete it").is_checked()
    section.get_by_label("Delete after 30 days").check()
    section.get_by_role("button", name="Save").click()
    page.get_by_text("Saved: delete after 30 days.").wait_for()
    assert page.locator("#activity").get_by_label("Delete after 30 days").is_checked()
    assert PrivacySettings.objects.get(user=person).history_retention_days == 30
    assert page.locator("#activity").get_by_text("History retention set to: delete after 30 days").is_visible()
    both_sizes(page, "privacy-activity", page.locator("#activity"))


def test_result_page_after_the_input_was_purged(page, person, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation import services as generation_services
    from generation.models import CatalogEntry, Status
    from generation.tests.test_gallery import png
    from privacy.services.retention import retention_inputs_purge

    spec = generation_services.GenerationSpec(
        model=CatalogEntry.objects.get(slug="local-restyle"),
        values={"prompt": "make it a snowy morning", "strength": 0.6},
        image_upload=SimpleUploadedFile("photo.png", png((320, 240)), content_type="image/png"),
    )
    job = generation_services.generation_submit(user=person, spec=spec)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error_detail
    back = timedelta(days=settings.PRIVACY_RETENTION_INPUTS_DAYS + 1)
    Generation.objects.filter(pk=job.pk).update(
        queued_at=job.queued_at - back, started_at=job.started_at - back, finished_at=job.finished_at - back
    )
    assert retention_inputs_purge() == 1

    sign_in(page, person)
    essential_cookies_only(page)
    page.goto(f"/g/{job.uuid}/")
    note = page.get_by_text(f"The input picture was removed {settings.PRIVACY_RETENTION_INPUTS_DAYS} days after")
    note.wait_for()
    assert page.locator("img.result-image").first.is_visible()
    assert page.locator("img.input-preview").count() == 0
    both_sizes(page, "result-input-removed")
