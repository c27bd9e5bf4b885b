"""``brainalign rsa``: model-vs-brain RSA for fMRI voxel stores or time-resolved EEG stores.

fMRI::

    brainalign rsa --features CORNET.zarr REALNET.zarr --stores S1.zarr S2.zarr S3.zarr \
        --rois prf-visualrois/V1v floc-faces/FFA-1 --trained-on subj01 --out results/rsa

EEG::

    brainalign rsa --features CORNET.zarr --eeg-stores sub-01.zarr ... --time-range -0.1 0.5 --out results/rsa_eeg

Brain RDMs are ``--rdm-method correlation`` (default), ``euclidean`` or ``crossnobis`` (cross-validated
across the repetitions of each stimulus); model RDMs use ``--model-rdm-method`` (models have no
repetitions: correlation or euclidean; euclidean by default with crossnobis). ``--dimensions TABLE`` adds
the object-dimension analysis of the model layers on the same stimuli.

Outputs (each written atomically) in ``--out``: ``rsa_fmri.parquet`` / ``rsa_eeg.parquet`` (tidy:
model, layer, roi, subject, relation, method, [time,] value, ci_low, ci_high, nc_low, nc_high),
``rsa_eeg_clusters.parquet``, ``rdms_fmri.npz`` / ``rdms_eeg.npz`` (condensed RDMs), figures
``rsa_fmri.png`` / ``rsa_eeg.png``, and with ``--dimensions`` ``dimensions.parquet`` / ``dimensions.png``.
See docs/rsa.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, progress
from ..errors import InputError
from ._backend import condensed_index
from .bootstrap import bootstrap_stimuli, bootstrap_subjects, confidence_interval
from .compare import METHODS as COMPARE_METHODS
from .compare import compare_rdms
from .dimension_tables import read_dimension_scores
from .dimensions import dimension_rdms
from .noise_ceiling import noise_ceiling
from .rdm import compute_rdm
from .timecourse import cluster_permutation_test, eeg_rdms, paired_cluster_test, rsa_timecourses

log = logging.getLogger(__name__)

COLUMNS = ["model", "layer", "roi", "subject", "relation", "method", "value", "ci_low", "ci_high",
           "nc_low", "nc_high"]
DIMENSION_COLUMNS = ["model", "layer", "dimension", "method", "n_stimuli", "value", "ci_low", "ci_high",
                     "baseline", "diff", "diff_ci_low", "diff_ci_high"]
#: the model the object-dimension differences are taken against when it is one of the models
DEFAULT_DIMENSION_BASELINE = "cornet_s-initial"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="CACHE.zarr",
                        help="feature caches (one per model)")
    parser.add_argument("--model-names", nargs="+", metavar="NAME",
                        help="names of the models, one per --features (default: cache file stems)")
    parser.add_argument("--layers", nargs="+", metavar="LAYER", help="layers to use (default: all of each cache)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--stores", nargs="+", metavar="STORE.zarr", help="fMRI voxel stores, one per subject")
    data.add_argument("--eeg-stores", nargs="+", metavar="STORE.zarr", help="EEG stores, one per subject")
    parser.add_argument("--rois", nargs="+", metavar="ROI", help="fMRI ROI names (store.roi_names()); required with --stores")
    parser.add_argument("--trained-on", metavar="SUBJECT",
                        help="subject the models were trained on: its rows are relation=within, the others across "
                             "(default: every subject is across)")
    parser.add_argument("--rdm-method", default="correlation", choices=["correlation", "euclidean", "crossnobis"],
                        help="dissimilarity of the brain RDMs (default: correlation = 1 - Pearson r of "
                             "repetition-averaged patterns; crossnobis = cross-validated across repetitions)")
    parser.add_argument("--model-rdm-method", choices=["correlation", "euclidean"],
                        help="dissimilarity of the model RDMs (default: --rdm-method; euclidean with crossnobis, "
                             "as models have no repetitions to cross-validate over)")
    parser.add_argument("--cv-folds", type=int, metavar="K",
                        help="crossnobis folds: repetitions are grouped by their index modulo K (default: one fold "
                             "per repetition, K = the fewest repetitions of any used stimulus in that store); "
                             "stimuli with fewer than max(2, K) repetitions in any store are left out")
    parser.add_argument("--dimensions", metavar="TABLE",
                        help="object-dimension analysis: a parquet/csv/tsv table with a 'stimulus' column and numeric "
                             "dimension columns and/or a 'category' column (one-hot expanded)")
    parser.add_argument("--dimension-baseline", metavar="MODEL",
                        help=f"model the dimension differences are taken against (default: "
                             f"{DEFAULT_DIMENSION_BASELINE} when it is one of the models)")
    parser.add_argument("--method", default="spearman", choices=list(COMPARE_METHODS),
                        help="RDM comparison (default: spearman)")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap samples for confidence intervals (fMRI: over stimuli per subject, and over "
                             "subjects for the mean rows; EEG: over subjects); 0 = none")
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstraps and permutations")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA if present), cpu, cuda, ...")
    eeg = parser.add_argument_group("EEG options")
    eeg.add_argument("--time-range", nargs=2, type=float, metavar=("START", "STOP"),
                     help="keep times START <= t <= STOP (seconds, store time base)")
    eeg.add_argument("--window", type=int, default=1, help="samples averaged per EEG RDM (default 1)")
    eeg.add_argument("--step", type=int, default=1, help="samples between EEG RDM windows (default 1)")
    eeg.add_argument("--n-permutations", type=int, default=1000, help="sign-flip permutations (default 1000)")
    eeg.add_argument("--cluster-alpha", type=float, default=0.05,
                     help="cluster-forming threshold, two-sided p per time point (default 0.05)")
    eeg.add_argument("--alpha", type=float, default=0.05, help="cluster significance level (default 0.05)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


# --------------------------------------------------------------------------------------------- inputs

def _subject_names(stores, paths):
    names = [str(s.attrs.get("subject", "")) for s in stores]
    if any(n in ("", "unknown", "None") for n in names) or len(set(names)) != len(names):
        names = [Path(p).name.removesuffix(".zarr") for p in paths]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    return names


def _open_models(args):
    from ..features import open_feature_cache

    caches = [open_feature_cache(p) for p in args.features]
    if args.model_names:
        if len(args.model_names) != len(caches):
            raise InputError("--model-names", f"{len(args.model_names)} names for {len(caches)} feature caches")
        names = list(args.model_names)
    else:
        names = [Path(p).name.removesuffix(".zarr") for p in args.features]
    if len(set(names)) != len(names):
        raise InputError("--model-names", f"model names must be unique, got {names}")
    layers = {}
    for name, cache in zip(names, caches):
        use = list(args.layers) if args.layers else list(cache.layers)
        missing = [layer for layer in use if layer not in cache.layers]
        if missing:
            raise InputError(cache.path, f"layers {missing} not in this cache (layers: {cache.layers})")
        if not use:
            raise InputError(cache.path, "feature cache has no layers")
        layers[name] = use
    return names, caches, layers


def _shared_stimuli(stores, caches, store_paths):
    """Stimuli (as str) present in every store and every feature cache, sorted."""
    shared = None
    for s in stores:
        ids = set(map(str, s.trials["stimulus"].tolist()))
        shared = ids if shared is None else shared & ids
    in_stores = len(shared)
    for c in caches:
        shared &= set(map(str, c.stimulus_ids.tolist()))
    if len(shared) < 3:
        raise InputError(store_paths[0], f"only {len(shared)} stimuli shared by all stores and feature caches "
                                         f"({in_stores} shared by the stores); RSA needs at least 3")
    ids = sorted(shared, key=lambda v: (len(v), v) if v.lstrip("-").isdigit() else (np.inf, v))
    return ids, in_stores


def _typed_ids(store, str_ids):
    lookup = {str(v): v for v in pd.unique(store.trials["stimulus"])}
    return [lookup[s] for s in str_ids]


def _model_rdms(names, caches, layers, stim, rdm_method, device):
    keys, rdms = [], []
    for name, cache in zip(names, caches):
        rows = cache.rows_for(stim)
        for layer in layers[name]:
            feats = cache.layer(layer, rows=rows).reshape(len(rows), -1)
            rdms.append(compute_rdm(feats, rdm_method, device=device).astype(np.float32))
            keys.append((name, layer))
    return keys, np.stack(rdms)


def _relation(subject, trained_on):
    return "within" if trained_on is not None and subject == trained_on else "across"


def _check_common(args, subjects):
    if args.trained_on is not None and args.trained_on not in subjects:
        raise InputError("--trained-on", f"subject {args.trained_on!r} is not one of the stores' subjects {subjects}")
    if args.n_boot < 0 or not 0 < args.ci < 1:
        raise InputError("--n-boot/--ci", "need n_boot >= 0 and 0 < ci < 1")
    if args.cv_folds is not None and (args.rdm_method != "crossnobis" or args.cv_folds < 2):
        raise InputError("--cv-folds", "only used with --rdm-method crossnobis, and must be >= 2")


def _model_method(args) -> str:
    """Model RDM dissimilarity: --model-rdm-method, else --rdm-method (euclidean for crossnobis)."""
    if args.model_rdm_method:
        return args.model_rdm_method
    return "euclidean" if args.rdm_method == "crossnobis" else args.rdm_method


# --------------------------------------------------------------------------------------------- crossnobis

def _repetition_ranks(store) -> np.ndarray:
    """0-based rank of each trial among its stimulus's trials (ordered by ``repetition``, then row)."""
    ranks = store.trials.groupby("stimulus", sort=False)["repetition"].rank(method="first")
    return ranks.to_numpy(dtype=np.int64) - 1


