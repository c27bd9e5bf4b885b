"""``brainalign encode``: voxel store + feature cache -> per-voxel/ROI scores, maps, figure, saved encoder.

Output directory (written atomically)::

    voxels.parquet     one row per (voxel, layer): voxel (store index), layer, alpha, cv_r2, r, r2, nc, score,
                       selected (this layer is the voxel's CV-chosen layer); plus layer "selected" rows
    rois.parquet       per ROI x layer summaries (incl. layer "selected": each voxel its CV-chosen layer)
    roi_layers.parquet per ROI: layer chosen by mean CV R² (training data only) and its test scores
    test_predictions.npz  held-out predictions of each voxel's chosen model: stimulus (n_test,), voxel (store
                       index), predicted float32 (n_test, n_voxels); what paired model comparisons resample
                       (brainalign.encoding.compare)
    maps/*.nii.gz      r, score, layer index (selected model), nc, per-layer r, in the store's grid
    figures/score_vs_layer.png
    encoder/           the fitted encoder (see brainalign.encoding.model)
    summary.json       split, counts, timings, provenance

With ``banded=True`` (``--banded``) one banded ridge over all the layers (each layer a band, per-voxel band
weights and alpha by CV; :mod:`brainalign.encoding.banded`) is fitted as well, scored as model ``banded``
and used as every voxel's model (the single-layer fits stay for comparison); extra outputs::

    bands.parquet      per (voxel, band): band_weight (γ), band_alpha (α/γ), share (of the training-set prediction
                       variance), dominant (largest share), r2_split (test R² split over bands)
    roi_bands.parquet  per ROI x band: n_voxels, mean/median band_weight, mean_share, fraction_dominant,
                       mean r2_split
    maps/band-<name>_weight.nii.gz, band-<name>_share.nii.gz, banded_dominant_band.nii.gz (1-based band index)

Nothing is selected on the test set: alpha per voxel and layer per voxel/ROI come from K-fold CV on
the training stimuli; test stimuli are only scored. A feature cache of a trained model whose training record
(``cache.training_stimuli``) holds a test stimulus is refused (:func:`brainalign.heldout.check_disjoint`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, file_fingerprint
from ..errors import InputError
from ..heldout import check_disjoint
from ..stimuli import read_ids_file
from . import scoring
from .banded import DEFAULT_BAND_SEARCH, band_candidates, band_shares, fit_banded_ridge, r2_split
from .compare import TEST_PREDICTIONS
from .figures import plot_score_vs_layer
from .model import VoxelwiseEncoder, fit_layers, select_layers
from .ridge import DEFAULT_ALPHAS
from .splits import Split, read_category_table, restrict, split_ids, split_shared, split_unseen_categories

log = logging.getLogger(__name__)


def build_split(kind: str, trials: pd.DataFrame, *, categories=None, test_categories=None,
                n_test_categories=None, train_ids=None, test_ids=None, seed: int = 0, category_fold=None) -> Split:
    """Build a named split from a store's trial table (see :mod:`brainalign.encoding.splits`)."""
    if kind in ("nsd-shared", "repeated"):
        return split_shared(trials, kind)
    if kind == "unseen-categories":
        if categories is None:
            raise InputError("--categories", "split 'unseen-categories' needs a stimulus -> category table")
        cat = categories if isinstance(categories, pd.Series) else read_category_table(categories)
        return split_unseen_categories(np.unique(trials["stimulus"].astype(str)), cat, test_categories,
                                       n_test_categories, seed=seed, fold=category_fold)
    if kind == "ids":
        if train_ids is None or test_ids is None:
            raise InputError("--train-ids/--test-ids", "split 'ids' needs both id lists")
        tr = read_ids_file(train_ids) if isinstance(train_ids, (str, Path)) else train_ids
        te = read_ids_file(test_ids) if isinstance(test_ids, (str, Path)) else test_ids
        return split_ids(tr, te)
    raise InputError("--split", f"unknown split {kind!r}")


