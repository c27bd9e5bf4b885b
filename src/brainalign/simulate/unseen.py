"""Unseen images: extra stimuli never shown in any simulated scanner session (for synthetic fMRI)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .image_sets import category_index, latents, make_image_params_for, params_table, render_all
from .images import CATEGORIES


def write_unseen_images(root, n_per_category: int, seed: int, gt_dir) -> tuple:
    """Write ``root/<category>/unseen_<category>_NNNN.png`` (425x425 RGB) and ground truth.

    Returns
    -------
    (feats, category_index, latents)
        Inputs for the planted voxel models, in the row order of ``ground_truth/unseen_images.parquet``.
    """
    root, gt_dir = Path(root), Path(gt_dir)
    cats = [c for c in CATEGORIES for _ in range(n_per_category)]
    files = [f"{c}/unseen_{c}_{k % n_per_category + 1:04d}.png" for k, c in enumerate(cats)]
    for c in CATEGORIES:
        (root / c).mkdir(parents=True)
    params = make_image_params_for(cats, seed, "unseen_images")

    def sink(k, img):
        Image.fromarray(img).save(root / files[k], format="PNG", compress_level=1)

    feats = render_all(params, 425, sink, desc="unseen images")
    table = params_table(params, feats)
    table.insert(0, "path", files)
    table.insert(0, "stimulus", [f.split("/")[1] for f in files])
    table.to_parquet(gt_dir / "unseen_images.parquet", index=False)
    return feats, category_index(params), latents(params)
