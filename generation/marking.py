"""Machine-readable "made by AI" marking of every file Atelier stores (EU AI Act art. 50).

Each output carries IPTC's DigitalSourceType `trainedAlgorithmicMedia` and the generator
("Atelier" and the model) where its format keeps metadata:

- PNG: an `iTXt` chunk `XML:com.adobe.xmp` (the XMP packet) and a `tEXt` `Software`, placed
  right after `IHDR`;
- JPEG: an APP1 XMP segment after SOI (and after a JFIF APP0 when there is one);
- WebP: an `XMP ` chunk at the end, with the VP8X header's XMP flag (a simple VP8/VP8L file
  gets a VP8X header, sized from the image);
- GLB: `asset.generator` and `asset.extras` in the JSON chunk (the binary chunk is untouched).

The files are rewritten as they stream (`mark_stream`): the chunks are inserted between the
original bytes, so pixels are never re-encoded (same seed, same bytes), and a large GLB is never
held in memory, only its JSON chunk. Thumbnails are encoded by us and get the packet from
Pillow (`xmp=`). Downloads serve the stored bytes, so they keep it.

With C2PA_CERT_FILE and C2PA_KEY_FILE set, images (PNG, JPEG, WebP) also get a signed C2PA
manifest (`c2pa-python`): one `c2pa.created` action with the same digitalSourceType and the
generator as softwareAgent. Signing needs the whole file, so it goes through spooled temporary
files (memory up to 16 MB, then disk), never one big buffer. GLB is not a C2PA format; its
marking is the JSON above.

Limits, written down: metadata is easy to strip (any re-save or screenshot drops it), which is
why the law also expects visible disclosure where content is published; a file that already
carried its own XMP keeps it after ours (readers take the first packet); a C2PA signature is only
as trusted as its certificate (a self-made one validates but reads as untrusted).
"""

from __future__ import annotations

import json
import re
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import quoteattr

from django.conf import settings

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR = "Atelier"
XMP_KEYWORD = b"XML:com.adobe.xmp"
JPEG_XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
GLB_JSON_MAX_BYTES = 16 * 1024 * 1024


class MarkingError(ValueError):
    """The file is not laid out as its type says; it is refused rather than stored unmarked."""


def generator_label(model: str, version: str = "") -> str:
    """e.g. "Atelier (FLUX.1 [schnell])" or "Atelier (Atelier Canvas (offline) 2026.11)"."""
    name = f"{model} {version}".strip()
    return f"{GENERATOR} ({name})" if name else GENERATOR


