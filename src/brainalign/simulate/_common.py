"""Helpers shared by the dataset writers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._io import progress
from .features import image_features, stack_features
from .images import CATEGORIES, render_image

#: seed-stream codes, one per purpose, so datasets never share random streams
CODE = {"nsd": 101, "nsd_images": 102, "nsd_subject": 103, "nsd_noise": 104,
        "b5k": 201, "b5k_images": 202, "b5k_subject": 203, "b5k_noise": 204,
        "things": 301, "things_images": 302, "things_subject": 303, "things_noise": 304,
        "unseen": 401, "unseen_images": 402}


def rng_for(seed: int, code: str, *parts: int) -> np.random.Generator:
    """Independent generator for (seed, purpose, parts...)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), CODE[code], *map(int, parts)]))


def balanced_categories(n: int, rng: np.random.Generator) -> np.ndarray:
    """n category names, as balanced as possible over :data:`CATEGORIES`, shuffled."""
    return np.array(CATEGORIES)[rng.permutation(np.arange(n) % len(CATEGORIES))]


def render_all(params: list[dict], size: int, sink=None, desc: str = "images") -> dict:
    """Draw every image, hand it to ``sink(k, image)``, and return stacked features (see features.py)."""
    feats = []
    for k, p in enumerate(progress(params, desc=desc, leave=False)):
        img = render_image(p, size)
        if sink is not None:
            sink(k, img)
        feats.append(image_features(img))
    out = stack_features(feats)
    out["contrast_energy"] = out["energy"].mean(axis=(1, 2, 3))
    return out


def params_table(params: list[dict], feats: dict) -> pd.DataFrame:
    """Generative parameters and summary features of a list of images (one row per image)."""
    df = pd.DataFrame(params)[["category", "scale", "pos_x", "pos_y", "hue", "clutter", "exemplar", "seed"]]
    df["contrast_energy"] = feats["contrast_energy"].astype(np.float64)
    df["contrast_left"] = feats["contrast_lr"][:, 0].astype(np.float64)
    df["contrast_right"] = feats["contrast_lr"][:, 1].astype(np.float64)
    return df


def category_index(params: list[dict]) -> np.ndarray:
    return np.array([CATEGORIES.index(p["category"]) for p in params], np.int64)


def latents(params: list[dict]) -> np.ndarray:
    """float64 (n, 2): [object scale z-scored with its known population law U(0.5, 1.3), exemplar]."""
    scale = np.array([p["scale"] for p in params])
    ex = np.array([p["exemplar"] for p in params])
    return np.column_stack([(scale - 0.9) / (0.8 / np.sqrt(12)), ex])


def subset_features(feats: dict, idx) -> dict:
    return {k: v[idx] for k, v in feats.items()}


def write_ctab(path, names) -> None:
    """FreeSurfer-style text label table: '0 Unknown' then 'index name' per line."""
    lines = ["0 Unknown"] + [f"{i} {n}" for i, n in enumerate(names, start=1)]
    path.write_text("\n".join(lines) + "\n")


def make_image_params_for(categories, seed: int, code: str, *parts: int) -> list[dict]:
    """Image parameters for ``categories`` from the (seed, code, parts) stream (see images.make_image_params)."""
    from .images import make_image_params

    return make_image_params(categories, [int(seed), CODE[code], *map(int, parts)])