def _crossnobis_stimuli(stores, stim, cv_folds, store_paths):
    """The shared stimuli with at least max(2, cv_folds) repetitions in every store, and per store the folds.

    Returns
    -------
    kept : list of str, subset of ``stim`` in the same order
    folds : list of int, per store: ``cv_folds`` or the fewest repetitions of a kept stimulus
    """
    need = max(2, cv_folds or 2)
    counts = []
    for s in stores:
        reps = s.trials["stimulus"].astype(str).value_counts()
        counts.append(reps.reindex(stim).fillna(0).to_numpy(dtype=np.int64))
    counts = np.stack(counts)  # (n_stores, n_stim)
    ok = (counts >= need).all(axis=0)
    kept = [sid for sid, k in zip(stim, ok) if k]
    if len(kept) < 3:
        raise InputError(store_paths[0], f"crossnobis needs >= {need} repetitions of each stimulus: only {len(kept)} "
                                         f"of the {len(stim)} shared stimuli have them in every store (need 3)")
    if len(kept) < len(stim):
        log.warning("crossnobis: %d of %d shared stimuli have < %d repetitions in some store and are left out",
                    len(stim) - len(kept), len(stim), need)
    folds = [int(cv_folds) if cv_folds else int(c[ok].min()) for c in counts]
    return kept, folds