def noise_ceiling(store, voxels, reps, n_reps, method="auto"):
    """NC per voxel for targets averaged over the available test repetitions; returns (nc, method)."""
    if method in ("auto", "ncsnr") and store.ncsnr is not None:
        return scoring.noise_ceiling_from_ncsnr(store.ncsnr[voxels], n_reps), "ncsnr"
    if method == "ncsnr":
        raise InputError(store.path, "--noise-ceiling ncsnr: the store has no ncsnr")
    if method in ("auto", "split-half") and (n_reps >= 2).sum() >= 3:
        return scoring.split_half_noise_ceiling(reps), "split-half"
    if method == "split-half":
        raise InputError(store.path, "--noise-ceiling split-half: fewer than 3 test stimuli have >= 2 repetitions")
    return np.full(len(voxels), np.nan), "none"


def run_encoding(store_path, features_path, out, *, layers=None, split="nsd-shared", alphas=DEFAULT_ALPHAS,
                 n_folds: int = 5, solver: str = "torch", device: str = "cpu", dtype: str = "float32",
                 rois=None, restrict_to_rois: bool = False, categories=None, test_categories=None,
                 n_test_categories=None, category_fold=None, train_ids=None, test_ids=None,
                 layer_selection: str = "voxel",
                 nc_method: str = "auto", seed: int = 0, voxel_batch=None, figure: bool = True,
                 banded: bool = False, band_search: str = DEFAULT_BAND_SEARCH) -> dict:
    """Fit and score voxelwise encoders for every layer; write the output directory ``out``.

    With ``banded``, also fit one banded ridge over ``layers`` (candidates ``band_search``, seeded with
    ``seed``) and make it every voxel's model (see the module docstring).

    Returns
    -------
    dict summary (also written to ``summary.json``)
    """
    from ..features import open_feature_cache
    from ..store import open_voxel_store

    t0 = time.time()
    store = open_voxel_store(store_path)
    cache = open_feature_cache(features_path)
    layers = list(layers) if layers else list(cache.layers)
    unknown = [name for name in layers if name not in cache.layers]
    if unknown:
        raise InputError(features_path, f"layers {unknown} not in the cache (has {cache.layers})")
    if layer_selection not in ("voxel", "roi"):
        raise InputError("--layer-selection", "must be 'voxel' or 'roi'")
    if banded:
        if len(layers) < 2:
            raise InputError("--banded", f"banded ridge needs at least 2 layers (bands), got {layers}")
        if BANDED in layers:
            raise InputError(features_path, f"a cache layer is called {BANDED!r}, the banded model's name")
        try:
            band_candidates(len(layers), band_search, seed)
        except ValueError as exc:
            raise InputError("--band-search", str(exc)) from exc

    # stimuli: join on str(id)
    store_ids = np.unique(store.trials["stimulus"].to_numpy())
    native = {str(x): x for x in store_ids.tolist()}
    common = [str(x) for x in cache.stimulus_ids.tolist() if str(x) in native]
    sp = build_split(split, store.trials, categories=categories, test_categories=test_categories,
                     n_test_categories=n_test_categories, train_ids=train_ids, test_ids=test_ids, seed=seed,
                     category_fold=category_fold)
    sp = restrict(sp, common)
    if len(sp.train) < 2 * n_folds:
        raise InputError(store_path, f"only {len(sp.train)} training stimuli for {n_folds}-fold CV")
    # scores count only on stimuli the model never saw (the ridge fit on training stimuli is not a score)
    check_disjoint(sp.test, [cache], where=f"test stimuli of split {sp.name!r} of {store_path}")

    # ROIs and voxels
    roi_names = list(rois) if rois else store.roi_names()
    roi_full = {name: store.roi_mask(name) for name in roi_names}
    if restrict_to_rois and roi_full:
        voxels = np.flatnonzero(np.any(np.stack(list(roi_full.values())), axis=0))
    else:
        voxels = np.arange(store.n_voxels)
    if voxels.size == 0:
        raise InputError(store_path, "no voxels selected")
    roi_masks = {name: m[voxels] for name, m in roi_full.items()}

    train_native = [native[s] for s in sp.train]
    test_native = [native[s] for s in sp.test]
    log.info("encode: %d train / %d test stimuli, %d voxels, layers %s", len(train_native), len(test_native),
             voxels.size, layers)
    _, Y_train, _ = store.mean_by_stimulus(train_native, voxels=voxels)
    _, reps, n_reps = store.repetitions_by_stimulus(test_native, voxels=voxels)
    with np.errstate(invalid="ignore"):
        Y_test = np.nanmean(reps, axis=1)
    nc, nc_used = noise_ceiling(store, voxels, reps, n_reps, nc_method)

    rows_train = cache.rows_for(sp.train)
    rows_test = cache.rows_for(sp.test)
    fits, tables, preds, timing = {}, [], {}, {}
    for name in layers:
        t1 = time.time()
        Xtr = cache.layer(name, rows_train)
        fits.update(fit_layers({name: Xtr}, Y_train, alphas, n_folds, solver, device=device, dtype=dtype,
                               voxel_batch=voxel_batch))
        del Xtr
        timing[name] = time.time() - t1
        pred = fits[name].predict(cache.layer(name, rows_test))
        preds[name] = pred
        r = scoring.pearson_r(Y_test, pred)
        tables.append(pd.DataFrame({
            "voxel": voxels, "layer": name, "alpha": fits[name].alpha, "cv_r2": fits[name].cv_r2, "r": r,
            "r2": scoring.r2_score(Y_test, pred), "nc": nc, "score": scoring.normalized_score(r, nc)}))
        log.info("layer %s: %.1f s, median test r %.3f", name, timing[name], np.nanmedian(r))

    voxel_layer, roi_layer = select_layers(fits, roi_masks, layer_selection)
    models = list(layers)
    band_tables = None
    if banded:
        t1 = time.time()
        tr_bands = [cache.layer(name, rows_train) for name in layers]
        bfit = fit_banded_ridge(tr_bands, Y_train, alphas, n_folds, solver, names=layers, search=band_search,
                                seed=seed, device=device, dtype=dtype, voxel_batch=voxel_batch)
        timing[BANDED] = time.time() - t1
        shares = band_shares(bfit, np.hstack(tr_bands))  # training samples only
        del tr_bands
        Xte = np.hstack([cache.layer(name, rows_test) for name in layers])
        pred = bfit.predict(Xte)
        r = scoring.pearson_r(Y_test, pred)
        tables.append(pd.DataFrame({
            "voxel": voxels, "layer": BANDED, "alpha": bfit.alpha, "cv_r2": bfit.cv_r2, "r": r,
            "r2": scoring.r2_score(Y_test, pred), "nc": nc, "score": scoring.normalized_score(r, nc)}))
        band_tables = _band_tables(bfit, voxels, shares, r2_split(Y_test, bfit.predict_split(Xte)), roi_full)
        preds[BANDED] = pred
        del Xte, pred
        fits[BANDED] = bfit
        models.append(BANDED)
        voxel_layer = np.full(len(voxels), models.index(BANDED))
        log.info("banded ridge over %s: %d candidates, %.1f s, median test r %.3f", layers, len(bfit.candidates),
                 timing[BANDED], np.nanmedian(r))
    vt = pd.concat(tables, ignore_index=True)
    tiled = np.tile(np.arange(len(voxels)), len(models))
    vt["selected"] = vt["layer"].to_numpy() == np.asarray(models)[voxel_layer][tiled]
    sel = vt[vt["selected"]].set_index("voxel").loc[voxels].reset_index().assign(layer="selected")
    sel["chosen_layer"] = np.asarray(models)[voxel_layer]
    voxel_table = pd.concat([vt, sel], ignore_index=True)

    # summaries use store voxel indices -> masks over the store
    roi_full_sel = {n: roi_full[n] for n in roi_names}
    roi_table = scoring.summarize(voxel_table, roi_full_sel, by=("layer",))
    roi_layer_rows = []
    for roi, lay in roi_layer.items():
        row = roi_table[(roi_table["roi"] == roi) & (roi_table["layer"] == lay)]
        if len(row):
            roi_layer_rows.append(dict(row.iloc[0], chosen_by="mean cv_r2 on training folds"))
    roi_layer_table = pd.DataFrame(roi_layer_rows)

    encoder = VoxelwiseEncoder.from_fits(
        fits, voxel_layer,
        geometry=_geometry(store, voxels, roi_names, roi_masks),
        meta={
            "store": str(store_path), "features": str(features_path), "dataset": store.attrs.get("dataset"),
            "subject": store.attrs.get("subject"), "zscored": store.attrs.get("zscored"),
            "split": sp.name, "split_info": sp.info, "train_stimuli": list(sp.train), "test_stimuli": list(sp.test),
            "shared_stimuli": sorted(set(store.trials.loc[store.trials["shared"].astype(bool), "stimulus"].astype(str))),
            "stimulus_dtype": "int" if np.issubdtype(store_ids.dtype, np.integer) else "str",
            "alphas": np.asarray(alphas).tolist(), "n_folds": n_folds, "solver": solver, "dtype": dtype,
            "layer_selection": BANDED if banded else layer_selection, "roi_layer": roi_layer, "nc_method": nc_used,
            "composite": {BANDED: list(layers)} if banded else {},
            "feature_cache_attrs": {k: cache.attrs.get(k) for k in ("model", "weights", "reduction") if k in cache.attrs},
        })

    summary = {
        "split": sp.name, "split_info": sp.info, "n_train": len(sp.train), "n_test": len(sp.test),
        "n_voxels": int(voxels.size), "layers": layers, "solver": solver, "device": device, "dtype": dtype,
        "n_folds": n_folds, "alphas": np.asarray(alphas).tolist(), "nc_method": nc_used,
        "test_reps": {str(k): int(v) for k, v in zip(*np.unique(n_reps, return_counts=True))},
        "layer_selection": BANDED if banded else layer_selection, "roi_layer": roi_layer, "fit_seconds": timing,
        "median_r_selected": float(np.nanmedian(sel["r"])),
        "inputs": {"store": file_fingerprint(Path(store_path) / "zarr.json"),
                   "features": file_fingerprint(Path(features_path) / "zarr.json")},
    }

    if banded:
        bt = band_tables[0]
        dom = bt[bt["dominant"]]["band"].value_counts()
        summary["banded"] = {
            "bands": list(layers), "search": band_search, "n_candidates": int(len(fits[BANDED].candidates)),
            "median_r": float(np.nanmedian(voxel_table.loc[voxel_table["layer"] == BANDED, "r"])),
            "fraction_dominant": {b: float(dom.get(b, 0)) / len(voxels) for b in layers},
            "info": {k: v for k, v in fits[BANDED].info.items() if k != "bands"},
        }

    with atomic_output(out) as tmp:
        tmp.mkdir(parents=True)
        voxel_table.to_parquet(tmp / "voxels.parquet", index=False)
        roi_table.to_parquet(tmp / "rois.parquet", index=False)
        roi_layer_table.to_parquet(tmp / "roi_layers.parquet", index=False)
        _write_test_predictions(tmp / TEST_PREDICTIONS, sp.test, voxels, preds, models, voxel_layer)
        if banded:
            band_tables[0].to_parquet(tmp / "bands.parquet", index=False)
            band_tables[1].to_parquet(tmp / "roi_bands.parquet", index=False)
        encoder.save(tmp / "encoder")
        _write_maps(store, voxels, voxel_table, models, nc, tmp / "maps")
        if banded:
            _write_band_maps(store, voxels, band_tables[0], layers, tmp / "maps")
        if figure:
            plot_score_vs_layer(roi_table, models, tmp / "figures" / "score_vs_layer.png",
                                metric="mean_score" if nc_used != "none" else "mean_r")
        summary["seconds"] = time.time() - t0
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


