"""Seed the model catalog: three offline local models and real Replicate models per kind.

Input names follow each model's schema on Replicate (checked 2026-11):
- black-forest-labs/flux-schnell: prompt, aspect_ratio, seed, num_outputs, output_format, go_fast
- black-forest-labs/flux-1.1-pro: prompt, aspect_ratio, seed, output_format, safety_tolerance
- black-forest-labs/flux-kontext-pro: prompt, input_image, aspect_ratio, seed, output_format
- black-forest-labs/flux-dev: prompt, image, prompt_strength, seed, num_outputs, output_format
- firtoz/trellis (version-pinned community model): images[], seed, texture_size, mesh_simplify,
  generate_model, generate_color; output {"model_file": <glb url>, ...}
"""

from django.db import migrations

RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]
STYLES = ["none", "photographic", "watercolor", "anime", "pixel-art", "3d-render", "line-art"]
PROMPT = {"type": "text", "required": True, "max_length": 2000}
NEGATIVE = {"type": "text", "max_length": 1000}
RATIO = {"type": "choice", "choices": RATIOS, "default": "1:1"}
STYLE = {"type": "choice", "choices": STYLES, "default": "none"}
SEED = {"type": "int", "min": 0, "max": 2147483647}
IMAGE = {"type": "image", "required": True}
STRENGTH = {"type": "float", "min": 0.05, "max": 1.0, "default": 0.6}

CATALOG = [
    {
        "slug": "local-canvas",
        "title": "Atelier Canvas (offline)",
        "description": "Our offline model: abstract pictures painted from your words, on this server, with no outside service.",
        "kind": "text_to_image",
        "provider": "local",
        "provider_model": "atelier/local-canvas",
        "credit_cost": 1,
        "order": 10,
        "parameters": {"prompt": PROMPT, "negative_prompt": NEGATIVE, "aspect_ratio": RATIO, "style": STYLE, "seed": SEED},
    },
    {
        "slug": "local-restyle",
        "title": "Atelier Restyle (offline)",
        "description": "Our offline editor: changes light, season and style of your picture, on this server.",
        "kind": "image_to_image",
        "provider": "local",
        "provider_model": "atelier/local-restyle",
        "credit_cost": 1,
        "order": 10,
        "parameters": {"prompt": PROMPT, "image": IMAGE, "strength": STRENGTH, "seed": SEED},
    },
    {
        "slug": "local-relief",
        "title": "Atelier Relief 3D (offline)",
        "description": "Our offline 3D maker: turns your picture into a textured relief model (GLB), on this server.",
        "kind": "image_to_3d",
        "provider": "local",
        "provider_model": "atelier/local-relief",
        "credit_cost": 2,
        "order": 10,
        "parameters": {"image": IMAGE},
    },
    {
        "slug": "flux-schnell",
        "title": "FLUX.1 [schnell]",
        "description": "Fast, good-looking images in a second or two.",
        "kind": "text_to_image",
        "provider": "replicate",
        "provider_model": "black-forest-labs/flux-schnell",
        "credit_cost": 1,
        "order": 20,
        "parameters": {"prompt": PROMPT, "aspect_ratio": RATIO, "style": STYLE, "seed": SEED},
        "input_map": {"prompt": "prompt", "aspect_ratio": "aspect_ratio", "seed": "seed"},
        "fixed_input": {"num_outputs": 1, "output_format": "png", "go_fast": True},
    },
    {
        "slug": "flux-1-1-pro",
        "title": "FLUX1.1 [pro]",
        "description": "Black Forest Labs' high-quality model: better composition and detail.",
        "kind": "text_to_image",
        "provider": "replicate",
        "provider_model": "black-forest-labs/flux-1.1-pro",
        "credit_cost": 4,
        "order": 30,
        "parameters": {"prompt": PROMPT, "aspect_ratio": RATIO, "style": STYLE, "seed": SEED},
        "input_map": {"prompt": "prompt", "aspect_ratio": "aspect_ratio", "seed": "seed"},
        "fixed_input": {"output_format": "png", "safety_tolerance": 2},
    },
    {
        "slug": "flux-kontext-pro",
        "title": "FLUX.1 Kontext [pro]",
        "description": "Edit by instruction: say what should change and keep the rest.",
        "kind": "image_to_image",
        "provider": "replicate",
        "provider_model": "black-forest-labs/flux-kontext-pro",
        "credit_cost": 4,
        "order": 20,
        "parameters": {"prompt": PROMPT, "image": IMAGE, "seed": SEED},
        "input_map": {"prompt": "prompt", "image": "input_image", "seed": "seed"},
        "fixed_input": {"aspect_ratio": "match_input_image", "output_format": "png"},
    },
    {
        "slug": "flux-dev-img2img",
        "title": "FLUX.1 [dev] image-to-image",
        "description": "Repaint your picture from a prompt; strength sets how far it may move.",
        "kind": "image_to_image",
        "provider": "replicate",
        "provider_model": "black-forest-labs/flux-dev",
        "credit_cost": 3,
        "order": 30,
        "parameters": {"prompt": PROMPT, "image": IMAGE, "strength": STRENGTH, "seed": SEED},
        "input_map": {"prompt": "prompt", "image": "image", "strength": "prompt_strength", "seed": "seed"},
        "fixed_input": {"num_outputs": 1, "output_format": "png"},
    },
    {
        "slug": "trellis",
        "title": "TRELLIS image-to-3D",
        "description": "Microsoft's TRELLIS: a textured 3D model (GLB) from one picture of an object.",
        "kind": "image_to_3d",
        "provider": "replicate",
        "provider_model": "firtoz/trellis",
        "provider_version": "4876f2a8da1c544772dffa32e8889da4a1bab3a1f5c1937bfcfccb99ae347251",
        "credit_cost": 10,
        "order": 20,
        "parameters": {"image": IMAGE, "seed": SEED},
        "input_map": {"image": "images[]", "seed": "seed"},
        "fixed_input": {
            "generate_model": True,
            "generate_color": False,
            "generate_normal": False,
            "texture_size": 1024,
            "mesh_simplify": 0.95,
            "randomize_seed": False,
        },
    },
]


def seed(apps, schema_editor):
    CatalogEntry = apps.get_model("generation", "CatalogEntry")
    for row in CATALOG:
        row = dict(row)
        slug = row.pop("slug")
        CatalogEntry.objects.update_or_create(slug=slug, defaults=row)


def unseed(apps, schema_editor):
    CatalogEntry = apps.get_model("generation", "CatalogEntry")
    CatalogEntry.objects.filter(slug__in=[row["slug"] for row in CATALOG], generations__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
