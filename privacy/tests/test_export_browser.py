"""Export in Chromium: ask on the privacy centre, watch it being prepared (htmx polling), see it
ready, follow the emailed link, download the ZIP and check what is in it; screenshots of the
section at desktop (1280) and phone (390) width."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection

from generation.models import Asset, AssetRole
from privacy.models import DataExport
from privacy.services import export as service
from privacy.tests.test_export import history
from tests.browser import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
NOTES = Path("/work/notes/shots")
# Following a link that answers with a download (page.goto would fail: "Download is starting").
CLICK_LINK = "url => { const a = document.createElement('a'); a.href = url; document.body.append(a); a.click(); }"


def shot(page, name: str) -> None:
    """The section and the whole page, kept in test-artifacts/ (and the notes folder if there is one)."""
    path = screenshot(page, name)
    section = path.with_name(f"{name}-section.png")
    page.locator("#export").screenshot(path=str(section))
    if NOTES.is_dir():
        for file in (path, section):
            shutil.copy(file, NOTES / file.name)


@pytest.fixture
def queued_only(monkeypatch):
    """The build is not run when asked (tests run tasks inline): the test runs it, slowly enough to
    be watched, as a worker would."""
    asked: list[int] = []
    monkeypatch.setattr("privacy.tasks.export.build_export.delay", lambda export_id: asked.append(export_id))
    return asked


def build_slowly(export_id: int, monkeypatch) -> threading.Thread:
    real_copy = service._copy_media

    def slow_copy(archive, item, chunks):
        time.sleep(0.7)
        return real_copy(archive, item, chunks)

    monkeypatch.setattr(service, "_copy_media", slow_copy)
    monkeypatch.setattr(service, "PROGRESS_EVERY", 0.2)

    def work():
        try:
            service.export_build(export_id=export_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_ask_watch_progress_get_the_email_and_download(
    page, alice, queued_only, monkeypatch, django_capture_on_commit_callbacks
):
    made = history(alice, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    sign_in(page, alice)
    page.goto("/privacy/")
    essential = page.get_by_role("button", name="Essential only")
    if essential.count():  # the cookie notice, answered so it covers nothing in the screenshots
        essential.click()
        page.wait_for_load_state()
    section = page.locator("#export")
    assert section.get_by_role("heading", name="Download my data").is_visible()
    shot(page, "privacy-export-desktop-empty")
    page.set_viewport_size(PHONE)
    shot(page, "privacy-export-phone-empty")
    page.set_viewport_size(DESKTOP)

    section.get_by_role("button", name="Download my data").click()
    page.wait_for_load_state()
    assert page.get_by_text("We are preparing your export").is_visible()
    assert section.get_by_text("Queued").is_visible()
    assert section.get_by_role("button").count() == 0  # one at a time
    export = DataExport.objects.get(user=alice)
    assert queued_only == [export.pk]

    thread = build_slowly(export.pk, monkeypatch)
    page.wait_for_selector('#export [data-export-status="running"]', timeout=15_000)
    assert re.search(r"\d+ of \d+ files packed", section.inner_text())
    shot(page, "privacy-export-desktop-running")
    page.wait_for_selector('#export [data-export-status="ready"]', timeout=30_000)  # no reload: htmx
    thread.join(timeout=10)
    assert section.get_by_text("Ready").is_visible()
    shot(page, "privacy-export-desktop-ready")
    page.set_viewport_size(PHONE)
    shot(page, "privacy-export-phone-ready")
    page.set_viewport_size(DESKTOP)

    # The email's link, followed in the signed-in browser: a download of the ZIP.
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/privacy/exports/[0-9a-f-]{36}/", mail.outbox[0].body).group(0)
    path = "/" + link.split("/", 3)[3]
    with page.expect_download() as download_info:
        page.evaluate(CLICK_LINK, path)
    download = download_info.value
    assert re.fullmatch(r"atelier-export-\d{4}-\d{2}-\d{2}\.zip", download.suggested_filename)
    archive = zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes()))
    data = json.loads(archive.read("data.json"))
    assert data["profile"]["email"] == alice.email
    assert [g["prompt"] for g in data["generations"]] == [g.prompt for g in made]
    outputs = Asset.objects.filter(generation__owner=alice, role=AssetRole.OUTPUT)
    files = {a["uuid"]: a["file"] for g in data["generations"] for a in g["assets"]}
    for output in outputs:
        assert archive.getinfo(files[str(output.uuid)]).file_size == output.bytes
    assert "README.txt" in archive.namelist() and "data.schema.json" in archive.namelist()

    # The button on the page downloads it too.
    with page.expect_download() as again:
        section.get_by_role("link", name="Download ZIP").click()
    assert again.value.suggested_filename == download.suggested_filename


def test_someone_else_following_the_link_gets_not_found(page, alice, bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        export = service.export_request(user=alice)
    sign_in(page, bob)
    response = page.goto(f"/privacy/exports/{export.uuid}/")
    assert response.status == 404