#: name of the banded ridge model among the layers of the outputs and the encoder
BANDED = "banded"


def _write_test_predictions(path, test_ids, voxels, preds, models, voxel_layer):
    """``test_predictions.npz``: each voxel's prediction of the test stimuli by its chosen model (layer or banded).

    Parameters
    ----------
    test_ids : (n_test,) str, the rows of every prediction
    voxels : int (n_voxels,) store voxel indices
    preds : dict model -> (n_test, n_voxels) predictions
    models : list of model names; ``voxel_layer`` (n_voxels,) indexes it
    """
    chosen = np.empty((len(test_ids), len(voxels)), dtype=np.float32)
    for k, name in enumerate(models):
        cols = voxel_layer == k
        chosen[:, cols] = preds[name][:, cols]
    with open(path, "wb") as fh:
        np.savez(fh, stimulus=np.asarray(list(test_ids), dtype=str), voxel=np.asarray(voxels), predicted=chosen)


def _band_tables(fit, voxels, shares, split_r2, roi_masks):
    """Tidy per-(voxel, band) and per-(ROI, band) tables of a banded fit.

    Parameters
    ----------
    fit : BandedRidgeFit over ``voxels``
    voxels : ndarray int (n_voxels,) store voxel indices
    shares : ndarray (n_voxels, n_bands) share of the training-set prediction variance per band
    split_r2 : ndarray (n_bands, n_voxels) test R² split over bands
    roi_masks : dict name -> bool (n_store_voxels,)

    Returns
    -------
    (bands DataFrame, roi_bands DataFrame)
    """
    nb = len(fit.bands)
    W = fit.band_weights
    dominant = np.zeros_like(W, dtype=bool)
    dominant[np.arange(len(voxels)), shares.argmax(1)] = True
    bt = pd.DataFrame({
        "voxel": np.tile(voxels, nb), "band": np.repeat(fit.bands, len(voxels)),
        "band_weight": W.T.ravel(), "band_alpha": fit.band_alphas.T.ravel(), "share": shares.T.ravel(),
        "dominant": dominant.T.ravel(), "r2_split": np.asarray(split_r2).ravel(),
    })
    rows = []
    for roi, mask in roi_masks.items():
        m = np.asarray(mask)[voxels]
        if not m.any():
            continue
        for b, name in enumerate(fit.bands):
            rows.append({"roi": roi, "band": name, "n_voxels": int(m.sum()),
                         "mean_band_weight": float(W[m, b].mean()), "median_band_weight": float(np.median(W[m, b])),
                         "mean_share": float(shares[m, b].mean()), "fraction_dominant": float(dominant[m, b].mean()),
                         "mean_r2_split": (float(np.nanmean(split_r2[b, m])) if np.isfinite(split_r2[b, m]).any()
                                           else np.nan)})
    return bt, pd.DataFrame(rows, columns=["roi", "band", "n_voxels", "mean_band_weight", "median_band_weight",
                                           "mean_share", "fraction_dominant", "mean_r2_split"])


