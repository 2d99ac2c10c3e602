"""Every stored output says it was made by AI (IPTC DigitalSourceType in XMP, the generator),
read back from the stored objects in S3, from downloads, and from each format's own reader."""

from __future__ import annotations

import io
import json
import struct
import urllib.request

import pytest
import trimesh
from PIL import Image

from billing import services as billing
from billing.models import LedgerReason
from generation import marking, services
from generation.models import CatalogEntry, Generation, Status
from generation.providers import local_render

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def picture(fmt: str, mode: str = "RGB", **options) -> bytes:
    image = Image.new(mode, (64, 48), (200, 80, 40, 128)[: len(mode)])
    image.putpixel((3, 4), (10, 20, 30, 255)[: len(mode)])
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def pixels(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size, image.mode, image.tobytes()


def pillow_xmp(data: bytes) -> str:
    """The XMP packet as Pillow reads it (an independent reader of each format's chunk)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        value = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize(
    ("fmt", "mode", "options", "mime"),
    [
        ("PNG", "RGB", {}, "image/png"),
        ("PNG", "RGBA", {}, "image/png"),
        ("JPEG", "RGB", {"quality": 90}, "image/jpeg"),
        (
            "JPEG",
            "RGB",
            {"exif": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
            "image/jpeg",
        ),  # Exif first
        ("WEBP", "RGB", {"quality": 80}, "image/webp"),  # lossy: a simple VP8 file
        ("WEBP", "RGBA", {"lossless": True}, "image/webp"),  # VP8L with alpha
        ("WEBP", "RGB", {"lossless": True, "exif": b"Exif\x00\x00II*\x00"}, "image/webp"),  # VP8X already
    ],
)
def test_each_image_format_is_marked_without_touching_its_pixels(fmt, mode, options, mime):
    original = picture(fmt, mode, **options)
    marked = marking.mark_bytes(original, mime=mime, model="FLUX.1 [schnell]", version="abc123", width=64, height=48)
    assert pixels(marked) == pixels(original)
    xmp = pillow_xmp(marked)
    assert f'Iptc4xmpExt:DigitalSourceType="{TRAINED}"' in xmp
    assert 'xmp:CreatorTool="Atelier (FLUX.1 [schnell] abc123)"' in xmp
    assert marking.read_marking(marked) == {
        "digital_source_type": TRAINED,
        "generator": "Atelier (FLUX.1 [schnell] abc123)",
    }
    # Streaming: the same bytes whatever the chunking.
    assert (
        b"".join(
            marking.mark_stream(
                (original[i : i + 7] for i in range(0, len(original), 7)),
                mime=mime,
                model="FLUX.1 [schnell]",
                version="abc123",
                width=64,
                height=48,
            )
        )
        == marked
    )


def test_an_exif_segment_stays_right_after_soi():
    original = picture("JPEG", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    marked = marking.mark_bytes(original, mime="image/jpeg", model="m")
    first = marked.index(b"\xff\xe1")
    assert marked[first + 4 : first + 10] == b"Exif\x00\x00"
    assert marked.index(marking.JPEG_XMP_NAMESPACE) > first


def test_webp_riff_sizes_stay_consistent():
    marked = marking.mark_bytes(picture("WEBP", "RGB"), mime="image/webp", model="m", width=64, height=48)
    assert struct.unpack("<I", marked[4:8])[0] == len(marked) - 8
    assert marked[12:16] == b"VP8X" and marked[20] & 0x04


def test_glb_is_marked_in_asset_generator_and_extras_and_still_loads():
    glb = local_render.image_to_glb(image=picture("PNG"), grid=10)
    marked = marking.mark_bytes(glb, mime="model/gltf-binary", model="TRELLIS image-to-3D", version="4876f2a8")
    assert struct.unpack("<I", marked[8:12])[0] == len(marked)
    (length,) = struct.unpack("<I", marked[12:16])
    asset = json.loads(marked[20 : 20 + length])["asset"]
    assert asset["generator"] == "Atelier (TRELLIS image-to-3D 4876f2a8)"
    assert asset["extras"]["digitalSourceType"] == TRAINED
    assert "trimesh" in asset["extras"]["originalGenerator"]
    scene = trimesh.load(io.BytesIO(marked), file_type="glb")
    assert len(scene.geometry) == 1


def test_a_file_that_is_not_what_it_claims_is_refused():
    with pytest.raises(marking.MarkingError):
        marking.mark_bytes(b"glTF" + b"\x02\x00\x00\x00" + b"\x00" * 40, mime="model/gltf-binary", model="m")


# --- stored files and downloads -----------------------------------------------------------------


def fund(user, amount: int) -> None:
    billing.credits_grant(user=user, amount=amount, reason=LedgerReason.ADMIN_GRANT, idempotency_key=f"m:{user.pk}")


def run(user, slug: str, capture, **kwargs) -> Generation:
    spec = services.GenerationSpec(model=CatalogEntry.objects.get(slug=slug), **kwargs)
    with capture(execute=True):
        generation = services.generation_submit(user=user, spec=spec)
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_detail
    return generation


def s3_object(env, key: str) -> bytes:
    return env["client"].get_object(Bucket=env["bucket"], Key=key)["Body"].read()


@pytest.mark.django_db
def test_stored_images_thumbnails_and_downloads_carry_the_marking(
    alice, client, s3_storage, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    generation = run(
        alice, "local-canvas", django_capture_on_commit_callbacks, values={"prompt": "a red fox in snow", "seed": 3}
    )
    output = generation.assets.get(role="output")
    stored = s3_object(s3_storage, output.storage_key)
    found = marking.read_marking(stored)
    assert found["digital_source_type"] == TRAINED
    assert found["generator"] == "Atelier (Atelier Canvas (offline) 2026.11)"
    assert TRAINED in pillow_xmp(stored)
    # The pixels are the renderer's own.
    rendered = local_render.render_text_to_image(
        prompt="a red fox in snow", negative_prompt="", seed=3, width=768, height=768, style="none"
    )
    assert pixels(stored) == pixels(rendered)

    thumb = generation.assets.get(role="thumbnail")
    assert TRAINED in pillow_xmp(s3_object(s3_storage, thumb.storage_key))

    client.force_login(alice)
    response = client.get(f"/a/{output.uuid}/download/")
    with urllib.request.urlopen(response["Location"], timeout=10) as download:  # noqa: S310 - the test's S3 server
        assert "attachment" in download.headers["Content-Disposition"]
        downloaded = download.read()
    assert downloaded == stored
    assert marking.read_marking(downloaded)["digital_source_type"] == TRAINED


@pytest.mark.django_db
def test_stored_3d_models_carry_the_marking(alice, s3_storage, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    fund(alice, 10)
    upload = SimpleUploadedFile("chair.png", picture("PNG"), content_type="image/png")
    generation = run(alice, "local-relief", django_capture_on_commit_callbacks, image_upload=upload)
    stored = s3_object(s3_storage, generation.assets.get(role="output").storage_key)
    found = marking.read_marking(stored)
    assert found == {"digital_source_type": TRAINED, "generator": "Atelier (Atelier Relief 3D (offline) 2026.11)"}


@pytest.mark.django_db
def test_local_file_downloads_keep_the_marking(alice, client, django_capture_on_commit_callbacks):
    fund(alice, 10)
    generation = run(alice, "local-canvas", django_capture_on_commit_callbacks, values={"prompt": "dunes"})
    client.force_login(alice)
    response = client.get(f"/a/{generation.assets.get(role='output').uuid}/download/", follow=True)
    downloaded = b"".join(response.streaming_content)
    assert marking.read_marking(downloaded)["digital_source_type"] == TRAINED


@pytest.mark.django_db
def test_a_jpeg_from_the_provider_is_stored_marked(alice, replicate_env, django_capture_on_commit_callbacks):
    fund(alice, 10)
    jpeg = picture("JPEG")
    replicate_env["api"].script(
        "black-forest-labs/flux-schnell", output_content=jpeg, output_ext="jpg", output_mime="image/jpeg"
    )
    generation = run(alice, "flux-schnell", django_capture_on_commit_callbacks, values={"prompt": "a kite"})
    stored = s3_object(replicate_env["s3"], generation.assets.get(role="output").storage_key)
    assert pixels(stored) == pixels(jpeg)
    assert marking.read_marking(stored) == {"digital_source_type": TRAINED, "generator": "Atelier (FLUX.1 [schnell])"}


# --- C2PA --------------------------------------------------------------------------------------------


@pytest.fixture
def c2pa_signing(settings, tmp_path):
    """A certificate chain made for the test (a CA of our own and a signing certificate under
    it, ES256), configured as the deployment would: two PEM files named in settings."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Atelier")]
        )

    def usage(*, sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=not sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=sign,
            crl_sign=sign,
            encipher_only=False,
            decipher_only=False,
        )

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Atelier test CA"))
        .issuer_name(name("Atelier test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Atelier test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "c2pa-chain.pem", tmp_path / "c2pa-key.pem"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.C2PA_CERT_FILE, settings.C2PA_KEY_FILE = str(cert_file), str(key_file)


@pytest.mark.django_db
def test_a_signed_c2pa_manifest_is_embedded_and_read_back_with_c2pas_reader(
    alice, client, s3_storage, c2pa_signing, django_capture_on_commit_callbacks
):
    fund(alice, 10)
    generation = run(alice, "local-canvas", django_capture_on_commit_callbacks, values={"prompt": "a paper boat"})
    output = generation.assets.get(role="output")
    stored = s3_object(s3_storage, output.storage_key)
    manifest = marking.read_c2pa(stored, "image/png")
    assert manifest is not None
    assert manifest["actions"] == [
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED,
            "softwareAgent": {"name": "Atelier (Atelier Canvas (offline) 2026.11)"},
        }
    ]
    # Signed by our own test CA: the signature and hashes check out; the CA is not a trusted one.
    assert manifest["validation_state"] == "Valid"
    assert manifest["validation_status"] == ["signingCredential.untrusted"]
    # The XMP marking is still there, the pixels are untouched, and the download is the same file.
    assert marking.read_marking(stored)["digital_source_type"] == TRAINED
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (768, 768)
    client.force_login(alice)
    with urllib.request.urlopen(client.get(f"/a/{output.uuid}/download/")["Location"], timeout=10) as download:  # noqa: S310
        assert download.read() == stored


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_jpeg_and_webp_get_a_c2pa_manifest_too(c2pa_signing, fmt, mime):
    marked = marking.mark_bytes(picture(fmt), mime=mime, model="m", width=64, height=48)
    signed = b"".join(marking.c2pa_stream([marked], mime=mime, model="m", title=f"output-0.{fmt.lower()}"))
    assert marking.read_c2pa(signed, mime)["actions"][0]["digitalSourceType"] == TRAINED
    assert marking.read_marking(signed)["digital_source_type"] == TRAINED
    assert pixels(signed)[1:3] == pixels(marked)[1:3]


def test_without_a_certificate_nothing_is_signed(settings):
    settings.C2PA_CERT_FILE = settings.C2PA_KEY_FILE = ""
    assert not marking.c2pa_enabled("image/png")
    assert marking.read_c2pa(picture("PNG"), "image/png") is None


def test_a_half_or_broken_c2pa_setup_fails_the_deploy_check(settings, tmp_path, c2pa_signing):
    assert marking.check_c2pa_settings() == []
    settings.C2PA_KEY_FILE = ""
    assert [e.id for e in marking.check_c2pa_settings()] == ["generation.E001"]
    broken = tmp_path / "broken.pem"
    broken.write_text("not a key")
    settings.C2PA_KEY_FILE = str(broken)
    assert [e.id for e in marking.check_c2pa_settings()] == ["generation.E002"]
