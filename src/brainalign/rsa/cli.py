"""``brainalign rsa``: model-vs-brain RSA for fMRI voxel stores or time-resolved EEG stores.

fMRI::

    brainalign rsa --features CORNET.zarr REALNET.zarr --stores S1.zarr S2.zarr S3.zarr \
        --rois prf-visualrois/V1v floc-faces/FFA-1 --trained-on subj01 --out results/rsa

EEG::

    brainalign rsa --features CORNET.zarr --eeg-stores sub-01.zarr ... --time-range -0.1 0.5 --out results/rsa_eeg

Outputs (each written atomically) in ``--out``: ``rsa_fmri.parquet`` / ``rsa_eeg.parquet`` (tidy:
model, layer, roi, subject, relation, method, [time,] value, ci_low, ci_high, nc_low, nc_high),
``rsa_eeg_clusters.parquet``, ``rdms_fmri.npz`` / ``rdms_eeg.npz`` (condensed RDMs), and figures
``rsa_fmri.png`` / ``rsa_eeg.png``. See docs/rsa.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, progress
from ..errors import InputError
from .bootstrap import bootstrap_stimuli, bootstrap_subjects, confidence_interval
from .compare import METHODS as COMPARE_METHODS
from .compare import compare_rdms
from .noise_ceiling import noise_ceiling
from .rdm import compute_rdm
from .timecourse import cluster_permutation_test, eeg_rdms, paired_cluster_test, rsa_timecourses

log = logging.getLogger(__name__)

COLUMNS = ["model", "layer", "roi", "subject", "relation", "method", "value", "ci_low", "ci_high",
           "nc_low", "nc_high"]


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
    parser.add_argument("--rdm-method", default="correlation", choices=["correlation", "euclidean"],
                        help="dissimilarity of brain and model RDMs (default: correlation = 1 - Pearson r)")
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
    stim, _ = _shared_stimuli(stores, caches, args.stores)
    masks = {}
    for s, subj in zip(stores, subjects):
        for roi in args.rois:
            m = s.roi_mask(roi)
            if m.sum() < 2:
                raise InputError(s.path, f"ROI {roi!r} has {int(m.sum())} voxels; need at least 2")
            masks[subj, roi] = m
    device = _device(args.device)
    log.info("RSA on %d shared stimuli, %d subjects, %d ROIs, %d models", len(stim), len(stores), len(args.rois),
             len(names))

    brain = np.empty((len(stores), len(args.rois), len(stim) * (len(stim) - 1) // 2), dtype=np.float32)
    for i, (s, subj) in enumerate(progress(list(zip(stores, subjects)), desc="brain RDMs")):
        typed = _typed_ids(s, stim)
        for j, roi in enumerate(args.rois):
            _, means, _ = s.mean_by_stimulus(stimuli=typed, voxels=masks[subj, roi])
            brain[i, j] = compute_rdm(means, args.rdm_method, device=device)
    keys, model = _model_rdms(names, caches, layers, stim, args.rdm_method, device)

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

    arrays = {"stimulus_ids": np.asarray(stim, dtype=str), "rdm_method": np.asarray(args.rdm_method)}
    for k, (mname, layer) in enumerate(keys):
        arrays[f"model/{mname}/{layer}"] = model[k]
    for i, subj in enumerate(subjects):
        for j, roi in enumerate(args.rois):
            arrays[f"brain/{subj}/{roi}"] = brain[i, j]
    fig = _fmri_figure(df, args.rois)
    out.mkdir(parents=True, exist_ok=True)
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
    stim, _ = _shared_stimuli(stores, caches, args.eeg_stores)
    device = _device(args.device)

    series = []
    for s in progress(stores, desc="EEG RDMs"):
        _, means, _ = s.mean_by_stimulus(stimuli=_typed_ids(s, stim))  # (n_stim, n_chan, n_times)
        rdms, starts = eeg_rdms(means[..., keep], method=args.rdm_method, window=args.window, step=args.step,
                                device=device)
        series.append(np.asarray(rdms))
    series = np.stack(series)  # (S, W, P)
    t_sel = times[keep]
    win_times = np.array([t_sel[a:a + args.window].mean() for a in starts])
    keys, model = _model_rdms(names, caches, layers, stim, args.rdm_method, device)
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
              "subjects": np.asarray(subjects, dtype=str), "eeg": series}
    for k, (mname, layer) in enumerate(keys):
        arrays[f"model/{mname}/{layer}"] = model[k]
    fig = _eeg_figure(df, clusters)
    out.mkdir(parents=True, exist_ok=True)
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
