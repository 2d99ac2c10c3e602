"""Each model offers exactly the aspect ratios its own input schema accepts (issue 9).

From each model's `aspect_ratio` enum on Replicate (checked 2026-11 against the schemas as
mirrored in public clients of Replicate's API):
- black-forest-labs/flux-schnell: 1:1 16:9 21:9 3:2 2:3 4:5 5:4 3:4 4:3 9:16 9:21
- black-forest-labs/flux-1.1-pro: custom 1:1 16:9 3:2 2:3 4:5 5:4 9:16 3:4 4:3 (no 21:9 / 9:21;
  "custom" needs width/height, which we don't offer)
- black-forest-labs/flux-kontext-pro: match_input_image 1:1 16:9 9:16 4:3 3:4 3:2 2:3 4:5 5:4
  21:9 9:21 (some later schema copies add 2:1 / 1:2; not offered until confirmed)
- black-forest-labs/flux-dev has the schnell list, but our row is image-to-image, where the
  schema says the output takes the input image's ratio: no ratio is offered there.
- atelier/local-canvas (ours) renders every ratio in `generation.catalog.ASPECT_SIZES`.

The rows are updated in place (staff may have edited them: only the ratio rule and its mapping
change). Reversing restores the previous single list.
"""

from django.db import migrations

COMMON = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4"]
WIDE = ["21:9", "9:21"]
RATIOS = {
    "local-canvas": (COMMON + WIDE, "1:1"),
    "flux-schnell": (COMMON + WIDE, "1:1"),
    "flux-1-1-pro": (COMMON, "1:1"),
    "flux-kontext-pro": (["match_input_image", *COMMON, *WIDE], "match_input_image"),
}
PREVIOUS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]


def offer_schema_ratios(apps, schema_editor):
    CatalogEntry = apps.get_model("generation", "CatalogEntry")
    for slug, (choices, default) in RATIOS.items():
        entry = CatalogEntry.objects.filter(slug=slug).first()
        if entry is None:
            continue
        parameters = dict(entry.parameters or {})
        parameters["aspect_ratio"] = {"type": "choice", "choices": choices, "default": default}
        entry.parameters = parameters
        if entry.provider != "local":
            entry.input_map = {**(entry.input_map or {}), "aspect_ratio": "aspect_ratio"}
            # Kontext sent a fixed "match_input_image"; it is now the person's choice (its default).
            entry.fixed_input = {k: v for k, v in (entry.fixed_input or {}).items() if k != "aspect_ratio"}
        entry.save(update_fields=["parameters", "input_map", "fixed_input", "updated_at"])


def restore_previous_ratios(apps, schema_editor):
    CatalogEntry = apps.get_model("generation", "CatalogEntry")
    for slug in RATIOS:
        entry = CatalogEntry.objects.filter(slug=slug).first()
        if entry is None:
            continue
        parameters = dict(entry.parameters or {})
        if slug == "flux-kontext-pro":
            parameters.pop("aspect_ratio", None)
            entry.input_map = {k: v for k, v in (entry.input_map or {}).items() if k != "aspect_ratio"}
            entry.fixed_input = {**(entry.fixed_input or {}), "aspect_ratio": "match_input_image"}
        else:
            parameters["aspect_ratio"] = {"type": "choice", "choices": PREVIOUS, "default": "1:1"}
        entry.parameters = parameters
        entry.save(update_fields=["parameters", "input_map", "fixed_input", "updated_at"])


class Migration(migrations.Migration):
    dependencies = [("generation", "0004_generation_retry_once")]
    operations = [migrations.RunPython(offer_schema_ratios, restore_previous_ratios)]
