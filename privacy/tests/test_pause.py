"""Pause my account: no new generations (create, try again, run again), no marketing email, own
work still viewable; resume from the privacy centre. Each move is recorded once."""

from __future__ import annotations

import pytest
from django.core import mail

from billing import services as billing
from billing.models import LedgerEntry, LedgerReason, Wallet
from generation.models import CatalogEntry, Generation, Status
from privacy.mail import marketing_send
from privacy.models import ActivityEvent, ActivityKind
from privacy.services.consents import consent_set
from privacy.services.restriction import account_pause, account_resume

pytestmark = pytest.mark.django_db

PAUSED = "Your account is paused, so no new generations can start. Resume it in the privacy centre."


def fund(user, amount: int = 10) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"p:{user.pk}")


def balance(user) -> int:
    return Wallet.objects.get(user=user).balance


def job(owner, status=Status.SUCCEEDED) -> Generation:
    entry = CatalogEntry.objects.get(slug="local-canvas")
    return Generation.objects.create(
        owner=owner, model=entry, kind=entry.kind, prompt="a quiet harbour", params={"seed": 3}, cost=1, status=status
    )


@pytest.fixture
def paused(client, alice):
    fund(alice)
    client.force_login(alice)
    response = client.post("/privacy/choices/pause/")
    assert response.status_code == 302 and response["Location"].endswith("/privacy/#choices")
    alice.refresh_from_db()
    assert alice.is_paused
    return alice


def test_pausing_and_resuming_is_recorded_once_each(client, paused):
    client.post("/privacy/choices/pause/")  # a second click changes nothing
    assert not account_pause(user=paused)
    client.post("/privacy/choices/resume/")
    paused.refresh_from_db()
    assert not paused.is_paused
    moves = ActivityEvent.objects.filter(user=paused).exclude(kind=ActivityKind.SIGN_IN).order_by("at", "id")
    kinds = list(moves.values_list("kind", flat=True))
    assert kinds == [ActivityKind.ACCOUNT_PAUSED, ActivityKind.ACCOUNT_RESUMED]
    assert not account_resume(user=paused)


def test_a_paused_person_cannot_generate_and_keeps_their_credits(client, paused):
    page = client.get("/create/").content.decode()
    assert "paused-banner" in page and 'href="/privacy/#pause">Resume in the privacy centre' in page
    response = client.post("/create/?tab=image", {"tab": "image", "model": "local-canvas", "prompt": "a lighthouse"})
    assert response.status_code == 200
    assert PAUSED in response.content.decode()
    assert not Generation.objects.filter(owner=paused).exists()
    assert balance(paused) == 10
    assert not LedgerEntry.objects.filter(wallet__user=paused, reason=LedgerReason.GENERATION).exists()


def test_run_again_and_try_again_are_refused_too(client, paused):
    done = job(paused)
    failed = job(paused, status=Status.FAILED)
    for path in (f"/g/{done.uuid}/again/", f"/g/{failed.uuid}/retry/"):
        response = client.post(path, follow=True)
        assert PAUSED in response.content.decode()
    assert Generation.objects.filter(owner=paused).count() == 2
    assert balance(paused) == 10


def test_own_work_stays_viewable_while_paused(client, paused):
    done = job(paused)
    assert client.get(f"/g/{done.uuid}/").status_code == 200
    assert client.get("/gallery/").status_code == 200
    assert client.get("/privacy/").status_code == 200


def test_after_resuming_generation_works_again(client, paused, django_capture_on_commit_callbacks):
    client.post("/privacy/choices/resume/")
    assert "paused-banner" not in client.get("/create/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/create/?tab=image", {"tab": "image", "model": "local-canvas", "prompt": "a lighthouse"}
        )
    assert response.status_code == 302
    assert Generation.objects.filter(owner=paused).count() == 1


def test_no_marketing_email_while_paused(paused):
    consent_set(user=paused, kind="marketing", granted=True, method="privacy_centre")
    marketing_send(subject="News", template="product_update")
    assert mail.outbox == []
    account_resume(user=paused)
    marketing_send(subject="News", template="product_update")
    assert [m.to for m in mail.outbox] == [[paused.email]]


def test_the_centre_shows_the_pause_state_and_htmx_swaps_it(client, alice):
    client.force_login(alice)
    assert "Pause my account" in client.get("/privacy/").content.decode()
    section = client.post("/privacy/choices/pause/", HTTP_HX_REQUEST="true").content.decode()
    assert "Your account is paused" in section and "Resume my account" in section
    section = client.post("/privacy/choices/resume/", HTTP_HX_REQUEST="true").content.decode()
    assert "Pause my account" in section


def test_a_paused_person_uploading_a_picture_gets_nothing_stored(client, paused):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from generation.models import PendingUpload

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="PNG")
    upload = SimpleUploadedFile("photo.png", buffer.getvalue(), content_type="image/png")
    response = client.post(
        "/create/?tab=edit",
        {"tab": "edit", "model": "local-restyle", "prompt": "make it winter", "strength": "0.8", "image": upload},
    )
    assert PAUSED in response.content.decode()
    assert not PendingUpload.objects.filter(owner=paused).exists()
