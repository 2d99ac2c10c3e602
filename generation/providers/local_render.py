"""The offline models' real work: pictures from a prompt, prompt-guided edits, relief meshes.

Nothing here is a neural network; it is deterministic image processing (Pillow, NumPy) and
meshing (trimesh) that produces real files of the right kind, so the whole pipeline (storage,
thumbnails, the 3D viewer, downloads) runs with no keys and no network. The same prompt, seed
and size always give the same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

# Words that steer the palette; anything else gets hues derived from the prompt's hash.
COLOR_WORDS: dict[str, tuple[int, int, int]] = {
    "red": (214, 48, 49),
    "orange": (240, 140, 40),
    "sunset": (246, 114, 72),
    "dawn": (250, 170, 120),
    "gold": (230, 180, 60),
    "yellow": (245, 210, 60),
    "green": (60, 170, 90),
    "forest": (40, 110, 60),
    "blue": (50, 110, 220),
    "sea": (30, 120, 170),
    "ocean": (20, 90, 160),
    "sky": (120, 180, 240),
    "night": (25, 30, 70),
    "winter": (190, 215, 240),
    "snow": (235, 240, 250),
    "purple": (130, 70, 190),
    "pink": (240, 130, 180),
    "black": (20, 20, 24),
    "white": (245, 245, 245),
    "desert": (220, 180, 120),
    "fire": (230, 80, 30),
}

# Edits the local model understands; the strongest match in the prompt wins.
EDIT_MOODS: dict[str, str] = {
    "black and white": "mono",
    "monochrome": "mono",
    "noir": "mono",
    "sketch": "sketch",
    "drawing": "sketch",
    "pencil": "sketch",
    "blur": "soft",
    "dream": "soft",
    "soft": "soft",
    "vintage": "sepia",
    "old": "sepia",
    "sepia": "sepia",
    "invert": "invert",
    "negative": "invert",
    "pixel": "pixel",
    "poster": "poster",
    "pop art": "poster",
}


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - art, not security


def _palette(prompt: str, rng: random.Random) -> list[tuple[int, int, int]]:
    text = prompt.lower()
    colors = [rgb for word, rgb in COLOR_WORDS.items() if word in text]
    while len(colors) < 3:
        hue = rng.random()
        r, g, b = colorsys.hsv_to_rgb(hue, 0.45 + rng.random() * 0.4, 0.55 + rng.random() * 0.4)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors[:4]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def render_text_to_image(
    *, prompt: str, negative_prompt: str, seed: int, width: int, height: int, style: str = "none"
) -> bytes:
    """A composed scene (sky gradient, sun, layered hills, scattered forms) coloured by the prompt."""
    rng = _rng(prompt, negative_prompt, seed, width, height, style)
    colors = _palette(prompt, rng)
    top, bottom = np.array(colors[0], float), np.array(colors[1], float)
    t = np.linspace(0, 1, height)[:, None, None]
    sky = (top * (1 - t) + bottom * t).repeat(width, axis=1)
    image = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image, "RGBA")

    # A sun or moon.
    radius = int(min(width, height) * (0.08 + rng.random() * 0.08))
    cx, cy = int(width * (0.2 + rng.random() * 0.6)), int(height * (0.15 + rng.random() * 0.25))
    glow = colors[2]
    for step in range(6, 0, -1):
        r = radius + step * radius // 3
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*glow, 18))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*glow, 235))

    # Layered hills, darker towards the front.
    layers = 3 + rng.randrange(3)
    base = np.array(colors[-1], float)
    for layer in range(layers):
        depth = (layer + 1) / layers
        shade = tuple(int(c * (1.05 - 0.55 * depth)) for c in base)
        horizon = height * (0.45 + 0.45 * depth)
        amplitude = height * (0.05 + rng.random() * 0.08)
        phase, freq = rng.random() * 6.28, 1.5 + rng.random() * 3
        points = [(0, height)]
        for x in range(0, width + 16, 16):
            y = horizon - amplitude * np.sin(phase + freq * x / width * 3.14) - amplitude * 0.4 * np.sin(x / 37.0)
            points.append((x, int(y)))
        points.append((width, height))
        draw.polygon(points, fill=(*shade, 255))

    # Scattered forms: one per word of the prompt (capped), so different prompts look different.
    words = [w for w in prompt.split() if w.isalpha()][:12]
    for index, word in enumerate(words):
        wr = _rng(word, seed, index)
        x, y = int(wr.random() * width), int(height * (0.1 + wr.random() * 0.5))
        size = int(min(width, height) * (0.01 + wr.random() * 0.03))
        color = colors[index % len(colors)]
        draw.ellipse((x - size, y - size, x + size, y + size), fill=(*color, 160))

    image = _apply_style(image, style, rng)

    # A quiet caption so the picture says what it was asked for.
    caption = (prompt[:80] + "…") if len(prompt) > 80 else prompt
    if caption:
        font = _font(max(14, width // 40))
        band = max(28, height // 14)
        overlay = ImageDraw.Draw(image, "RGBA")
        overlay.rectangle((0, height - band, width, height), fill=(0, 0, 0, 110))
        overlay.text((12, height - band + band // 4), caption, fill=(255, 255, 255, 230), font=font)
    return _png(image)


def _apply_style(image: Image.Image, style: str, rng: random.Random) -> Image.Image:
    width, height = image.size
    if style == "pixel-art":
        small = image.resize((max(1, width // 12), max(1, height // 12)), Image.Resampling.BILINEAR)
        return ImageOps.posterize(small, 4).resize((width, height), Image.Resampling.NEAREST)
    if style == "watercolor":
        soft = image.filter(ImageFilter.GaussianBlur(6))
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 10, (height, width, 1))
        return Image.fromarray(np.clip(np.asarray(soft, float) + noise, 0, 255).astype(np.uint8), "RGB")
    if style == "anime":
        return ImageOps.posterize(image.filter(ImageFilter.SMOOTH_MORE), 3)
    if style == "line-art":
        edges = ImageOps.invert(image.convert("L").filter(ImageFilter.FIND_EDGES))
        return ImageOps.autocontrast(edges).convert("RGB")
    if style == "3d-render":
        return image.filter(ImageFilter.EMBOSS).convert("RGB").point(lambda v: min(255, int(v * 1.1)))
    if style == "photographic":
        return image.filter(ImageFilter.DETAIL)
    return image


def edit_image(*, image: bytes, prompt: str, strength: float, seed: int) -> bytes:
    """Change the input as the prompt says, blended with the original by `strength` (0–1)."""
    strength = min(1.0, max(0.0, strength))
    with Image.open(io.BytesIO(image)) as opened:
        source = opened.convert("RGB")
    text = prompt.lower()
    mood = next((m for word, m in EDIT_MOODS.items() if word in text), "tint")
    if mood == "mono":
        edited = ImageOps.grayscale(source).convert("RGB")
    elif mood == "sketch":
        edited = ImageOps.autocontrast(ImageOps.invert(source.convert("L").filter(ImageFilter.FIND_EDGES)))
        edited = edited.convert("RGB")
    elif mood == "soft":
        edited = source.filter(ImageFilter.GaussianBlur(max(1, source.width // 80)))
    elif mood == "sepia":
        edited = ImageOps.colorize(ImageOps.grayscale(source), black=(40, 26, 13), white=(255, 240, 200))
    elif mood == "invert":
        edited = ImageOps.invert(source)
    elif mood == "pixel":
        small = source.resize((max(1, source.width // 10), max(1, source.height // 10)), Image.Resampling.BILINEAR)
        edited = small.resize(source.size, Image.Resampling.NEAREST)
    elif mood == "poster":
        edited = ImageOps.posterize(source, 2)
    else:
        # Tint towards the prompt's colours (e.g. "make it winter" → cool and light).
        colors = _palette(prompt, _rng(prompt, seed))
        luminance = np.asarray(ImageOps.grayscale(source), float)[..., None] / 255.0
        dark, light = np.array(colors[-1], float) * 0.35, np.array(colors[0], float)
        mapped = dark * (1 - luminance) + light * luminance
        edited = Image.fromarray(np.clip(mapped, 0, 255).astype(np.uint8), "RGB")
    return _png(Image.blend(source, edited, strength))


def image_to_glb(*, image: bytes, grid: int = 96, relief: float = 0.18) -> bytes:
    """A relief: the picture's brightness as height on a grid, textured with the picture, as GLB."""
    with Image.open(io.BytesIO(image)) as opened:
        picture = opened.convert("RGB")
    aspect = picture.height / picture.width
    cols = max(8, grid if aspect <= 1 else int(grid / aspect))
    rows = max(8, int(cols * aspect))
    height_map = (
        np.asarray(ImageOps.grayscale(picture).filter(ImageFilter.GaussianBlur(1)).resize((cols, rows)), float) / 255.0
    )

    xs = np.linspace(-0.5, 0.5, cols)
    ys = np.linspace(0.5 * aspect, -0.5 * aspect, rows)
    grid_x, grid_y = np.meshgrid(xs, ys)
    vertices = np.column_stack([grid_x.ravel(), grid_y.ravel(), (height_map * relief).ravel()])
    u, v = np.meshgrid(np.linspace(0, 1, cols), np.linspace(1, 0, rows))
    uv = np.column_stack([u.ravel(), v.ravel()])

    index = np.arange(rows * cols).reshape(rows, cols)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, c, b]), np.column_stack([b, c, d])])

    texture = picture.copy()
    texture.thumbnail((1024, 1024))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=0.9)
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
    return mesh.export(file_type="glb")