def _fold_means(store, array, typed_ids, n_folds, select=lambda b: b):
    """Per-fold mean pattern of each stimulus, folds = repetition rank modulo ``n_folds``.

    Parameters
    ----------
    store : VoxelStore or EEGStore
    array : zarr array (n_trials, ...) of the store (``betas`` or ``eeg``)
    typed_ids : sequence of stimulus ids (the store's id type), each with >= n_folds repetitions
    n_folds : int >= 2
    select : callable block -> block, picks columns of a block of rows (e.g. ROI voxels)

    Returns
    -------
    float32 ndarray (n_folds, n_stimuli, *selected trailing shape)
    """
    from scipy import sparse

    n_stim = len(typed_ids)
    stim_code = pd.Index(typed_ids).get_indexer(store.trials["stimulus"].to_numpy())
    fold = _repetition_ranks(store) % n_folds
    code = np.where(stim_code >= 0, fold * n_stim + stim_code, -1)
    counts = np.bincount(code[code >= 0], minlength=n_folds * n_stim)
    if (counts == 0).any():
        raise InputError(store.path, f"a stimulus has fewer than {n_folds} repetitions (crossnobis folds)")
    step = array.chunks[0]
    sums, shape = None, None
    for r0 in range(0, array.shape[0], step):
        c = code[r0:r0 + step]
        use = c >= 0
        if not use.any():
            continue
        block = select(array[r0:r0 + step])
        shape = block.shape[1:]
        block = block.reshape(block.shape[0], -1).astype(np.float64)
        ind = sparse.csr_matrix((np.ones(use.sum()), (c[use], np.flatnonzero(use))), shape=(n_folds * n_stim, len(c)))
        part = ind @ block
        sums = part if sums is None else sums + part
    means = (sums / counts[:, None]).astype(np.float32)
    return means.reshape((n_folds, n_stim) + tuple(shape))


# --------------------------------------------------------------------------------------------- dimensions

def _read_dimensions(args):
    """The --dimensions table (validated before anything is computed), or None."""
    if not args.dimensions:
        return None
    return read_dimension_scores(args.dimensions)


