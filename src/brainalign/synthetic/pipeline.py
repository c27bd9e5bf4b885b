"""``brainalign synthesize evaluate``: claim-1 and claim-2 evaluations from stores, tables and figures.

Output directory (atomic)::

    claim1_images.parquet   roi, image, stimulus, n_reps, c_syn, c_real, c_split_half
    claim1_voxels.parquet   roi, voxel (store index), c_syn, c_real
    claim1_tests.parquet    roi, level (image|voxel), n, mean_a (syn), mean_b (real), mean_diff, diff_ci_low/high
                            (bootstrap over images / voxels), wilcoxon_*, ttest_*
    decoding.parquet        roi, train (synthetic|real), n_per_class, balanced_accuracy (mean over draws), sd,
                            chance, p_value / p_two_sided (permutation, over all draws), n_draws, declared, ...,
                            standardize
    figures/claim1.png, figures/decoding.png
    summary.json
"""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pandas as pd

from .._io import atomic_output
from ..errors import InputError
from ..heldout import check_disjoint
from . import evaluate as ev
from .figures import evaluation_figures

log = logging.getLogger(__name__)


def category_lookup(categories=None) -> callable:
    """stimulus id (str) -> category or None. Table if given; otherwise the part before the first '/'."""
    table = None
    if categories is not None:
        from ..encoding.splits import read_category_table

        table = categories if isinstance(categories, pd.Series) else read_category_table(categories)

    def get(s):
        s = str(s)
        if table is not None:
            v = table.get(s)
            return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        return s.split("/", 1)[0] if "/" in s else None

    return get


def _voxel_train_mean(enc) -> np.ndarray:
    mu = np.zeros(enc.n_voxels, dtype=np.float64)
    for name, model in enc.models.items():
        mu[enc.voxels[name]] = model.y_mean
    return mu


def _voxel_noise_sd(enc) -> np.ndarray:
    """Per-voxel residual sd from training CV: y_scale * sqrt(1 - cv_r2)."""
    sd = np.zeros(enc.n_voxels, dtype=np.float64)
    for name, model in enc.models.items():
        sd[enc.voxels[name]] = model.y_scale * np.sqrt(np.clip(1 - np.nan_to_num(model.cv_r2), 0, 1))
    return sd


