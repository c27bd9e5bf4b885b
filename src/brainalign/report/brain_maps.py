"""The report's brain maps (nilearn): where on the brain a model predicts well, and where synthetic fMRI matches
the real responses, drawn in each subject's own space over its mean image with ROI outlines.

- ``brainmap_encoding_<subject>``: one figure per NSD subject, a row per model: the noise-ceiling-normalised
  encoding accuracy of each voxel (its CV-chosen layer; the encoder's ``maps/selected_score.nii.gz``,
  docs/encoding.md) as axial slices and as a glass brain.
- ``brainmap_synthetic_<subject>``: one figure per subject of the synthetic stage (repeated split): per voxel,
  the correlation across test images of the synthetic responses with the real repetitions (claim 1,
  ``c_syn``) above that of real repetitions with each other (``c_real``), from ``claim1_voxels.parquet``.

The NIfTI maps drawn are written beside each figure (``<figure>_<map>.nii.gz``) for any viewer. The subject's
mean image is the store's (:meth:`brainalign.store.VoxelStore.mean_volume`); the outlines are its ROIs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import shutil
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import find
from ..plotting import pyplot, save_figure
from .sources import inputs

log = logging.getLogger(__name__)

#: the encoder map drawn: each voxel's noise-ceiling-normalised test score with its CV-chosen layer
ENCODING_MAP = "selected_score"
#: the synthetic-stage split whose claim-1 voxel map is drawn (real repetitions of held-out images)
SYNTHETIC_SPLIT = "repeated"
#: label atlases too broad to outline (they cover most of the stored voxels)
BROAD_ATLASES = ("nsdgeneral", "streams")
#: outlines drawn at most (largest first)
MAX_OUTLINES = 6
#: axial slices per row
N_SLICES = 5


def roi_outlines(store) -> dict:
    """ROI masks to outline, as NIfTI images of the store's grid (1 inside): each label atlas (all its labels;
    :data:`BROAD_ATLASES` left out) and each membership ROI with the hemispheres merged (``LHPPA`` + ``RHPPA``
    -> ``PPA``); at most :data:`MAX_OUTLINES`, largest first.

    Returns
    -------
    dict name -> nibabel.Nifti1Image (X, Y, Z) float32
    """
    masks: dict[str, np.ndarray] = {}
    atlases = store.roi_atlases()
    for atlas in atlases:
        if atlas not in BROAD_ATLASES:
            masks[atlas] = store.roi_mask(atlas)
    for name in store.roi_names():
        if name.split("/")[0] in atlases:
            continue
        merged = re.sub(r"^(LH|RH|lh\.|rh\.)", "", name)
        masks[merged] = masks.get(merged, np.zeros(store.n_voxels, bool)) | store.roi_mask(name)
    ranked = sorted((m for m in masks.items() if m[1].any()), key=lambda item: -item[1].sum())[:MAX_OUTLINES]
    return {name: store.to_nifti(mask.astype(np.float32), fill_value=0.0) for name, mask in ranked}


def _slice_coords(img, n: int = N_SLICES) -> list[float]:
    """World z of ``n`` axial slices spread over the voxels where the map is defined."""
    data = np.asarray(img.dataobj)
    ijk = np.argwhere(np.isfinite(data) & (data != 0))
    if not len(ijk):
        ijk = np.argwhere(np.ones(data.shape, bool))
    z = (img.affine[:3, :3] @ ijk.T + img.affine[:3, 3:4])[2]
    return sorted({float(v) for v in np.quantile(z, np.linspace(0.1, 0.9, n))})


@contextlib.contextmanager
def _gc_frozen():
    """Keep the objects that exist out of garbage collection while nilearn draws: its image reader runs
    ``gc.collect()`` on every call, which otherwise rescans every artist of the figure each time (most of the
    drawing time)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def brain_map_figure(rows, background, outlines, path, *, title: str, cmap: str, vmax: float,
                     symmetric: bool, colorbar_label: str) -> None:
    """One figure: a row per map, axial slices over ``background`` with ROI outlines, and a glass brain.

    Parameters
    ----------
    rows : list of (label, nibabel image)
        The maps (same grid as ``background``); NaN where undefined (drawn transparent, like exact zeros).
    background : nibabel image
        The subject's mean image.
    outlines : dict name -> nibabel image
        ROI masks (1 inside), drawn as contours on the slices; their colours are explained in a legend.
    path : Path
        PNG written (atomically).
    title : str
    cmap : str
        A matplotlib colour map; one colour scale for every row: ``[-vmax, vmax]`` if ``symmetric``, else
        ``[0, vmax]``, shown once in a colour bar labelled ``colorbar_label``.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from nilearn import plotting

    plt = pyplot()
    colors = plt.get_cmap("tab10").colors
    height = 2.0 * len(rows) + 1.3
    fig = plt.figure(figsize=(13, height))
    grid = fig.add_gridspec(len(rows), 2, width_ratios=[3.3, 1.7], left=0.01, right=0.9, top=1 - 0.5 / height,
                            bottom=0.75 / height, wspace=0.02, hspace=0.1)
    vmin = -vmax if symmetric else 0.0
    # transparent where undefined: nilearn draws NaN as 0, and values within the threshold of 0 not at all
    style = dict(cmap=cmap, vmin=vmin, vmax=vmax, colorbar=False, threshold=1e-6 * vmax, annotate=False)
    cuts = _slice_coords(rows[0][1])
    with _gc_frozen(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Non-finite values detected")  # NaN outside the stored voxels: intended
        for r, (label, img) in enumerate(rows):
            ax_slices, ax_glass = fig.add_subplot(grid[r, 0]), fig.add_subplot(grid[r, 1])
            gc.freeze()
            display = plotting.plot_stat_map(img, bg_img=background, display_mode="z", cut_coords=cuts,
                                             axes=ax_slices, figure=fig, title=label, draw_cross=False,
                                             black_bg=True, **style)
            for k, outline in enumerate(outlines.values()):
                display.add_contours(outline, levels=[0.5], colors=[colors[k % len(colors)]], linewidths=1.0)
            gc.freeze()
            plotting.plot_glass_brain(img, display_mode="ortho", axes=ax_glass, figure=fig, plot_abs=False,
                                      black_bg=False, **style)
    bar = fig.add_axes([0.915, 0.75 / height + 0.05, 0.012, 1 - 1.25 / height - 0.1])
    fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=bar, label=colorbar_label)
    handles = [Line2D([], [], color=colors[k % len(colors)], lw=1.5) for k in range(len(outlines))]
    if handles:
        fig.legend(handles, list(outlines), loc="lower center", ncol=min(len(handles), 6), frameon=False,
                   fontsize=8, title="ROI outlines (slices)", title_fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height)
    save_figure(fig, path, dpi=90)


def _vmax(images, fallback: float) -> float:
    values = np.concatenate([np.asarray(img.dataobj, dtype=np.float64).ravel() for img in images])
    values = np.abs(values[np.isfinite(values)])
    top = float(np.quantile(values, 0.99)) if values.size else 0.0
    return top if top > 0 else fallback


def encoding_brain_maps(results, out: Path) -> list[str]:
    """Write ``brainmap_encoding_<subject>.png`` (a row per model) and the maps beside it; return the names.

    Parameters
    ----------
    results : path-like
        The results folder (encoders under ``encoding/nsd/<subject>/<model>/nsd-shared``, stores under ``stores``).
    out : Path
        The report's figure folder.
    """
    import nibabel as nib

    from ..store import open_voxel_store

    patterns = inputs(results)
    by_subject = defaultdict(list)
    for values, path in find(patterns["encoding_score_map"]):
        by_subject[values["subject"]].append((values["model"], path))
    names = []
    for subject, maps in sorted(by_subject.items()):
        store_path = Path(patterns["voxel_store"].format(dataset="nsd", subject=subject))
        if not store_path.exists():
            log.warning("%s: no store; brain maps of %s skipped", store_path, subject)
            continue
        store = open_voxel_store(store_path)
        name = f"brainmap_encoding_{subject}"
        rows = []
        for model, path in maps:
            img = nib.load(str(path))
            shutil.copyfile(path, out / f"{name}_{model}.nii.gz")
            data = np.asarray(img.dataobj, dtype=np.float64)
            median = np.nanmedian(data) if np.isfinite(data).any() else np.nan
            rows.append((f"{model}  (median {median:.2f})", img))
        brain_map_figure(rows, store.mean_volume(), roi_outlines(store), out / f"{name}.png",
                         title=f"NSD {subject}: noise-ceiling-normalised encoding accuracy per voxel (held-out shared "
                               "images; each voxel's CV-chosen layer)",
                         cmap="inferno", vmax=_vmax([img for _, img in rows], 1.0), symmetric=False,
                         colorbar_label="test r\u00b2 / noise ceiling (capped at 1)")
        names.append(name)
    return names


def synthetic_brain_maps(results, out: Path) -> list[str]:
    """Write ``brainmap_synthetic_<subject>.png`` (rows: corr(synthetic, real), corr(real, real)) and the maps
    beside it for every subject whose :data:`SYNTHETIC_SPLIT` evaluation has claim-1 voxel rows; return names."""
    from ..store import open_voxel_store

    patterns = inputs(results)
    names = []
    for values, path in find(patterns["synthetic_claim1_voxels"]):
        if values["split"] != SYNTHETIC_SPLIT:
            continue
        table = pd.read_parquet(path)
        if not len(table) or not {"voxel", "c_syn", "c_real"} <= set(table.columns):
            continue
        if "roi" in table.columns:
            table = table[table["roi"] == "all"] if (table["roi"] == "all").any() else table.drop_duplicates("voxel")
        store = open_voxel_store(patterns["voxel_store"].format(dataset=values["dataset"], subject=values["subject"]))
        name = f"brainmap_synthetic_{values['subject']}"
        voxels = table["voxel"].to_numpy(dtype=np.int64)
        rows = []
        for column, label in (("c_syn", "corr(synthetic, real repetition)"),
                              ("c_real", "corr(real repetition, other real repetition)")):
            full = np.full(store.n_voxels, np.nan, dtype=np.float32)
            full[voxels] = table[column].to_numpy(dtype=np.float32)
            img = store.to_nifti(full, fill_value=np.nan)
            img.to_filename(str(out / f"{name}_{column}.nii.gz"))
            rows.append((f"{label}  (mean {np.nanmean(full):.2f})", img))
        brain_map_figure(rows, store.mean_volume(), roi_outlines(store), out / f"{name}.png",
                         title=f"{values['dataset']} {values['subject']}: correlation across held-out images per voxel "
                               f"(claim 1, {SYNTHETIC_SPLIT} split)",
                         cmap="RdBu_r", vmax=_vmax([img for _, img in rows], 1.0), symmetric=True,
                         colorbar_label="Pearson r across held-out images")
        names.append(name)
    return names