def _dimension_analysis(args, scores, stim, keys, model):
    """Model-layer RDMs vs per-image dimension RDMs on the analysed stimuli, and differences vs a baseline.

    Parameters
    ----------
    scores : DataFrame (n_table_stimuli, n_dimensions), index = stimulus id (str)
    stim : list of str, the conditions of ``model``'s RDMs
    keys : list of (model, layer), one per row of ``model``
    model : array (n_keys, P) condensed model RDMs

    Returns
    -------
    table : DataFrame with DIMENSION_COLUMNS; rows per (model, layer, dimension) and, per model, the mean over
        layers and dimensions (``layer = dimension = "all"``)
    """
    models = list(dict.fromkeys(m for m, _ in keys))
    baseline = args.dimension_baseline
    if baseline is not None and baseline not in models:
        raise InputError("--dimension-baseline", f"{baseline!r} is not one of the models {models}")
    if baseline is None and DEFAULT_DIMENSION_BASELINE in models:
        baseline = DEFAULT_DIMENSION_BASELINE
    pos = [i for i, sid in enumerate(stim) if sid in scores.index]
    if len(pos) < 3:
        raise InputError(args.dimensions, f"only {len(pos)} of the {len(stim)} analysed stimuli are in the dimension "
                                          f"table (ids compared as strings, e.g. {stim[:3]}); need at least 3")
    if len(pos) < len(stim):
        log.warning("dimension table covers %d of the %d analysed stimuli; the analysis uses those", len(pos),
                    len(stim))
    values = scores.loc[[stim[i] for i in pos]]
    constant = [c for c in values.columns if np.ptp(values[c].to_numpy()) == 0]
    if constant:
        log.warning("dimensions constant over the analysed stimuli, left out: %s", constant)
        values = values.drop(columns=constant)
    if values.shape[1] == 0:
        raise InputError(args.dimensions, "every dimension is constant over the analysed stimuli")
    p = np.asarray(pos)
    ia, ib = np.triu_indices(len(p), k=1)
    sub = np.ascontiguousarray(model[:, condensed_index(p[ia], p[ib], len(stim))])  # (K, P')
    dims = np.asarray(dimension_rdms(values.to_numpy(dtype=np.float32)))  # (D, P')
    device = _device(args.device)
    sims = np.asarray(compare_rdms(sub, dims, args.method, device=device))  # (K, D)
    boots = (bootstrap_stimuli(sub, dims, args.method, n_boot=args.n_boot, seed=args.seed, device=device)
             if args.n_boot > 0 else None)  # (B, K, D)

    def ci(samples):
        if samples is None:
            return np.nan, np.nan
        lo, hi = confidence_interval(samples[:, None], args.ci)
        return float(lo[0]), float(hi[0])

    index = {key: k for k, key in enumerate(keys)}
    dim_names = list(values.columns)
    rows = []
    for mname in models:
        ks = [index[(mname, layer)] for m, layer in keys if m == mname]
        layers = [layer for m, layer in keys if m == mname]
        base = None
        if baseline is not None and mname != baseline:
            pairs = [(k, index[(baseline, layer)]) for k, layer in zip(ks, layers) if (baseline, layer) in index]
            base = dict(pairs) if pairs else None
        for k, layer in zip(ks, layers):
            for d, dname in enumerate(dim_names):
                rec = dict(model=mname, layer=layer, dimension=dname, method=args.method, n_stimuli=len(p),
                           value=float(sims[k, d]), baseline=baseline or "", diff=np.nan,
                           diff_ci_low=np.nan, diff_ci_high=np.nan)
                rec["ci_low"], rec["ci_high"] = ci(None if boots is None else boots[:, k, d])
                if base and k in base:
                    b = base[k]
                    rec["diff"] = float(sims[k, d] - sims[b, d])
                    rec["diff_ci_low"], rec["diff_ci_high"] = ci(
                        None if boots is None else boots[:, k, d] - boots[:, b, d])
                rows.append(rec)
        # summary: mean over layers (those shared with the baseline for the difference) and dimensions
        rec = dict(model=mname, layer="all", dimension="all", method=args.method, n_stimuli=len(p),
                   value=float(sims[ks].mean()), baseline=baseline or "", diff=np.nan,
                   diff_ci_low=np.nan, diff_ci_high=np.nan)
        rec["ci_low"], rec["ci_high"] = ci(None if boots is None else boots[:, ks].mean(axis=(1, 2)))
        if base:
            a_k, b_k = list(base), list(base.values())
            rec["diff"] = float((sims[a_k] - sims[b_k]).mean())
            rec["diff_ci_low"], rec["diff_ci_high"] = ci(
                None if boots is None else (boots[:, a_k] - boots[:, b_k]).mean(axis=(1, 2)))
        rows.append(rec)
    return pd.DataFrame(rows, columns=DIMENSION_COLUMNS)


