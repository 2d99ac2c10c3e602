"""Signed links to local files: the owner's expire after LOCAL_FILE_URL_TTL; the ones handed to a
provider (which may start the job minutes later, e.g. a cold boot) last PROVIDER_INPUT_URL_TTL."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from django.core import signing

from generation import storage


def _token(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _later(seconds: float):
    now = time.time()
    return mock.patch("django.core.signing.time.time", return_value=now + seconds)


def test_a_provider_link_outlives_an_owner_link_but_not_its_own_lifetime(settings):
    settings.LOCAL_FILE_URL_TTL, settings.PROVIDER_INPUT_URL_TTL = 600, 3600
    settings.SITE_URL = "https://atelier.example"
    key = "users/u/generations/g/input-0.png"
    owner = _token(storage.access_url(key, filename="input-0.png"))
    provider = _token(storage.provider_url(key))

    with _later(1200):  # 20 minutes on
        with pytest.raises(signing.SignatureExpired):
            storage.unsign(owner)
        assert storage.unsign(provider)["k"] == key
    with _later(3700), pytest.raises(signing.SignatureExpired):
        storage.unsign(provider)


def test_a_tampered_lifetime_is_refused(settings):
    settings.LOCAL_FILE_URL_TTL, settings.PROVIDER_INPUT_URL_TTL = 600, 3600
    token = _token(storage.access_url("users/u/x.png", filename="x.png"))
    forged = token.replace(token[:5], "AAAAA", 1)
    with pytest.raises(signing.BadSignature):
        storage.unsign(forged)


def test_a_page_of_links_signed_at_once_is_the_same_as_one_by_one(settings):
    """storage.access_urls (a gallery page) reverses the route once; its links must be exactly
    access_url's: the same route, the same payload, the same lifetime."""
    settings.LOCAL_FILE_URL_TTL = 600
    files = [("users/u/generations/g/thumb-0.webp", "thumb-0.webp"), ("users/u/generations/h/in.png", 'x".html')]
    with _later(0):
        batch = storage.access_urls(files)
        single = [storage.access_url(key, filename=name) for key, name in files]
    assert batch == single
    assert storage.unsign(_token(batch[1])) == {"k": files[1][0], "d": 0, "f": "x.png"}
    with _later(700), pytest.raises(signing.SignatureExpired):
        storage.unsign(_token(batch[0]))


def test_presigned_picture_links_are_reused_only_for_a_fifth_of_their_lifetime(settings):
    """S3: a gallery page seen again within the window gets the same links (signing 24 costs
    ~7 ms); a link is never handed out once a fifth of its 300 s is gone."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "private",
                "endpoint_url": "http://127.0.0.1:9",  # never contacted: presigning is local work
                "region_name": "us-east-1",
                "access_key": "k",
                "secret_key": "s",
                "querystring_auth": True,
                "querystring_expire": 300,
                "signature_version": "s3v4",
            },
        },
    }
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = ""
    files = [("users/u/generations/g/thumb-0.webp", "thumb-0.webp"), ("users/u/generations/h/thumb-0.webp", "t.webp")]
    start = 1_800_000_000 // 60 * 60  # the start of a window
    signed = mock.patch.object(storage, "access_url", wraps=storage.access_url)
    with signed as signing_calls, mock.patch("generation.storage.time.time", return_value=start + 1):
        first = storage.access_urls(files)
    assert signing_calls.call_count == 2 and all("X-Amz-Expires=300" in url for url in first)
    with signed as signing_calls, mock.patch("generation.storage.time.time", return_value=start + 59):
        assert storage.access_urls(files) == first
    assert signing_calls.call_count == 0
    with signed as signing_calls, mock.patch("generation.storage.time.time", return_value=start + 60):
        storage.access_urls(files)
    assert signing_calls.call_count == 2  # signed afresh


@pytest.mark.django_db
def test_a_file_served_by_its_link_takes_its_type_from_the_stored_key_not_the_uploaded_name(client, alice):
    """A picture uploaded as "x.html" is kept as .png: its link must never serve HTML."""
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from generation import services

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 90)).save(buffer, format="PNG")
    upload = SimpleUploadedFile('x".html', buffer.getvalue(), content_type="text/html")
    pending = services.pending_upload_keep(user=alice, upload=upload)
    url = storage.access_url(pending.storage_key, filename=pending.filename)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert 'filename="x.png"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_a_person_keeps_one_upload_at_a_time(alice):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from generation import services
    from generation.models import PendingUpload

    for n in range(5):
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (n * 40, 20, 90)).save(buffer, format="PNG")
        last = services.pending_upload_keep(user=alice, upload=SimpleUploadedFile(f"p{n}.png", buffer.getvalue()))
    assert list(PendingUpload.objects.filter(owner=alice)) == [last]
