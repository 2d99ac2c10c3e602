"""What each catalog model accepts, and turning raw form/API values into clean parameters.

The parameter spec lives on the catalog row (see `CatalogEntry`); this module only reads it.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from generation.errors import InvalidInput
from generation.models import CatalogEntry, Kind

# Every ratio some model may offer, in display order. Which ones a model offers is its catalog
# row's `parameters["aspect_ratio"]["choices"]` (its own input schema's enum, migration 0005).
ASPECT_RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21"]
RATIO_LABELS = {"match_input_image": "Same as the input picture"}

# Style presets: a prompt suffix for hosted models, a look for the local model.
STYLE_PRESETS: dict[str, tuple[str, str]] = {
    "none": ("No style", ""),
    "photographic": ("Photographic", "photographic, natural light, sharp focus, high detail"),
    "watercolor": ("Watercolor", "watercolor painting, soft washes, paper texture"),
    "anime": ("Anime", "anime illustration, clean line art, vibrant colors"),
    "pixel-art": ("Pixel art", "pixel art, 16-bit, crisp pixels"),
    "3d-render": ("3D render", "3D render, studio lighting, octane"),
    "line-art": ("Line art", "minimal black ink line art on white"),
}

# Pixel sizes for the local renderer (hosted models size themselves from the ratio).
ASPECT_SIZES = {
    "1:1": (768, 768),
    "16:9": (1024, 576),
    "9:16": (576, 1024),
    "4:3": (896, 672),
    "3:4": (672, 896),
    "3:2": (960, 640),
    "2:3": (640, 960),
    "4:5": (704, 880),
    "5:4": (880, 704),
    "21:9": (1176, 504),
    "9:21": (504, 1176),
}

KIND_NEEDS_IMAGE = {Kind.IMAGE_TO_IMAGE, Kind.IMAGE_TO_3D}


@dataclass(frozen=True)
class CleanParams:
    prompt: str
    negative_prompt: str
    params: dict  # everything else, validated (aspect_ratio, style, seed, strength)


# Variations: how many results one run makes, where the model's catalog row accepts
# `num_outputs` (local-canvas; the FLUX models whose schema has it). Each costs the model's price.
MAX_OUTPUTS = 4


def outputs_of(params: dict | None) -> int:
    """How many results a run with these (clean) parameters asks for: 1..MAX_OUTPUTS."""
    try:
        count = int((params or {}).get("num_outputs") or 1)
    except (TypeError, ValueError):
        count = 1
    return max(1, min(MAX_OUTPUTS, count))


def cost_of(entry: CatalogEntry, params: dict | None) -> int:
    """Credits for one run: the model's price times the number of variations."""
    return entry.credit_cost * outputs_of(params)


def ratio_choices(entry: CatalogEntry | None) -> list[tuple[str, str]]:
    """The aspect ratios this model offers, as (value, label), from its catalog row."""
    rule = ((entry.parameters or {}) if entry else {}).get("aspect_ratio") or {}
    return [(ratio, RATIO_LABELS.get(ratio, ratio)) for ratio in rule.get("choices", [])]


def accepts(entry: CatalogEntry, name: str) -> bool:
    return name in (entry.parameters or {})


def clean_params(entry: CatalogEntry, raw: dict) -> CleanParams:
    """Validate raw values against the model's spec. Unknown parameters are ignored, not sent."""
    spec: dict = entry.parameters or {}
    clean: dict = {}
    for name, rule in spec.items():
        if rule.get("type") == "image":
            continue  # images are checked by generation.inputs
        value = raw.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            if rule.get("required"):
                raise InvalidInput(required_message(name), field=name)
            if "default" in rule:
                clean[name] = rule["default"]
            continue
        clean[name] = _check(name, rule, value)
    prompt = clean.pop("prompt", "")
    negative = clean.pop("negative_prompt", "")
    return CleanParams(prompt=prompt, negative_prompt=negative, params=clean)


def required_message(name: str) -> str:
    return {"prompt": "Describe what you want to see."}.get(name, f"{name.replace('_', ' ').capitalize()} is required.")