def _dimension_figure(table):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    per = table[table.layer != "all"]
    dims = list(dict.fromkeys(per.dimension))
    keys = list(dict.fromkeys(zip(per.model, per.layer)))
    grid = per.pivot_table(index=["model", "layer"], columns="dimension", values="value", sort=False)
    grid = grid.reindex(index=pd.MultiIndex.from_tuples(keys), columns=dims)
    diff = per.dropna(subset=["diff"])
    n_panels = 2 if len(diff) else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(4 + 0.5 * len(dims) + (6 if n_panels == 2 else 0),
                                                    max(3.0, 0.22 * len(keys) + 1.5)), squeeze=False)
    ax = axes[0, 0]
    lim = max(1e-6, float(np.nanmax(np.abs(grid.to_numpy()))))
    im = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(dims)), dims, rotation=60, fontsize=7)
    ax.set_yticks(range(len(keys)), [f"{m} {layer}" for m, layer in keys], fontsize=6)
    ax.set_title(f"layer RDM vs dimension RDM ({per.method.iloc[0]})", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if n_panels == 2:
        ax = axes[0, 1]
        dkeys = list(dict.fromkeys(zip(diff.model, diff.layer)))
        width = 0.8 / max(1, len(dims))
        colours = plt.get_cmap("tab10")
        for d_i, dname in enumerate(dims):
            part = diff[diff.dimension == dname].set_index(["model", "layer"]).reindex(dkeys)
            x = np.arange(len(dkeys)) + (d_i - (len(dims) - 1) / 2) * width
            err = np.vstack([part["diff"] - part["diff_ci_low"], part["diff_ci_high"] - part["diff"]])
            ax.bar(x, part["diff"], width, color=colours(d_i % 10), label=dname,
                   yerr=None if np.isnan(err).all() else np.abs(err), capsize=1.5, error_kw={"lw": 0.6})
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(dkeys)), [f"{m} {layer}" for m, layer in dkeys], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel(f"difference vs {diff.baseline.iloc[0]}")
        ax.set_title("model minus baseline (bootstrap CI)", fontsize=9)
        ax.legend(fontsize=6, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def _write_dimensions(table, out: Path):
    _write_figure(_dimension_figure(table), out / "dimensions.png")
    _write_table(table, out / "dimensions.parquet")


def _device(arg):
    return None if arg == "auto" else arg


def _group_rows(df, n_boot, level, seed):
    """Mean over subjects within each relation, CI by bootstrapping subjects (NaN with < 2 subjects)."""
    rows = []
    keys = [c for c in df.columns if c not in ("subject", "value", "ci_low", "ci_high")]
    for key, grp in df.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key))
        vals = grp["value"].to_numpy(dtype=float)
        rec.update(subject="mean", value=float(vals.mean()), ci_low=np.nan, ci_high=np.nan)
        if len(vals) >= 2 and n_boot > 0:
            lo, hi = confidence_interval(bootstrap_subjects(vals, n_boot, seed), level)
            rec.update(ci_low=float(lo), ci_high=float(hi))
        rows.append(rec)
    return pd.DataFrame(rows)


def _write_table(df, path):
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)


def _write_npz(arrays, path):
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _write_figure(fig, path):
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------------------------- fMRI