def xmp_packet(*, model: str, version: str = "") -> bytes:
    """The XMP packet: IPTC DigitalSourceType, the AI system and version (IPTC 2025.1
    properties), and the generator as xmp:CreatorTool. Deterministic: no dates, no ids."""
    attributes = {
        "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
        "Iptc4xmpExt:AISystemUsed": model or GENERATOR,
        "xmp:CreatorTool": generator_label(model, version),
    }
    if version:
        attributes["Iptc4xmpExt:AISystemVersionUsed"] = version
    body = "\n   ".join(f"{name}={quoteattr(value)}" for name, value in attributes.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '   xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '   xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f"   {body}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


# --- streaming rewrite ----------------------------------------------------------------------------


class _Reader:
    """Exact reads from the front of a chunk stream; the rest can then be streamed on."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise MarkingError(f"file ends after {len(self._buffer)} bytes, {size} needed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def peek(self, size: int) -> bytes:
        data = self.read(size)
        self._buffer = data + self._buffer
        return data

    def rest(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._buffer
            self._buffer = b""
        yield from self._chunks


def mark_stream(
    chunks: Iterable[bytes], *, mime: str, model: str, version: str = "", width: int = 0, height: int = 0
) -> Iterator[bytes]:
    """The file of type `mime`, streamed with the marking inserted. Raises MarkingError (while
    iterating) when its layout is not what the type promises."""
    packet = xmp_packet(model=model, version=version)
    reader = _Reader(chunks)
    if mime == "image/png":
        return _png(reader, packet, generator_label(model, version))
    if mime == "image/jpeg":
        return _jpeg(reader, packet)
    if mime == "image/webp":
        return _webp(reader, packet, width, height)
    if mime == "model/gltf-binary":
        return _glb(reader, model, version)
    raise MarkingError(f"no marking for {mime}")


def mark_bytes(data: bytes, **kwargs) -> bytes:
    return b"".join(mark_stream([data], **kwargs))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(reader: _Reader, packet: bytes, generator: str) -> Iterator[bytes]:
    signature = reader.read(8)
    if signature != b"\x89PNG\r\n\x1a\n":
        raise MarkingError("not a PNG signature")
    length, kind = struct.unpack(">I4s", reader.read(8))
    if kind != b"IHDR":
        raise MarkingError("PNG without IHDR first")
    ihdr = struct.pack(">I", length) + kind + reader.read(length + 4)
    itxt = XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet  # no compression, no language, no translation
    software = b"Software\x00" + generator.encode("latin-1", "replace")
    yield signature + ihdr + _png_chunk(b"iTXt", itxt) + _png_chunk(b"tEXt", software)
    yield from reader.rest()


def _jpeg(reader: _Reader, packet: bytes) -> Iterator[bytes]:
    if reader.read(2) != b"\xff\xd8":
        raise MarkingError("not a JPEG (no SOI)")
    head = b"\xff\xd8"
    # JFIF's APP0 and an Exif APP1 stay first, where their specs want them; our XMP follows.
    while reader.peek(2) == b"\xff\xe0" or (reader.peek(2) == b"\xff\xe1" and reader.peek(10)[4:10] == b"Exif\x00\x00"):
        marker_and_length = reader.read(4)
        (length,) = struct.unpack(">H", marker_and_length[2:])
        head += marker_and_length + reader.read(length - 2)
    payload = JPEG_XMP_NAMESPACE + packet
    if len(payload) + 2 > 0xFFFF:
        raise MarkingError("XMP packet too large for one APP1 segment")
    yield head + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    yield from reader.rest()


def _webp(reader: _Reader, packet: bytes, width: int, height: int) -> Iterator[bytes]:
    riff, size, webp = struct.unpack("<4sI4s", reader.read(12))
    if riff != b"RIFF" or webp != b"WEBP":
        raise MarkingError("not a WebP RIFF file")
    fourcc, first_size = struct.unpack("<4sI", reader.read(8))
    xmp_chunk = b"XMP " + struct.pack("<I", len(packet)) + packet + (b"\x00" if len(packet) % 2 else b"")
    if fourcc == b"VP8X":
        payload = bytearray(reader.read(first_size + (first_size % 2)))
        payload[0] |= 0x04  # XMP metadata present
        header = b"VP8X" + struct.pack("<I", first_size) + bytes(payload)
        added = len(xmp_chunk)
    elif fourcc in (b"VP8 ", b"VP8L"):
        if not (width and height):
            raise MarkingError("a simple WebP needs its size to gain a VP8X header")
        alpha = False
        if fourcc == b"VP8L":
            bits = reader.peek(5)
            alpha = bool(bits[4] & 0x10)  # the alpha_is_used bit after two 14-bit sizes
        flags = 0x04 | (0x10 if alpha else 0)
        vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        header = b"VP8X" + struct.pack("<I", 10) + vp8x + fourcc + struct.pack("<I", first_size)
        added = 18 + len(xmp_chunk)
    else:
        raise MarkingError(f"unexpected first WebP chunk {fourcc!r}")
    yield b"RIFF" + struct.pack("<I", size + added) + b"WEBP" + header
    yield from reader.rest()
    yield xmp_chunk


def _glb(reader: _Reader, model: str, version: str) -> Iterator[bytes]:
    magic, gltf_version, total = struct.unpack("<4sII", reader.read(12))
    if magic != b"glTF":
        raise MarkingError("not a GLB file")
    json_length, json_type = struct.unpack("<I4s", reader.read(8))
    if json_type != b"JSON" or json_length > GLB_JSON_MAX_BYTES:
        raise MarkingError("GLB without a readable JSON chunk first")
    try:
        document = json.loads(reader.read(json_length))
    except ValueError as exc:
        raise MarkingError(f"GLB JSON chunk: {exc}") from exc
    asset = document.setdefault("asset", {"version": "2.0"})
    extras = asset.get("extras") if isinstance(asset.get("extras"), dict) else {}
    if asset.get("generator"):
        extras.setdefault("originalGenerator", asset["generator"])
    extras.update(
        {
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "generator": GENERATOR,
            "aiSystemUsed": model,
            **({"aiSystemVersionUsed": version} if version else {}),
        }
    )
    asset["generator"] = generator_label(model, version)
    asset["extras"] = extras
    encoded = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    encoded += b" " * (-len(encoded) % 4)  # chunks are 4-byte aligned, JSON padded with spaces
    new_total = total - json_length + len(encoded)
    yield struct.pack("<4sII", magic, gltf_version, new_total) + struct.pack("<I4s", len(encoded), b"JSON") + encoded
    yield from reader.rest()


# --- C2PA ------------------------------------------------------------------------------------------

C2PA_MIMES = {"image/png", "image/jpeg", "image/webp"}
SPOOL_IN_MEMORY = 16 * 1024 * 1024


class SigningError(RuntimeError):
    """The C2PA signature could not be made (bad certificate or key, library failure)."""


def c2pa_enabled(mime: str) -> bool:
    return mime in C2PA_MIMES and bool(settings.C2PA_CERT_FILE and settings.C2PA_KEY_FILE)


def c2pa_manifest(*, model: str, version: str, title: str) -> dict:
    agent = generator_label(model, version)
    return {
        "claim_generator_info": [{"name": GENERATOR}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": agent},
                        }
                    ]
                },
            }
        ],
    }


def _signer():
    import c2pa

    try:
        with open(settings.C2PA_CERT_FILE, "rb") as cert, open(settings.C2PA_KEY_FILE, "rb") as key:
            info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=cert.read(), private_key=key.read(), ta_url=None)
        return c2pa.Signer.from_info(info)
    except (OSError, c2pa.C2paError) as exc:
        raise SigningError(f"C2PA signer: {exc!r}") from exc


def check_c2pa_settings(app_configs=None, **kwargs) -> list:
    """`manage.py check`: a half-configured or unusable signing setup is an error at deploy time,
    not a failed job (and a refund) for every picture later."""
    from django.core.checks import Error

    cert, key = settings.C2PA_CERT_FILE, settings.C2PA_KEY_FILE
    if not cert and not key:
        return []
    if not (cert and key):
        return [Error("Set both C2PA_CERT_FILE and C2PA_KEY_FILE, or neither.", id="generation.E001")]
    try:
        _signer()
    except SigningError as exc:
        return [Error(f"The C2PA certificate or key cannot be used: {exc}", id="generation.E002")]
    return []


def c2pa_stream(
    chunks: Iterable[bytes], *, mime: str, model: str, version: str = "", title: str = ""
) -> Iterator[bytes]:
    """The file with a signed C2PA manifest embedded, streamed from a spooled temporary file."""
    import c2pa

    with (
        tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as source,
        tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as signed,
    ):
        for chunk in chunks:
            source.write(chunk)
        source.seek(0)
        try:
            builder = c2pa.Builder(c2pa_manifest(model=model, version=version, title=title))
            builder.sign(_signer(), mime, source, signed)
        except c2pa.C2paError as exc:
            raise SigningError(f"C2PA signing: {exc!r}") from exc
        signed.seek(0)
        while chunk := signed.read(256 * 1024):
            yield chunk


def read_c2pa(data: bytes, mime: str) -> dict | None:
    """The active C2PA manifest's actions and validation state, or None without a manifest."""
    import io

    import c2pa

    try:
        reader = c2pa.Reader(mime, io.BytesIO(data))
    except c2pa.C2paError:
        return None
    store = json.loads(reader.json())
    manifest = store["manifests"][store["active_manifest"]]
    actions = [
        action
        for assertion in manifest.get("assertions", [])
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"].get("actions", [])
    ]
    return {
        "actions": actions,
        "validation_state": store.get("validation_state", ""),
        "validation_status": [status.get("code") for status in store.get("validation_status") or []],
    }


# --- reading it back (tests, support) ---------------------------------------------------------------


_ATTRIBUTE = r'{name}\s*=\s*"([^"]*)"'


def read_marking(data: bytes) -> dict[str, str]:
    """What a stored file says about its origin: {"digital_source_type", "generator"} (empty
    when unmarked). Images: the first XMP packet; GLB: `asset`."""
    if data[:4] == b"glTF":
        (json_length,) = struct.unpack("<I", data[12:16])
        asset = json.loads(data[20 : 20 + json_length]).get("asset", {})
        extras = asset.get("extras") or {}
        return {"digital_source_type": extras.get("digitalSourceType", ""), "generator": asset.get("generator", "")}
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    if start < 0 or end < 0:
        return {"digital_source_type": "", "generator": ""}
    xml = data[start:end].decode("utf-8", "replace")
    found = {}
    for key, name in (("digital_source_type", "Iptc4xmpExt:DigitalSourceType"), ("generator", "xmp:CreatorTool")):
        match = re.search(_ATTRIBUTE.format(name=re.escape(name)), xml)
        found[key] = match.group(1).replace("&amp;", "&").replace("&quot;", '"') if match else ""
    return found
