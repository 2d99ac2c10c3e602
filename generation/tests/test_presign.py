"""Our SigV4 presigner (generation.storage._Presigner) must give exactly the URL botocore's
generate_presigned_url gives, character for character, for every configuration it is used for,
and fall back to botocore for every other one."""

from __future__ import annotations

import datetime
import http.server
import threading
import timeit
import urllib.error
import urllib.request
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from django.core.files.storage import default_storage
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from generation import storage

WHEN = datetime.datetime(2026, 11, 25, 13, 4, 5)  # botocore's clock is naive UTC
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDK+sess/ion=="
ENDPOINT = "http://127.0.0.1:9"  # never contacted: presigning is local work

# keys: nested folders, unicode, spaces and the characters quoting gets wrong (+ % ~ ; = & ? #)
KEY_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
KEYS = st.one_of(
    st.text(KEY_CHARS, min_size=1, max_size=60),
    st.lists(
        st.text(st.sampled_from("aZ09 +%~;=&?#!'()*,:@$ü漢é-_./"), min_size=1, max_size=8), min_size=1, max_size=5
    ).map("/".join),
)
NAMES = st.text(KEY_CHARS, max_size=40)

CONFIGS = [
    # (addressing style, endpoint_url, region, session token)
    ("path", ENDPOINT, "us-east-1", None),
    ("path", ENDPOINT, "us-east-1", TOKEN),
    ("virtual", "https://objects.example.test", "eu-west-2", None),
    ("virtual", "https://objects.example.test", "eu-west-2", TOKEN),
    (None, ENDPOINT, "us-east-1", None),
    ("path", None, "us-east-1", None),
    ("path", None, "eu-west-2", TOKEN),
    ("virtual", None, "us-east-1", TOKEN),
    ("virtual", None, "eu-west-2", None),
    (None, None, "us-east-1", None),
    (None, None, "eu-west-2", TOKEN),
]


