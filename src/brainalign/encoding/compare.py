"""Paired comparison of two encoders on the same held-out stimuli and voxels (docs/methods.md §6.2).

The effect is the mean over voxels of the difference of the two models' held-out Pearson r,
``mean_v [r_v(y, p_a) - r_v(y, p_b)]``. Its uncertainty comes from the **stimulus bootstrap**: each draw
resamples the test stimuli with replacement and recomputes every voxel's r for both models on the same
draw. The stimulus is the resampling unit, so the dependence between voxels (they share the stimuli and
the noise of each trial) stays intact in every draw; voxels are never treated as independent samples.

:func:`brainalign.inference.paired_voxel_bootstrap` works on arrays (any predictions: encoders,
NeuroFusionNet's held-out ridge read-outs); :func:`compare_encoders` reads two or more encoder folders
(``test_predictions.npz`` written by ``brainalign encode``) and the subjects' stores, and writes a comparison
table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output
from ..errors import InputError
from ..inference import bootstrap_p, paired_voxel_bootstrap, percentile_ci

log = logging.getLogger(__name__)

#: file of ``brainalign encode``'s output folder with the held-out predictions of each voxel's chosen model
TEST_PREDICTIONS = "test_predictions.npz"
#: columns of :func:`compare_encoders`' table
COMPARISON_COLUMNS = ["model", "baseline", "subject", "roi", "split", "n_stimuli", "n_voxels", "value_model",
                      "value_baseline", "effect", "ci_low", "ci_high", "p", "n_boot", "test"]
TEST_NAME = "paired stimulus bootstrap of the mean over voxels of the test-r difference"


def _read_encoder(path) -> dict:
    """Model, subject, store, voxels, test stimuli and held-out predictions of one ``brainalign encode`` folder."""
    import json

    path = Path(path)
    meta_file, pred_file = path / "encoder" / "encoder.json", path / TEST_PREDICTIONS
    for f in (meta_file, pred_file):
        if not f.exists():
            raise InputError(path, f"not an encoder folder with held-out predictions ({f.name} missing; "
                                   "rerun brainalign encode)")
    meta = json.loads(meta_file.read_text())
    with np.load(pred_file) as z:
        pred = {k: z[k] for k in z.files}
    roi_names = list(meta.get("roi_names", []))
    return {"path": path, "model": Path(meta["features"]).name.removesuffix(".zarr"),
            "subject": Path(meta["store"]).name.removesuffix(".zarr"), "split": meta.get("split", ""),
            "stimulus": pred["stimulus"].astype(str), "voxel": pred["voxel"].astype(np.int64),
            "predicted": pred["predicted"], "roi_names": roi_names}


def _roi_voxels(store, voxels, roi):
    """Positions in ``voxels`` (store indices) of the voxels in ``roi`` (all of them when ``roi`` is None)."""
    if roi is None:
        return np.arange(len(voxels))
    mask = store.roi_mask(roi)
    return np.flatnonzero(mask[voxels])


def compare_encoders(encoders, stores, pairs, out, *, roi=None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired stimulus-bootstrap comparison of encoders, per subject, for each (model, baseline) pair.

    Parameters
    ----------
    encoders : list of paths, ``brainalign encode`` output folders (model = the feature cache's stem, subject =
        the store's stem; every (subject, model) once)
    stores : list of paths, the voxel stores the encoders were fitted on (matched by file stem)
    pairs : list of (model, baseline) names; a pair is compared in every subject that has both encoders
    out : path of the parquet table to write (:data:`COMPARISON_COLUMNS`)
    roi : str, optional, ROI of the stores whose voxels are compared (default: every encoded voxel)
    n_boot, seed : stimulus-bootstrap draws and their seed (:func:`brainalign.inference.paired_voxel_bootstrap`)

    Returns
    -------
    DataFrame (also written to ``out``): observed mean r of both models, the effect (model minus baseline), its
    percentile CI and two-sided bootstrap p (:mod:`brainalign.inference`)

    Raises
    ------
    InputError
        Before anything is written: a missing encoder or store, a pair without any subject, encoders of one
        subject on different stimuli or voxels, an unknown ROI.
    """
    from ..store import open_voxel_store

    if n_boot < 1:
        raise InputError("--n-boot", "need at least 1 bootstrap draw")
    found = {}
    for path in encoders:
        enc = _read_encoder(path)
        key = (enc["subject"], enc["model"])
        if key in found:
            raise InputError(path, f"a second encoder of model {key[1]} on subject {key[0]}")
        found[key] = enc
    opened = {Path(p).name.removesuffix(".zarr"): p for p in stores}
    todo = []
    for model, baseline in pairs:
        subjects = sorted(s for s, m in found if m == model and (s, baseline) in found)
        if not subjects:
            raise InputError("--pairs", f"no subject has encoders of both {model} and {baseline} "
                                        f"(encoders: {sorted(found)})")
        for subject in subjects:
            a, b = found[subject, model], found[subject, baseline]
            if not (np.array_equal(a["stimulus"], b["stimulus"]) and np.array_equal(a["voxel"], b["voxel"])):
                raise InputError(b["path"], f"encoders of {model} and {baseline} on {subject} were scored on "
                                            "different test stimuli or voxels; a paired comparison needs the same")
            if subject not in opened:
                raise InputError("--stores", f"no store of subject {subject} (stores: {sorted(opened)})")
            todo.append((model, baseline, subject))

    measured, rows = {}, []
    for model, baseline, subject in todo:
        a, b = found[subject, model], found[subject, baseline]
        if subject not in measured:
            store = open_voxel_store(opened[subject])
            native = {str(x): x for x in np.unique(store.trials["stimulus"].to_numpy()).tolist()}
            missing = [s for s in a["stimulus"] if s not in native]
            if missing:
                raise InputError(opened[subject], f"{len(missing)} test stimuli of the encoders are not in this "
                                                  f"store, e.g. {missing[:3]}")
            cols = _roi_voxels(store, a["voxel"], roi)
            if cols.size < 2:
                raise InputError("--roi", f"ROI {roi!r} has {cols.size} encoded voxels in {subject}")
            _, reps, _ = store.repetitions_by_stimulus([native[s] for s in a["stimulus"]], voxels=a["voxel"][cols])
            with np.errstate(invalid="ignore"):
                measured[subject] = (cols, np.nanmean(reps, axis=1))  # as brainalign encode scores them
        cols, y = measured[subject]
        obs, samples = paired_voxel_bootstrap(y, a["predicted"][:, cols], b["predicted"][:, cols], n_boot, seed)
        lo, hi = percentile_ci(samples)
        rows.append(dict(model=model, baseline=baseline, subject=subject, roi=roi or "all", split=a["split"],
                         n_stimuli=int(y.shape[0]), n_voxels=int(cols.size), value_model=obs["value_a"],
                         value_baseline=obs["value_b"], effect=obs["effect"], ci_low=lo, ci_high=hi,
                         p=bootstrap_p(samples), n_boot=int(n_boot), test=TEST_NAME))
        log.info("%s vs %s on %s: %+.4f [%.4f, %.4f]", model, baseline, subject, obs["effect"], lo, hi)
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    return table