def _run_fmri(args, out: Path) -> int:
    from ..store import open_voxel_store

    if not args.rois:
        raise InputError("--rois", "fMRI mode (--stores) needs --rois")
    stores = [open_voxel_store(p) for p in args.stores]
    for s in stores:
        missing = [r for r in args.rois if r not in s.roi_names() and not _has_roi(s, r)]
        if missing:
            raise InputError(s.path, f"ROIs {missing} not in this store (ROIs: {s.roi_names()})")
    subjects = _subject_names(stores, args.stores)
    _check_common(args, subjects)
    names, caches, layers = _open_models(args)
    scores = _read_dimensions(args)
    stim, _ = _shared_stimuli(stores, caches, args.stores)
    folds = None
    if args.rdm_method == "crossnobis":
        stim, folds = _crossnobis_stimuli(stores, stim, args.cv_folds, args.stores)
    masks = {}
    for s, subj in zip(stores, subjects):
        for roi in args.rois:
            m = s.roi_mask(roi)
            if m.sum() < 2:
                raise InputError(s.path, f"ROI {roi!r} has {int(m.sum())} voxels; need at least 2")
            masks[subj, roi] = m
    device = _device(args.device)
    model_method = _model_method(args)
    log.info("RSA on %d shared stimuli, %d subjects, %d ROIs, %d models; brain RDMs %s%s, model RDMs %s", len(stim),
             len(stores), len(args.rois), len(names), args.rdm_method,
             f" (folds per subject: {folds})" if folds else "", model_method)

    brain = np.empty((len(stores), len(args.rois), len(stim) * (len(stim) - 1) // 2), dtype=np.float32)
    for i, (s, subj) in enumerate(progress(list(zip(stores, subjects)), desc="brain RDMs")):
        typed = _typed_ids(s, stim)
        if folds is None:
            for j, roi in enumerate(args.rois):
                _, means, _ = s.mean_by_stimulus(stimuli=typed, voxels=masks[subj, roi])
                brain[i, j] = compute_rdm(means, args.rdm_method, device=device)
            continue
        # crossnobis: per-fold means of the union of the ROIs, read once, then one RDM per ROI
        union = np.flatnonzero(np.any([masks[subj, roi] for roi in args.rois], axis=0))
        fold_means = _fold_means(s, s.betas, typed, folds[i], select=lambda b, u=union: b[:, u])
        for j, roi in enumerate(args.rois):
            cols = np.flatnonzero(masks[subj, roi][union])
            brain[i, j] = compute_rdm(fold_means[:, :, cols], "crossnobis", device=device)
        del fold_means
    keys, model = _model_rdms(names, caches, layers, stim, model_method, device)

    sims = np.asarray(compare_rdms(model, brain, args.method, device=device))  # (K, S, R)
    ci_low = np.full(sims.shape, np.nan)
    ci_high = np.full(sims.shape, np.nan)
    if args.n_boot > 0:
        boots = bootstrap_stimuli(model, brain, args.method, n_boot=args.n_boot, seed=args.seed, device=device)
        ci_low, ci_high = confidence_interval(boots, args.ci)
    nc = {}
    for j, roi in enumerate(args.rois):
        nc[roi] = noise_ceiling(brain[:, j], args.method) if len(stores) >= 2 else None

    rows = []
    for k, (mname, layer) in enumerate(keys):
        for i, subj in enumerate(subjects):
            for j, roi in enumerate(args.rois):
                rows.append(dict(model=mname, layer=layer, roi=roi, subject=subj,
                                 relation=_relation(subj, args.trained_on), method=args.method,
                                 value=float(sims[k, i, j]), ci_low=float(ci_low[k, i, j]),
                                 ci_high=float(ci_high[k, i, j]),
                                 nc_low=nc[roi].lower if nc[roi] else np.nan,
                                 nc_high=nc[roi].upper if nc[roi] else np.nan))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = pd.concat([df, _group_rows(df, args.n_boot, args.ci, args.seed)[COLUMNS]], ignore_index=True)

    dim_table = _dimension_analysis(args, scores, stim, keys, model) if scores is not None else None

    arrays = {"stimulus_ids": np.asarray(stim, dtype=str), "rdm_method": np.asarray(args.rdm_method),
              "model_rdm_method": np.asarray(model_method)}
    if folds is not None:
        arrays["cv_folds"] = np.asarray(folds)
    for k, (mname, layer) in enumerate(keys):
        arrays[f"model/{mname}/{layer}"] = model[k]
    for i, subj in enumerate(subjects):
        for j, roi in enumerate(args.rois):
            arrays[f"brain/{subj}/{roi}"] = brain[i, j]
    fig = _fmri_figure(df, args.rois)
    out.mkdir(parents=True, exist_ok=True)
    if dim_table is not None:
        _write_dimensions(dim_table, out)
    _write_npz(arrays, out / "rdms_fmri.npz")
    _write_figure(fig, out / "rsa_fmri.png")
    _write_table(df, out / "rsa_fmri.parquet")
    log.info("wrote %s", out / "rsa_fmri.parquet")
    return 0


def _has_roi(store, name):
    try:
        store.roi_mask(name)
        return True
    except InputError:
        return False


def _fmri_figure(df, rois):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    subj = df[df.subject != "mean"]
    models = list(dict.fromkeys(subj.model))
    layer_keys = list(dict.fromkeys(zip(subj.model, subj.layer)))
    fig, axes = plt.subplots(1, len(rois), figsize=(max(4, 0.45 * len(layer_keys) + 1.5) * len(rois), 3.6),
                             squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, roi in zip(axes[0], rois):
        d = subj[subj.roi == roi]
        nc_low, nc_high = d.nc_low.iloc[0], d.nc_high.iloc[0]
        if np.isfinite(nc_low):
            ax.axhspan(nc_low, nc_high, color="0.85", zorder=0, label="noise ceiling")
        labelled = set()
        for x, (mname, layer) in enumerate(layer_keys):
            v = d[(d.model == mname) & (d.layer == layer)]
            mean = v.value.mean()
            err = v.value.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
            ax.bar(x, mean, yerr=err, color=colours(models.index(mname) % 10), capsize=2,
                   label=None if mname in labelled else mname)
            labelled.add(mname)
            ax.scatter(np.full(len(v), x), v.value, s=8, color="k", zorder=3)
        ax.set_xticks(range(len(layer_keys)), [layer for _, layer in layer_keys], rotation=60, fontsize=7)
        ax.set_title(roi, fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
    axes[0, 0].set_ylabel(f"RDM similarity ({subj.method.iloc[0]})")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------- EEG

def _run_eeg(args, out: Path) -> int:
    from ..store import open_eeg_store

    stores = [open_eeg_store(p) for p in args.eeg_stores]
    subjects = _subject_names(stores, args.eeg_stores)
    _check_common(args, subjects)
    times = stores[0].times
    for s in stores[1:]:
        if s.times.shape != times.shape or not np.allclose(s.times, times):
            raise InputError(s.path, "EEG stores have different time axes")
    keep = np.ones(len(times), dtype=bool)
    if args.time_range:
        keep = (times >= args.time_range[0] - 1e-9) & (times <= args.time_range[1] + 1e-9)
    n_keep = int(keep.sum())
    if n_keep < 1 or not 1 <= args.window <= n_keep or args.step < 1:
        raise InputError("--time-range/--window/--step", f"{n_keep} time points selected; window {args.window}")
    if args.n_permutations < 1:
        raise InputError("--n-permutations", "must be >= 1")
    names, caches, layers = _open_models(args)
    scores = _read_dimensions(args)
    stim, _ = _shared_stimuli(stores, caches, args.eeg_stores)
    folds = None
    if args.rdm_method == "crossnobis":
        stim, folds = _crossnobis_stimuli(stores, stim, args.cv_folds, args.eeg_stores)
    device = _device(args.device)
    model_method = _model_method(args)

    series = []
    for i, s in enumerate(progress(stores, desc="EEG RDMs")):
        if folds is None:
            _, data, _ = s.mean_by_stimulus(stimuli=_typed_ids(s, stim))  # (n_stim, n_chan, n_times)
        else:  # fold means as repetitions: (n_stim, n_folds, n_chan, n_times)
            data = _fold_means(s, s.eeg, _typed_ids(s, stim), folds[i]).transpose(1, 0, 2, 3)
        rdms, starts = eeg_rdms(data[..., keep], method=args.rdm_method, window=args.window, step=args.step,
                                device=device)
        series.append(np.asarray(rdms))
    series = np.stack(series)  # (S, W, P)
    t_sel = times[keep]
    win_times = np.array([t_sel[a:a + args.window].mean() for a in starts])
    keys, model = _model_rdms(names, caches, layers, stim, model_method, device)
    dim_table = _dimension_analysis(args, scores, stim, keys, model) if scores is not None else None
    curves = rsa_timecourses(model, series, args.method, device=device)  # (S, K, W)
    n_sub = len(subjects)
    if n_sub >= 2:
        ncs = [noise_ceiling(series[:, w], args.method) for w in range(series.shape[1])]
        nc_low = np.array([n.lower for n in ncs])
        nc_high = np.array([n.upper for n in ncs])
    else:
        nc_low = nc_high = np.full(len(win_times), np.nan)

    rows = []
    for k, (mname, layer) in enumerate(keys):
        for i, subj in enumerate(subjects):
            rows.append(pd.DataFrame(dict(
                model=mname, layer=layer, roi="eeg", subject=subj, relation=_relation(subj, args.trained_on),
                method=args.method, time=win_times, value=curves[i, k], ci_low=np.nan, ci_high=np.nan,
                nc_low=nc_low, nc_high=nc_high)))
    df = pd.concat(rows, ignore_index=True)
    group = _group_rows(df, args.n_boot, args.ci, args.seed)
    df = pd.concat([df, group[df.columns]], ignore_index=True)

    cluster_rows = []
    if n_sub >= 2:
        test_kw = dict(n_permutations=args.n_permutations, cluster_alpha=args.cluster_alpha, alpha=args.alpha,
                       seed=args.seed)
        tests = [((mname, layer, "zero"), cluster_permutation_test(curves[:, k], **test_kw))
                 for k, (mname, layer) in enumerate(keys)]
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                if keys[a][1] == keys[b][1] and keys[a][0] != keys[b][0]:
                    tests.append(((keys[a][0], keys[a][1], keys[b][0]),
                                  paired_cluster_test(curves[:, a], curves[:, b], **test_kw)))
        for (mname, layer, versus), res in tests:
            for c in res.clusters:
                cluster_rows.append(dict(model=mname, layer=layer, versus=versus, method=args.method,
                                         start_time=float(win_times[c.start]), stop_time=float(win_times[c.stop - 1]),
                                         start_index=c.start, stop_index=c.stop, sign=c.sign, mass=c.mass,
                                         p_value=c.p_value, significant=c.p_value < args.alpha))
    else:
        log.warning("one EEG subject: no noise ceiling and no cluster tests (need >= 2 subjects)")
    clusters = pd.DataFrame(cluster_rows, columns=["model", "layer", "versus", "method", "start_time", "stop_time",
                                                   "start_index", "stop_index", "sign", "mass", "p_value",
                                                   "significant"])
    arrays = {"stimulus_ids": np.asarray(stim, dtype=str), "times": win_times,
              "subjects": np.asarray(subjects, dtype=str), "eeg": series,
              "rdm_method": np.asarray(args.rdm_method), "model_rdm_method": np.asarray(model_method)}
    if folds is not None:
        arrays["cv_folds"] = np.asarray(folds)
    for k, (mname, layer) in enumerate(keys):
        arrays[f"model/{mname}/{layer}"] = model[k]
    fig = _eeg_figure(df, clusters)
    out.mkdir(parents=True, exist_ok=True)
    if dim_table is not None:
        _write_dimensions(dim_table, out)
    _write_npz(arrays, out / "rdms_eeg.npz")
    _write_figure(fig, out / "rsa_eeg.png")
    _write_table(clusters, out / "rsa_eeg_clusters.parquet")
    _write_table(df, out / "rsa_eeg.parquet")
    log.info("wrote %s", out / "rsa_eeg.parquet")
    return 0


def _eeg_figure(df, clusters):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    subj = df[df.subject != "mean"]
    layer_names = list(dict.fromkeys(subj.layer))
    models = list(dict.fromkeys(subj.model))
    fig, axes = plt.subplots(1, len(layer_names), figsize=(4.2 * len(layer_names), 3.4), squeeze=False,
                             sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, layer in zip(axes[0], layer_names):
        d = subj[subj.layer == layer]
        first = d[d.model == d.model.iloc[0]].groupby("time", sort=True)[["nc_low", "nc_high"]].first()
        if np.isfinite(first.nc_low).any():
            ax.fill_between(first.index, first.nc_low, first.nc_high, color="0.85", label="noise ceiling", lw=0)
        ymin = np.nanmin(d.value)
        for m_i, mname in enumerate(models):
            curve = d[d.model == mname].groupby("time", sort=True).value
            if curve.ngroups == 0:
                continue
            mean, sem = curve.mean(), curve.sem()
            col = colours(m_i % 10)
            ax.plot(mean.index, mean.values, color=col, label=mname)
            if np.isfinite(sem.values).any():
                ax.fill_between(mean.index, mean - sem, mean + sem, color=col, alpha=0.25, lw=0)
            sig = clusters[(clusters.model == mname) & (clusters.layer == layer) & (clusters.versus == "zero")
                           & clusters.significant]
            y = ymin - 0.02 * (m_i + 1)
            for _, c in sig.iterrows():
                ax.plot([c.start_time, c.stop_time], [y, y], color=col, lw=3, solid_capstyle="butt")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel(f"model-EEG similarity ({subj.method.iloc[0]})")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------- entry

def run(args) -> int:
    out = Path(args.out)
    if args.stores:
        return _run_fmri(args, out)
    return _run_eeg(args, out)