@pytest.fixture
def frozen(monkeypatch):
    """The same instant for botocore (botocore.auth.get_current_datetime) and for us."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: WHEN)
    monkeypatch.setattr(storage, "_utcnow", lambda: WHEN.replace(tzinfo=datetime.UTC))
    return WHEN


def make_client(style, endpoint, region, token, *, secret="s3cr3t/Key+"):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def botocore_url(client, bucket, key, disposition, expires=300):
    params = {"Bucket": bucket, "Key": key, "ResponseContentDisposition": disposition}
    return client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)


@pytest.mark.parametrize("style,endpoint,region,token", CONFIGS)
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, name=NAMES)
def test_our_url_is_botocores_url(frozen, style, endpoint, region, token, key, name):
    client = _clients.setdefault((style, endpoint, region, token), make_client(style, endpoint, region, token))
    disposition = f'attachment; filename="{name}"'
    for bucket, expires in (("atelier-media", 300), ("media.v2", 3600)):  # a dotted bucket: path-style on AWS
        signer = storage._presigner(client, bucket, expires)
        assert signer is not None, (style, endpoint, region)
        assert signer.url(key, disposition) == botocore_url(client, bucket, key, disposition, expires)


_clients: dict = {}


def test_fixed_examples_and_the_day_changing(monkeypatch):
    """Explicit examples, and a signing key (cached per secret, day, region) that follows the day."""
    client = make_client("virtual", None, "eu-west-2", TOKEN)
    signer = storage._presigner(client, "atelier-media", 300)
    keys = ["users/ü/generations/a b/c+d%2F~e.png", "a/b/c/d/e/f.webp", "~", "x%", "sp ace/+plus+", "漢字/😀.gif"]
    for day in (WHEN, WHEN + datetime.timedelta(days=1), WHEN + datetime.timedelta(days=40)):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, d=day, **k: d)
        for key in keys:
            disposition = 'inline; filename="a b;c.png"'
            expected = botocore_url(client, "atelier-media", key, disposition)
            assert signer.url(key, disposition, now=day) == expected
    assert {k[1] for k in storage._signing_keys if k[0] == "s3cr3t/Key+" and k[2] == "eu-west-2"} >= {
        "20261125",
        "20261126",
        "20270104",
    }


def storage_options(**overrides):
    options = {
        "bucket_name": "private-media",
        "endpoint_url": ENDPOINT,
        "region_name": "us-east-1",
        "access_key": "k",
        "secret_key": "s",
        "querystring_auth": True,
        "querystring_expire": 300,
        "signature_version": "s3v4",
    }
    options.update(overrides)
    return options


def use_storage(settings, **overrides):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": storage_options(**overrides)},
    }
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = ""


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"security_token": TOKEN},
        {"addressing_style": "virtual", "endpoint_url": None, "region_name": "eu-west-2"},
        {"addressing_style": "path", "endpoint_url": None, "region_name": "eu-west-2"},
        {"endpoint_url": None, "region_name": "us-east-1", "querystring_expire": 900},
        {"location": "media"},
    ],
)
def test_access_url_is_what_the_storage_gave_before(settings, frozen, overrides):
    """access_url / access_urls (the gallery) through our signer == S3Storage.url through botocore."""
    use_storage(settings, **overrides)
    files = [
        ("users/u/generations/g/thumb-0.webp", "thumb-0.webp"),
        ("users/u/generations/h/in put+1%.png", 'x".html'),
        ("users/ü/a//b/../c.png", "Ünïcode name (2).png"),
    ]
    assert storage._default_presigner() is not None
    expected = [
        default_storage.url(
            key, parameters={"ResponseContentDisposition": f'inline; filename="{storage.safe_filename(name, key)}"'}
        )
        for key, name in files
    ]
    assert [storage.access_url(key, filename=name) for key, name in files] == expected
    storage._recent_links.links.clear()
    assert storage.access_urls(files) == expected
    download = storage.access_url(files[0][0], filename="a.webp", download=True)
    assert download == default_storage.url(
        files[0][0], parameters={"ResponseContentDisposition": 'attachment; filename="a.webp"'}
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"custom_domain": "cdn.example.test"},
        {"querystring_auth": False},
        {"signature_version": "s3"},
        {"endpoint_url": None, "client_config": Config(signature_version="s3v4", s3={"use_accelerate_endpoint": True})},
        {"client_config": Config(signature_version="s3v4", s3={"use_dualstack_endpoint": True})},
    ],
)
def test_other_configurations_keep_botocore(settings, frozen, overrides):
    use_storage(settings, **overrides)
    assert storage._default_presigner() is None
    key = "users/u/generations/g/thumb-0.webp"
    url = storage.access_url(key, filename="t.webp")
    assert url == default_storage.url(key, parameters={"ResponseContentDisposition": 'inline; filename="t.webp"'})


def test_no_credentials_keeps_botocore(monkeypatch, settings, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    use_storage(settings, access_key=None, secret_key=None)
    assert storage._default_presigner() is None


def test_a_configuration_where_the_probe_differs_keeps_botocore():
    client = make_client("path", ENDPOINT, "us-east-1", None)
    real = client.generate_presigned_url

    def other_signature(*args, **kwargs):
        return real(*args, **kwargs)[:-8] + "00000000"

    with mock.patch.object(client, "generate_presigned_url", side_effect=other_signature):
        assert storage._presigner(client, "atelier-media", 300) is None
    assert storage._presigner(make_client("path", ENDPOINT, "us-east-1", None), "atelier-media", 300) is not None


def test_rotated_credentials_are_read_each_time(frozen):
    client = make_client("path", ENDPOINT, "us-east-1", None)
    signer = storage._presigner(client, "atelier-media", 300)
    client._request_signer._credentials.secret_key = "rotated"
    client._request_signer._credentials.access_key = "AKIDROTATED"
    disposition = 'inline; filename="a.png"'
    assert signer.url("k/a.png", disposition) == botocore_url(client, "atelier-media", "k/a.png", disposition)


def test_signing_is_much_cheaper_than_botocore():
    """A note more than a test: ~25-50 µs a link against ~300-550 µs for botocore on this machine."""
    client = make_client("virtual", None, "eu-west-2", None)
    signer = storage._presigner(client, "atelier-media", 300)
    disposition = 'inline; filename="thumb-0.webp"'
    ours = min(
        timeit.repeat(lambda: signer.url("users/u/generations/g/thumb-0.webp", disposition), number=200, repeat=5)
    )
    theirs = min(
        timeit.repeat(
            lambda: botocore_url(client, "atelier-media", "users/u/generations/g/thumb-0.webp", disposition),
            number=200,
            repeat=5,
        )
    )
    print(f"per link: ours {ours / 200 * 1e6:.0f} µs, botocore {theirs / 200 * 1e6:.0f} µs")
    assert ours * 3 < theirs


# --- live, against the suite's S3 API server -------------------------------------------------------


LIVE_KEYS = ["users/u/generations/g/thumb-0.webp", "users/ü/a b/c+d%~e (1).png", "deep/er/and/deeper/漢字.gif"]


def test_a_link_from_our_signer_downloads_the_object(s3_storage):
    """moto serves the object at the path our URL names (quoting included), with our disposition."""
    client = s3_storage["client"]
    for index, key in enumerate(LIVE_KEYS):
        client.put_object(Bucket=s3_storage["bucket"], Key=key, Body=f"object {index}".encode())
    assert storage._default_presigner() is not None
    for index, key in enumerate(LIVE_KEYS):
        url = storage.access_url(key, filename="x.png", download=True)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.read() == f"object {index}".encode()
            name = storage.safe_filename("x.png", key)
            assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'


class _Verifier(http.server.BaseHTTPRequestHandler):
    """In front of moto, which does not check presigned-URL signatures (a tampered URL still gets
    200 from moto 5.2): it recomputes the signature of the request as received with botocore's
    own S3SigV4QueryAuth, as S3 does, and answers 403 unless it matches and is unexpired; else it
    passes the request on to moto."""

    upstream = ""
    secrets: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path, _, query = self.path.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        given = dict(pairs).get("X-Amz-Signature", "")
        unsigned = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
        params = dict(pairs)
        try:
            access_key, day, region, service, _ = params["X-Amz-Credential"].split("/")
            signer = botocore.auth.S3SigV4QueryAuth(
                Credentials(access_key, self.secrets[access_key], params.get("X-Amz-Security-Token")),
                service,
                region,
                expires=int(params["X-Amz-Expires"]),
            )
            request = AWSRequest(
                method="GET",
                url=f"http://{self.headers['Host']}{path}?{unsigned}",
                headers={"host": self.headers["Host"]},
            )
            request.context["timestamp"] = params["X-Amz-Date"]
            canonical = signer.canonical_request(request)
            expected = signer.signature(signer.string_to_sign(request, canonical), request)
            signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            fresh = datetime.datetime.utcnow() < signed_at + datetime.timedelta(seconds=int(params["X-Amz-Expires"]))
            ok = given == expected and fresh and day == params["X-Amz-Date"][:8]
        except (KeyError, ValueError):
            ok = False
        if not ok:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with urllib.request.urlopen(f"{self.upstream}{self.path}", timeout=10) as answer:
            body = answer.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def verifying_s3(s3_storage, settings):
    """The default storage, its links pointing at the verifier in front of the suite's moto."""
    handler = type("Verifier", (_Verifier,), {"upstream": s3_storage["endpoint"], "secrets": {"testing": "testing"}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    front = f"http://127.0.0.1:{server.server_address[1]}"
    options = {**settings.STORAGES["default"]["OPTIONS"], "endpoint_url": front}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": options}}
    yield s3_storage
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_a_verified_link_downloads_and_a_tampered_one_is_refused(verifying_s3):
    client, bucket = verifying_s3["client"], verifying_s3["bucket"]
    key = LIVE_KEYS[1]
    client.put_object(Bucket=bucket, Key=key, Body=b"the picture")
    assert storage._default_presigner() is not None
    url = storage.access_url(key, filename="x.png")
    botocore_link = default_storage.url(key, parameters={"ResponseContentDisposition": 'inline; filename="x.png"'})
    assert _get(botocore_link) == (200, b"the picture")  # the verifier accepts botocore's own links
    assert _get(url) == (200, b"the picture")
    signature = url.rsplit("=", 1)[1]
    forged = [
        url.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1")),
        url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000"),
        url.replace("inline%3B", "attachment%3B"),
        url.replace("%C3%BC", "u"),  # another key
    ]
    for tampered in forged:
        assert tampered != url
        assert _get(tampered)[0] == 403, tampered
    parts = urlsplit(url)
    assert parts.path.endswith("/users/%C3%BC/a%20b/c%2Bd%25~e%20%281%29.png")