def _write_band_maps(store, voxels, band_table, bands, folder: Path):
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)

    def full(values, fill=np.nan):
        out = np.full(store.n_voxels, fill, dtype=np.float32)
        out[voxels] = values
        return out

    def per_band(col):
        return np.stack([band_table.loc[band_table["band"] == b, col].to_numpy() for b in bands], axis=1)

    W, S = per_band("band_weight"), per_band("share")
    for k, name in enumerate(bands):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        nib.save(store.to_nifti(full(W[:, k]), fill_value=np.nan), folder / f"band-{safe}_weight.nii.gz")
        nib.save(store.to_nifti(full(S[:, k]), fill_value=np.nan), folder / f"band-{safe}_share.nii.gz")
    nib.save(store.to_nifti(full(S.argmax(1) + 1.0, 0), fill_value=0), folder / "banded_dominant_band.nii.gz")


def _geometry(store, voxels, roi_names, roi_masks):
    return {
        "voxel_ijk": store.voxel_ijk[voxels], "grid_shape": np.asarray(store.grid_shape),
        "affine": store.affine, "store_voxel": voxels,
        "ncsnr": None if store.ncsnr is None else store.ncsnr[voxels],
        "roi_names": list(roi_names),
        "roi_matrix": (np.stack([roi_masks[n] for n in roi_names]) if roi_names
                       else np.zeros((0, voxels.size), bool)),
    }


def _write_maps(store, voxels, voxel_table, layers, nc, folder: Path):
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)

    def full(values):
        out = np.full(store.n_voxels, np.nan, dtype=np.float32)
        out[voxels] = values
        return out

    sel = voxel_table[voxel_table["layer"] == "selected"]
    layer_index = {name: i for i, name in enumerate(layers)}
    nib.save(store.to_nifti(full(sel["r"].to_numpy()), fill_value=np.nan), folder / "selected_r.nii.gz")
    nib.save(store.to_nifti(full(sel["score"].to_numpy()), fill_value=np.nan), folder / "selected_score.nii.gz")
    nib.save(store.to_nifti(full(sel["chosen_layer"].map(layer_index).to_numpy() + 1.0), fill_value=0),
             folder / "selected_layer.nii.gz")
    nib.save(store.to_nifti(full(nc), fill_value=np.nan), folder / "nc.nii.gz")
    for name in layers:
        v = voxel_table[voxel_table["layer"] == name]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        nib.save(store.to_nifti(full(v["r"].to_numpy()), fill_value=np.nan), folder / f"layer-{safe}_r.nii.gz")
