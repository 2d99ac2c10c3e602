"""Consents: off by default, explicit opt-in and out on the privacy centre, each change recorded
with the wording version and the method; the training dataset takes only people whose consent
is on at that moment."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from generation.models import Asset, AssetRole, CatalogEntry, Generation, Status
from generation.storage import save_bytes
from privacy.models import ActivityEvent, ActivityKind, Consent, ConsentEvent, ConsentKind, ConsentMethod
from privacy.services.consents import WORDING, consent_granted, consent_set

pytestmark = pytest.mark.django_db


def test_every_consent_is_off_until_the_person_turns_it_on(client, alice):
    for kind in ConsentKind.values:
        assert not consent_granted(user=alice, kind=kind)
    client.force_login(alice)
    page = client.get(reverse("privacy:centre")).content.decode()
    for kind in (ConsentKind.TRAINING, ConsentKind.MARKETING):
        wording = WORDING[kind]
        assert wording.title in page and wording.text in page and wording.version in page
    assert page.count('role="switch" aria-checked="false"') == 2
    assert 'aria-checked="true"' not in page
    assert not Consent.objects.filter(user=alice).exists()


def test_opting_in_and_out_records_events_with_wording_version_and_method(client, alice):
    client.force_login(alice)
    response = client.post(reverse("privacy:consent"), {"kind": "training", "granted": "on"})
    assert response.status_code == 302 and response["Location"].endswith("/privacy/#choices")
    assert consent_granted(user=alice, kind=ConsentKind.TRAINING)
    assert not consent_granted(user=alice, kind=ConsentKind.MARKETING)

    client.post(reverse("privacy:consent"), {"kind": "training", "granted": "off"})
    assert not consent_granted(user=alice, kind=ConsentKind.TRAINING)

    events = list(ConsentEvent.objects.filter(user=alice).order_by("at", "id"))
    assert [(e.kind, e.granted, e.method) for e in events] == [
        ("training", True, ConsentMethod.PRIVACY_CENTRE),
        ("training", False, ConsentMethod.PRIVACY_CENTRE),
    ]
    assert {e.wording_version for e in events} == {WORDING[ConsentKind.TRAINING].version}
    activity = ActivityEvent.objects.filter(user=alice, kind=ActivityKind.CONSENT_CHANGED).order_by("at", "id")
    assert [a.detail["granted"] for a in activity] == [True, False]
    assert activity[0].detail["consent"] == "training" and activity[0].detail["method"] == "privacy_centre"
    assert activity[0].device or activity[0].ip  # the request was recorded


def test_htmx_toggle_returns_the_section_with_the_new_state(client, alice):
    client.force_login(alice)
    response = client.post(reverse("privacy:consent"), {"kind": "marketing", "granted": "on"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="choices"' in html  # the section only
    assert html.count('aria-checked="true"') == 1
    assert consent_granted(user=alice, kind=ConsentKind.MARKETING)


def test_repeating_the_current_state_records_nothing(alice):
    assert consent_set(user=alice, kind="marketing", granted=True, method="privacy_centre")
    assert not consent_set(user=alice, kind="marketing", granted=True, method="privacy_centre")
    assert ConsentEvent.objects.filter(user=alice).count() == 1


def test_consent_toggles_need_sign_in_and_csrf(alice):
    from django.test import Client

    anonymous = Client()
    assert anonymous.post(reverse("privacy:consent"), {"kind": "training", "granted": "on"}).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(reverse("privacy:consent"), {"kind": "training", "granted": "on"}).status_code == 403
    assert not consent_granted(user=alice, kind=ConsentKind.TRAINING)


def test_unknown_consent_kind_is_refused(client, alice):
    client.force_login(alice)
    assert client.post(reverse("privacy:consent"), {"kind": "analytics", "granted": "on"}).status_code == 400
    assert client.post(reverse("privacy:consent"), {"kind": "training", "granted": "yes"}).status_code == 400


# --- the training dataset -------------------------------------------------------------------------


def finished_job(owner, prompt: str) -> Generation:
    entry = CatalogEntry.objects.get(slug="local-canvas")
    generation = Generation.objects.create(
        owner=owner, model=entry, kind=entry.kind, prompt=prompt, params={"seed": 1}, cost=1, status=Status.SUCCEEDED
    )
    for role, name, content in [(AssetRole.OUTPUT, "output-0.png", b"\x89PNG out " + prompt.encode())]:
        stored = save_bytes(f"{generation.storage_prefix}/{name}", content)
        Asset.objects.create(
            generation=generation,
            role=role,
            storage_key=stored.key,
            mime_type="image/png",
            bytes=stored.size,
            sha256=stored.sha256,
        )
    return generation


def read_manifest(out) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_training_dataset_takes_only_people_whose_consent_is_on_now(alice, bob, tmp_path):
    finished_job(alice, "alice's lighthouse")
    finished_job(bob, "bob's harbour")
    consent_set(user=alice, kind="training", granted=True, method="privacy_centre")
    consent_set(user=bob, kind="training", granted=True, method="privacy_centre")
    consent_set(user=bob, kind="training", granted=False, method="privacy_centre")  # revoked

    out = tmp_path / "dataset"
    call_command("export_training_dataset", "--out", str(out))
    rows = read_manifest(out)
    assert [row["prompt"] for row in rows] == ["alice's lighthouse"]
    copied = out / rows[0]["files"][0]["path"]
    assert copied.read_bytes() == b"\x89PNG out alice's lighthouse"
    assert len(list((out / "files").rglob("*.png"))) == 1
    dump = (out / "manifest.jsonl").read_text()
    assert "alice@example.com" not in dump and str(alice.public_id) not in dump

    # Alice changes her mind: the next export leaves her out too.
    consent_set(user=alice, kind="training", granted=False, method="privacy_centre")
    again = tmp_path / "dataset-2"
    call_command("export_training_dataset", "--out", str(again))
    assert read_manifest(again) == []
    assert not list((again / "files").rglob("*.*"))


def test_training_dataset_leaves_out_paused_people(alice, tmp_path):
    from privacy.services.restriction import account_pause

    finished_job(alice, "paused prompt")
    consent_set(user=alice, kind="training", granted=True, method="privacy_centre")
    account_pause(user=alice)
    out = tmp_path / "dataset"
    call_command("export_training_dataset", "--out", str(out))
    assert read_manifest(out) == []


def test_training_dataset_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(CommandError):
        call_command("export_training_dataset", "--out", str(tmp_path))


def test_training_dataset_copies_files_from_s3(alice, s3_storage, tmp_path):
    finished_job(alice, "from the bucket")
    consent_set(user=alice, kind="training", granted=True, method="privacy_centre")
    out = tmp_path / "dataset"
    call_command("export_training_dataset", "--out", str(out))
    rows = read_manifest(out)
    assert (out / rows[0]["files"][0]["path"]).read_bytes() == b"\x89PNG out from the bucket"
