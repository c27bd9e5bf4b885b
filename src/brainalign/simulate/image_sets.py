"""The image sets of the simulated datasets: which images (balanced categories, generative parameters from a
seed stream), drawn and described (planted features, ground-truth table, category index, latents)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._io import progress
from .features import image_features, stack_features
from .images import CATEGORIES, make_image_params, render_image
from .seeds import seed_parts


def balanced_categories(n: int, rng: np.random.Generator) -> np.ndarray:
    """n category names, as balanced as possible over :data:`CATEGORIES`, shuffled."""
    return np.array(CATEGORIES)[rng.permutation(np.arange(n) % len(CATEGORIES))]


def make_image_params_for(categories, seed: int, code: str, *parts: int) -> list[dict]:
    """Image parameters for ``categories`` from the (seed, code, parts) stream (see images.make_image_params)."""
    return make_image_params(categories, seed_parts(seed, code, *parts))


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
    """int64 (n,): each image's category as an index into :data:`CATEGORIES`."""
    return np.array([CATEGORIES.index(p["category"]) for p in params], np.int64)


def latents(params: list[dict]) -> np.ndarray:
    """float64 (n, 2): [object scale z-scored with its known population law U(0.5, 1.3), exemplar]."""
    scale = np.array([p["scale"] for p in params])
    ex = np.array([p["exemplar"] for p in params])
    return np.column_stack([(scale - 0.9) / (0.8 / np.sqrt(12)), ex])


def subset_features(feats: dict, idx) -> dict:
    """The rows ``idx`` of every array of a stacked feature dict (see :func:`render_all`)."""
    return {k: v[idx] for k, v in feats.items()}