def _check(name: str, rule: dict, value):
    label = name.replace("_", " ").capitalize()
    kind = rule.get("type")
    if kind == "text":
        value = str(value)
        limit = int(rule.get("max_length", 2000))
        if len(value) > limit:
            raise InvalidInput(f"{label} is too long ({len(value)} characters; the limit is {limit}).", field=name)
        return value
    if kind == "choice":
        choices = rule.get("choices", [])
        if value not in choices:
            raise InvalidInput(f"{label} must be one of: {', '.join(map(str, choices))}.", field=name)
        return value
    if kind in {"int", "float"}:
        try:
            number = int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{label} must be a number.", field=name) from None
        if kind == "int" and isinstance(value, float) and not value.is_integer():
            raise InvalidInput(f"{label} must be a whole number.", field=name)
        low, high = rule.get("min"), rule.get("max")
        if (low is not None and number < low) or (high is not None and number > high):
            raise InvalidInput(f"{label} must be between {low} and {high}.", field=name)
        return number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"1", "true", "on", "yes"}
    raise InvalidInput(f"{label} is not supported.", field=name)


def provider_input(
    entry: CatalogEntry, *, prompt: str, negative_prompt: str, params: dict, image_url: str | None
) -> dict:
    """The provider's input dict: our names mapped to the model's, plus fixed values."""
    values = dict(params)
    style = values.pop("style", "none")
    suffix = STYLE_PRESETS.get(style, ("", ""))[1]
    if prompt:
        values["prompt"] = f"{prompt}, {suffix}" if suffix else prompt
    if negative_prompt:
        values["negative_prompt"] = negative_prompt
    if image_url:
        values["image"] = image_url
    payload = dict(entry.fixed_input or {})
    mapping = entry.input_map or {}
    for name, value in values.items():
        target = mapping.get(name)
        if not target:
            continue
        if target.endswith("[]"):  # the model wants a list (e.g. TRELLIS "images")
            payload[target[:-2]] = [value]
        else:
            payload[target] = value
    return payload


# --- the enabled entries by slug, kept in each process --------------------------------------------
#
# Every API and MCP submit names its model by slug; the catalog changes only when staff edit it in
# the admin. Each process keeps the enabled rows by slug and checks one shared token at most every
# VERSION_CHECK_SECONDS (a cache GET instead of a query; a cache round trip costs ~0.2 ms, a good
# part of a submit): saving or deleting an entry replaces the token, so this process reads the
# catalog afresh at once and every other one within a second. A write that bypasses the model's
# signals (a queryset update in a migration or a shell) is seen within ENTRIES_MAX_AGE.

ENTRIES_VERSION_KEY = "generation:catalog:version"
ENTRIES_MAX_AGE = 60.0  # seconds
VERSION_CHECK_SECONDS = 1.0


class _Entries:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: object = None
        self.loaded_at = float("-inf")
        self.checked_at = float("-inf")
        self.by_slug: dict[str, CatalogEntry] = {}

    def get(self, slug: str) -> CatalogEntry | None:
        now = time.monotonic()
        fresh = now - self.checked_at < VERSION_CHECK_SECONDS and now - self.loaded_at <= ENTRIES_MAX_AGE
        version = self.version if fresh else cache.get(ENTRIES_VERSION_KEY)
        with self.lock:
            if version != self.version or now - self.loaded_at > ENTRIES_MAX_AGE:
                self.by_slug = {entry.slug: entry for entry in CatalogEntry.objects.filter(enabled=True)}
                self.version, self.loaded_at = version, now
            self.checked_at = now
            entry = self.by_slug.get(slug)
        # A copy: the caller gets an instance of its own, as from a query.
        return copy.copy(entry) if entry is not None else None

    def forget(self) -> None:
        with self.lock:
            self.version, self.loaded_at, self.checked_at = None, float("-inf"), float("-inf")


_entries = _Entries()


def enabled_entry(slug: str) -> CatalogEntry | None:
    """The enabled catalog entry with this slug, or None, from this process's copy of the
    catalog (see above). Whether its provider is configured here is the caller's question
    (`generation.services.catalog_entry_available`)."""
    return _entries.get((slug or "").strip())


@receiver(post_save, sender=CatalogEntry, dispatch_uid="generation.catalog.entries_changed.save")
@receiver(post_delete, sender=CatalogEntry, dispatch_uid="generation.catalog.entries_changed.delete")
def _entries_changed(**kwargs) -> None:
    _entries.forget()
    cache.set(ENTRIES_VERSION_KEY, uuid.uuid4().hex, None)