def run_evaluation(encoder_dir, real_store, synthetic_store, out, *, categories=None, rois=None,
                   n_per_class=(10, 25, 50, 100, 250, 500, 1000), n_repeats: int = 5, n_permutations: int = 1000,
                   seed: int = 0, syn_noise: bool = False, figure: bool = True, standardize: str = "center",
                   declared_n=None) -> dict:
    """Claim-1 and claim-2 evaluations for one subject (see :mod:`brainalign.synthetic.evaluate`).

    ``standardize``: decoder input standardisation, ``"center"`` (patterns z-scored across voxels, then voxels
    centred within the synthetic training set and within the real test set), ``"domain"`` (voxels z-scored
    there instead) or ``"rows"`` (patterns only); :mod:`brainalign.synthetic.evaluate` says why centring.
    ``declared_n``: the synthetic samples per class of the decoding verdict, fixed before the run (config
    ``synthetic.decoding_samples_per_class``); its rows of ``decoding.parquet`` have ``declared`` True.
    """
    from ..encoding.model import VoxelwiseEncoder
    from ..store import open_voxel_store

    if standardize not in ev.STANDARDIZE:
        raise InputError("--standardize", f"must be one of {ev.STANDARDIZE}, not {standardize!r}")
    enc = VoxelwiseEncoder.load(encoder_dir)
    real = open_voxel_store(real_store)
    syn = open_voxel_store(synthetic_store)
    if syn.n_voxels != enc.n_voxels:
        raise InputError(synthetic_store, f"{syn.n_voxels} voxels, the encoder has {enc.n_voxels}")
    voxels = np.asarray(enc.geometry["store_voxel"])
    if voxels.max() >= real.n_voxels:
        raise InputError(real_store, "voxel indices of the encoder exceed this store (different store?)")
    roi_masks = enc.roi_masks()
    if rois:
        unknown = [r for r in rois if r not in roi_masks]
        if unknown:
            raise InputError("--rois", f"unknown ROIs {unknown}; encoder ROIs: {list(roi_masks)}")
        roi_masks = {r: roi_masks[r] for r in rois}
    roi_masks = {"all": np.ones(enc.n_voxels, bool), **roi_masks}
    roi_masks = {k: v for k, v in roi_masks.items() if v.sum() >= 2}
    mu = _voxel_train_mean(enc)

    syn_ids = syn.trials["stimulus"].astype(str).to_numpy()
    syn_row = {s: i for i, s in enumerate(syn_ids)}
    real_native = {str(x): x for x in np.unique(real.trials["stimulus"].to_numpy()).tolist()}
    test = [s for s in enc.meta.get("test_stimuli", []) if s in syn_row and s in real_native]
    # every real response scored here (claim 1, decoding test set) must be to an image the encoder was not fitted on
    if "train_stimuli" not in enc.meta:
        raise InputError(encoder_dir, "the encoder does not record the stimuli it was fitted on (train_stimuli); "
                                      "refit it with this version of brainalign")
    check_disjoint(test, [(f"encoder {encoder_dir}", enc.meta["train_stimuli"])],
                   where="real stimuli the synthetic evaluation scores")
    summary = {"n_test_images": len(test), "rois": list(roi_masks), "split_info": enc.meta.get("split_info", {})}
    img_tables, vox_tables, tests, dec_tables = [], [], [], []

    real_mean = None
    if test:
        _, reps, n_reps = real.repetitions_by_stimulus([real_native[s] for s in test], voxels=voxels)
        S = np.asarray(syn.betas.get_orthogonal_selection((np.array([syn_row[s] for s in test]), slice(None))))
        with np.errstate(invalid="ignore"):
            real_mean = np.nanmean(reps, axis=1)
        for roi, m in roi_masks.items():
            s_c = S[:, m] - mu[m]
            r_c = reps[:, :, m] - mu[m]
            ti = ev.claim1_patterns(s_c, r_c)
            ti.insert(0, "roi", roi)
            ti["stimulus"] = [test[i] for i in ti["image"]]
            img_tables.append(ti)
            tv = ev.claim1_voxels(s_c, r_c)
            tv["voxel"] = voxels[m]
            tv.insert(0, "roi", roi)
            vox_tables.append(tv)
            tests.append({"roi": roi, "level": "image", **ev.paired_tests(ti["c_syn"], ti["c_real"], seed=seed)})
            tests.append({"roi": roi, "level": "voxel", **ev.paired_tests(tv["c_syn"], tv["c_real"], seed=seed)})
    else:
        warnings.warn("no encoder test stimulus is in both stores: claim-1 skipped", UserWarning, stacklevel=2)

    # decoding: synthetic responses to never-shown images -> real responses to held-out images
    cat = category_lookup(categories)
    pool = [i for i, s in enumerate(syn_ids) if s not in real_native and cat(s) is not None]
    test_lab = [(k, cat(s)) for k, s in enumerate(test) if cat(s) is not None]
    if pool and test_lab and real_mean is not None:
        Xs_all = np.asarray(syn.betas.get_orthogonal_selection((np.array(pool), slice(None))))
        ys = np.array([cat(syn_ids[i]) for i in pool])
        rows = np.array([k for k, _ in test_lab])
        yr = np.array([c for _, c in test_lab])
        noise = _voxel_noise_sd(enc) if syn_noise else None
        for roi, m in roi_masks.items():
            try:
                d = ev.decode_synthetic_to_real(Xs_all[:, m], ys, real_mean[rows][:, m], yr, n_per_class, n_repeats,
                                                n_permutations=n_permutations, seed=seed,
                                                syn_noise_sd=None if noise is None else noise[m],
                                                standardize=standardize, declared_n=declared_n)
            except ValueError as exc:
                warnings.warn(f"decoding skipped for {roi}: {exc}", UserWarning, stacklevel=2)
                continue
            d.insert(0, "roi", roi)
            dec_tables.append(d)
        summary["decoding_classes"] = sorted(set(yr) & set(ys))
        summary["decoding_standardize"] = standardize
        summary["decoding_test_counts"] = {c: int(n) for c, n in zip(*np.unique(yr, return_counts=True))}
    else:
        warnings.warn("decoding skipped: needs synthetic stimuli never shown in the scanner and held-out real "
                      "stimuli, both with categories", UserWarning, stacklevel=2)

    t_img = pd.concat(img_tables, ignore_index=True) if img_tables else pd.DataFrame()
    t_vox = pd.concat(vox_tables, ignore_index=True) if vox_tables else pd.DataFrame()
    t_tests = pd.DataFrame(tests)
    t_dec = pd.concat(dec_tables, ignore_index=True) if dec_tables else pd.DataFrame()
    summary["claim1"] = t_tests.to_dict("records")
    if len(t_dec):
        best = t_dec[t_dec["train"] == "synthetic"].sort_values("n_per_class").groupby("roi").tail(1)
        summary["decoding_largest_n"] = best.to_dict("records")
    with atomic_output(out) as tmp:
        tmp.mkdir(parents=True)
        t_img.to_parquet(tmp / "claim1_images.parquet", index=False)
        t_vox.to_parquet(tmp / "claim1_voxels.parquet", index=False)
        t_tests.to_parquet(tmp / "claim1_tests.parquet", index=False)
        t_dec.to_parquet(tmp / "decoding.parquet", index=False)
        if figure:
            evaluation_figures(t_tests, t_dec, tmp / "figures")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
