"""Procedurally drawn stimuli in five categories (faces, bodies, places, words, objects).

Every image is a pure function of its seed, so the simulator can redraw any stimulus on demand.
Images are varied within a category (position, scale, colour, pose, clutter) but each category keeps
recognisable structure: faces are skin ovals with eyes and a mouth, bodies are articulated figures,
places are scenes with a horizon and buildings, words are lines of letters on a sign, objects are
solid shaded shapes.
"""

from __future__ import annotations

import colorsys
import string

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

#: planted categories, in label order (category index = position in this tuple)
CATEGORIES = ("faces", "bodies", "places", "words", "objects")

_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int):
    size = int(max(6, size))
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except Exception:  # pragma: no cover - Pillow without FreeType
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _rgb(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (int(r * 255), int(g * 255), int(b * 255))


def sample_params(category: str, rng: np.random.Generator) -> dict:
    """Draw the generative parameters of one image.

    Returns a dict with ``category``, ``scale`` (object size, ~0.5-1.3), ``pos_x``/``pos_y`` (object centre,
    -1..1 image coordinates, x right, y up), ``hue`` (0..1), ``clutter`` (0..1 background clutter),
    ``exemplar`` (N(0,1) latent driving within-category response variability) and ``seed`` (drawing seed).
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    return {
        "category": category,
        "scale": float(rng.uniform(0.5, 1.3)),
        "pos_x": float(rng.uniform(-0.35, 0.35)),
        "pos_y": float(rng.uniform(-0.3, 0.3)),
        "hue": float(rng.uniform(0, 1)),
        "clutter": float(rng.uniform(0, 1)),
        "exemplar": float(rng.standard_normal()),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }


def _background(rng, size, hue, clutter, draw_clutter=True):
    # smooth low-frequency colour field + fine texture, composed at quarter resolution then upsampled
    small = max(16, size // 4)
    lo = rng.normal(0, 1, (6, 6, 3))
    base = np.array(_rgb(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.85)), np.float32)
    field = Image.fromarray(np.uint8(np.clip(128 + 40 * lo, 0, 255))).resize((small, small), Image.BICUBIC)
    arr = (np.asarray(field, np.float32) - 128) * 0.6 + base
    arr = np.round(arr / 6) * 6  # posterised: flat patches keep the stored files small
    img = Image.fromarray(np.uint8(np.clip(arr, 0, 255))).resize((size, size), Image.BILINEAR)
    if draw_clutter:
        d = ImageDraw.Draw(img)
        for _ in range(int(2 + 14 * clutter)):
            c = _rgb(rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.2, 0.9))
            x0, y0 = rng.uniform(0, size, 2)
            r = rng.uniform(0.02, 0.12) * size
            if rng.uniform() < 0.5:
                d.line([x0, y0, x0 + rng.normal(0, 2 * r), y0 + rng.normal(0, 2 * r)], fill=c, width=max(1, int(r / 8)))
            else:
                d.ellipse([x0 - r, y0 - r * rng.uniform(0.4, 1), x0 + r, y0 + r], outline=c, width=max(1, int(r / 10)))
    return img


def _centre(p, size):
    return (size / 2 * (1 + p["pos_x"]), size / 2 * (1 - p["pos_y"]))


def _draw_face(img, p, rng, size):
    d = ImageDraw.Draw(img)
    cx, cy = _centre(p, size)
    s = p["scale"] * size * 0.28
    w, h = s * rng.uniform(0.72, 0.85), s
    skin = _rgb(0.05 + 0.04 * rng.uniform(), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
    hair = _rgb(p["hue"] * 0.15, rng.uniform(0.3, 0.9), rng.uniform(0.05, 0.5))
    d.ellipse([cx - w * 1.05, cy - h * 1.08, cx + w * 1.05, cy + h * 0.2], fill=hair)  # hair
    d.ellipse([cx - w, cy - h, cx + w, cy + h], fill=skin)
    ey = cy - h * rng.uniform(0.15, 0.3)
    ex = w * rng.uniform(0.35, 0.5)
    er = s * rng.uniform(0.08, 0.13)
    look = rng.uniform(-0.4, 0.4) * er
    for sx in (-1, 1):
        d.ellipse([cx + sx * ex - er * 1.4, ey - er * 0.8, cx + sx * ex + er * 1.4, ey + er * 0.8], fill=(245, 245, 245))
        d.ellipse([cx + sx * ex - er * 0.6 + look, ey - er * 0.6, cx + sx * ex + er * 0.6 + look, ey + er * 0.6], fill=(20, 15, 10))
        by = ey - er * rng.uniform(1.4, 2.2)
        d.line([cx + sx * ex - er * 1.5, by + rng.uniform(-3, 3), cx + sx * ex + er * 1.5, by], fill=hair, width=max(2, int(er / 2.5)))
    d.line([cx, ey + er, cx - er * 0.5, cy + h * 0.25, cx + er * 0.3, cy + h * 0.3], fill=tuple(int(c * 0.7) for c in skin), width=max(2, int(er / 3)))
    my = cy + h * rng.uniform(0.45, 0.6)
    mw = w * rng.uniform(0.3, 0.55)
    smile = rng.uniform(-0.3, 1.0)
    d.chord([cx - mw, my - mw * 0.5 * abs(smile) - 2, cx + mw, my + mw * 0.5 * abs(smile) + 2],
            0 if smile > 0 else 180, 180 if smile > 0 else 360, fill=(150, 40, 50))


def _draw_body(img, p, rng, size):
    d = ImageDraw.Draw(img)
    cx, cy = _centre(p, size)
    s = p["scale"] * size * 0.36
    cloth = _rgb(p["hue"], rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.9))
    pants = _rgb(p["hue"] + 0.5, rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.7))
    skin = _rgb(0.07, rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
    lw = max(3, int(s * rng.uniform(0.12, 0.2)))
    neck = (cx, cy - s * 0.6)
    hip = (cx + rng.uniform(-0.1, 0.1) * s, cy + s * 0.3)
    # limbs: shoulder/hip anchored segments with random joint angles
    for side in (-1, 1):
        sh = (neck[0] + side * s * 0.25, neck[1] + s * 0.05)
        a1 = np.pi / 2 + side * rng.uniform(0.2, 1.4)
        el = (sh[0] + side * abs(np.cos(a1)) * s * 0.45, sh[1] + np.sin(a1) * s * 0.45 * rng.choice([-1, 1]))
        a2 = rng.uniform(0, 2 * np.pi)
        wr = (el[0] + np.cos(a2) * s * 0.4, el[1] + np.sin(a2) * s * 0.4)
        d.line([sh, el, wr], fill=cloth, width=lw, joint="curve")
        d.ellipse([wr[0] - lw * 0.7, wr[1] - lw * 0.7, wr[0] + lw * 0.7, wr[1] + lw * 0.7], fill=skin)
        hp = (hip[0] + side * s * 0.15, hip[1])
        kn = (hp[0] + side * rng.uniform(0.0, 0.3) * s, hp[1] + s * rng.uniform(0.35, 0.5))
        ft = (kn[0] + rng.uniform(-0.25, 0.25) * s, kn[1] + s * rng.uniform(0.35, 0.5))
        d.line([hp, kn, ft], fill=pants, width=int(lw * 1.2), joint="curve")
    d.polygon([(neck[0] - s * 0.3, neck[1]), (neck[0] + s * 0.3, neck[1]), (hip[0] + s * 0.25, hip[1]), (hip[0] - s * 0.25, hip[1])], fill=cloth)
    hr = s * 0.2
    d.ellipse([neck[0] - hr, neck[1] - 2.1 * hr, neck[0] + hr, neck[1] - 0.1 * hr], fill=skin)


def _draw_place(img, p, rng, size):
    d = ImageDraw.Draw(img)
    horizon = size * (0.5 - 0.35 * p["pos_y"])
    sky = _rgb(0.55 + 0.1 * rng.uniform(), rng.uniform(0.2, 0.6), rng.uniform(0.6, 1.0))
    ground = _rgb(p["hue"] * 0.3 + 0.05, rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6))
    d.rectangle([0, 0, size, horizon], fill=sky)
    d.rectangle([0, horizon, size, size], fill=ground)
    # perspective lines towards a vanishing point
    vx = size / 2 * (1 + p["pos_x"])
    for k in range(int(3 + 5 * rng.uniform())):
        ex = rng.uniform(-0.5, 1.5) * size
        d.line([vx, horizon, ex, size], fill=tuple(int(c * 0.6) for c in ground), width=max(1, size // 150))
    nb = int(2 + 5 * rng.uniform())
    x = rng.uniform(-0.1, 0.1) * size
    for _ in range(nb):
        bw = size * rng.uniform(0.08, 0.25) * p["scale"]
        bh = size * rng.uniform(0.15, 0.55) * p["scale"]
        col = _rgb(p["hue"] + rng.uniform(-0.15, 0.15), rng.uniform(0.05, 0.5), rng.uniform(0.3, 0.9))
        d.rectangle([x, horizon - bh, x + bw, horizon], fill=col, outline=(30, 30, 30))
        win = tuple(int(c * 0.45) for c in col)
        step = max(4.0, bw / rng.integers(2, 5))
        for wy in np.arange(horizon - bh + step * 0.4, horizon - step * 0.6, step):
            for wx in np.arange(x + step * 0.3, x + bw - step * 0.5, step):
                d.rectangle([wx, wy, wx + step * 0.45, wy + step * 0.5], fill=win)
        if rng.uniform() < 0.4:  # roof
            d.polygon([(x, horizon - bh), (x + bw / 2, horizon - bh - bw * 0.4), (x + bw, horizon - bh)], fill=win)
        x += bw + rng.uniform(0, 0.1) * size


def _draw_words(img, p, rng, size):
    d = ImageDraw.Draw(img)
    cx, cy = _centre(p, size)
    fs = int(size * 0.11 * p["scale"] + 6)
    font = _font(fs)
    nlines = int(rng.integers(1, 4))
    lines = ["".join(rng.choice(list(string.ascii_uppercase + "  "), int(rng.integers(4, 10)))).strip() or "AB" for _ in range(nlines)]
    width = max(d.textlength(t, font=font) for t in lines)
    height = nlines * fs * 1.25
    paper = _rgb(p["hue"], rng.uniform(0.0, 0.3), rng.uniform(0.8, 1.0))
    ink = _rgb(p["hue"] + 0.5, rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.3))
    pad = fs * 0.5
    d.rectangle([cx - width / 2 - pad, cy - height / 2 - pad, cx + width / 2 + pad, cy + height / 2 + pad], fill=paper, outline=ink)
    for i, t in enumerate(lines):
        d.text((cx - width / 2, cy - height / 2 + i * fs * 1.25), t, fill=ink, font=font)


def _draw_object(img, p, rng, size):
    d = ImageDraw.Draw(img)
    cx, cy = _centre(p, size)
    s = p["scale"] * size * 0.22
    col = _rgb(p["hue"], rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.0))
    dark = tuple(int(c * 0.55) for c in col)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # irregular convex blob
        ang = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        rad = s * rng.uniform(0.7, 1.2, ang.size)
        d.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(ang, rad)], fill=col, outline=dark)
    elif kind == 1:  # mug / container
        d.rectangle([cx - s * 0.6, cy - s * 0.8, cx + s * 0.6, cy + s * 0.8], fill=col, outline=dark, width=3)
        d.arc([cx + s * 0.35, cy - s * 0.4, cx + s * 1.05, cy + s * 0.4], -90, 90, fill=dark, width=max(3, int(s / 6)))
        d.ellipse([cx - s * 0.6, cy - s * 0.95, cx + s * 0.6, cy - s * 0.65], fill=dark)
    elif kind == 2:  # star / tool head
        n = int(rng.integers(4, 7))
        pts = []
        for k in range(2 * n):
            r = s * (1.0 if k % 2 == 0 else rng.uniform(0.35, 0.55))
            a = np.pi * k / n + rng.uniform(0, 0.2)
            pts.append((cx + r * np.cos(a), cy + r * np.sin(a)))
        d.polygon(pts, fill=col, outline=dark)
    else:  # ball with shading
        for k in range(6):
            f = 1 - k / 7
            c = tuple(int(min(255, v * (0.6 + 0.1 * k))) for v in col)
            d.ellipse([cx - s * f - k * s * 0.05, cy - s * f - k * s * 0.05, cx + s * f - k * s * 0.05, cy + s * f - k * s * 0.05], fill=c)
    if rng.uniform() < 0.5:  # a second, smaller object
        ox, oy = cx + rng.uniform(-1.5, 1.5) * s, cy + rng.uniform(0.8, 1.4) * s
        r2 = s * rng.uniform(0.25, 0.45)
        d.rectangle([ox - r2, oy - r2 * 0.6, ox + r2, oy + r2 * 0.6], fill=_rgb(p["hue"] + 0.3, 0.7, 0.8), outline=dark)


_DRAW = {"faces": _draw_face, "bodies": _draw_body, "places": _draw_place, "words": _draw_words, "objects": _draw_object}


def render_image(params: dict, size: int = 425) -> np.ndarray:
    """Draw one image from its parameters (see :func:`sample_params`).

    Parameters
    ----------
    params : dict
        Output of :func:`sample_params`.
    size : int
        Side length in pixels (square image).

    Returns
    -------
    numpy.ndarray
        uint8 (size, size, 3) RGB image.
    """
    rng = np.random.default_rng(params["seed"])
    cat = params["category"]
    img = _background(rng, size, params["hue"] + 0.5, params["clutter"], draw_clutter=cat != "places")
    _DRAW[cat](img, params, rng, size)
    if cat == "places" and params["clutter"] > 0.5:
        img = img.filter(ImageFilter.SMOOTH)
    return np.asarray(img, dtype=np.uint8).copy()


def make_image_params(categories, seed_parts) -> list[dict]:
    """Parameters for a list of images, one independent stream per image.

    Parameters
    ----------
    categories : sequence of str
        Category of each image.
    seed_parts : sequence of int
        Seed entropy shared by this image set (e.g. ``[seed, dataset_code]``); image k uses
        ``SeedSequence([*seed_parts, k])``.
    """
    out = []
    for k, cat in enumerate(categories):
        rng = np.random.default_rng(np.random.SeedSequence([*map(int, seed_parts), k]))
        out.append(sample_params(str(cat), rng))
    return out
