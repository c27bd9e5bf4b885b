"""``brainalign rsa`` as functions: model-vs-brain RSA on fMRI voxel stores or time-resolved EEG stores.

:func:`run_fmri_rsa` compares every model layer's RDM with each subject's ROI RDMs; :func:`run_eeg_rsa` with
each subject's RDM at every time point (or window). Both work on the stimuli shared by all stores and feature
caches. Brain RDMs use ``rdm_method`` ``"correlation"`` (default), ``"euclidean"`` or ``"crossnobis"``
(cross-validated across the repetitions of each stimulus, folds read with the stores' ``mean_by_fold``);
model RDMs use ``model_rdm_method`` (models have no repetitions: correlation or euclidean; euclidean by default
with crossnobis). ``dimensions`` adds the object-dimension analysis of the model layers on the same stimuli.

Outputs (each written atomically, after every input was checked) in ``out``:
``rsa_fmri.parquet`` / ``rsa_eeg.parquet`` (tidy: model, layer, roi, subject, relation, method, [time,] value,
ci_low, ci_high, nc_low, nc_high), ``rsa_eeg_clusters.parquet``, with ``compare`` (fMRI) ``rsa_layers.parquet``
(each model's layer per subject and ROI, chosen on the subject's stimuli outside the evaluation set) and
``rsa_comparisons.parquet`` (model minus baseline at those layers, paired stimulus bootstrap;
:mod:`brainalign.rsa.comparisons`), ``rsa_models.parquet`` (fMRI: each model's weights provenance),
``rdms_fmri.npz`` / ``rdms_eeg.npz`` (condensed RDMs), figures ``rsa_fmri.png`` / ``rsa_eeg.png``, and with
``dimensions`` ``dimensions.parquet`` / ``dimensions.png``. See docs/rsa.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, progress
from ..devices import resolve_device
from ..errors import InputError
from ..heldout import evaluation_stimuli
from ..plotting import save_figure
from .bootstrap import bootstrap_stimuli, bootstrap_subjects, confidence_interval
from .compare import compare_rdms
from .comparisons import choose_layers, paired_comparisons
from .condensed import condensed_subset
from .crossnobis import crossnobis_from_fold_means
from .dimension_tables import read_dimension_scores
from .dimensions import dimension_comparisons, dimension_rsa, dimension_table
from .figures import dimension_figure, eeg_figure, fmri_figure
from .noise_ceiling import noise_ceiling
from .options import COMPARISON_METHODS, DEFAULT_DIMENSION_BASELINE, MEAN_CURVE, MODEL_RDM_METHODS, RDM_METHODS
from .rdm import compute_rdm
from .timecourse import cluster_permutation_test, eeg_rdms, paired_cluster_test, rsa_timecourses

log = logging.getLogger(__name__)

#: columns of ``rsa_fmri.parquet`` (``rsa_eeg.parquet`` adds ``time`` after ``method``)
COLUMNS = ["model", "layer", "roi", "subject", "relation", "method", "value", "ci_low", "ci_high",
           "nc_low", "nc_high"]
#: columns of ``rsa_eeg_clusters.parquet``
CLUSTER_COLUMNS = ["model", "layer", "versus", "method", "start_time", "stop_time", "start_index", "stop_index",
                   "sign", "mass", "p_value", "significant"]


# --------------------------------------------------------------------------------------------- inputs

@dataclass
class _Inputs:
    """Everything both modes check and derive before computing (see :func:`_common_inputs`)."""

    subjects: list  #: subject name per store
    models: list  #: model name per feature cache
    caches: list  #: open feature caches
    layers: dict  #: model name -> layers used
    stim: list  #: analysed stimulus ids (str), in RDM condition order
    folds: list | None  #: crossnobis folds per store (None: repetition-averaged RDMs)
    device: object  #: torch.device
    rdm_method: str
    model_rdm_method: str
    dimensions: tuple | None  #: (positions in ``stim``, score DataFrame, baseline) or None


def _subject_names(stores, paths):
    names = [str(s.attrs.get("subject", "")) for s in stores]
    if any(n in ("", "unknown", "None") for n in names) or len(set(names)) != len(names):
        names = [Path(p).name.removesuffix(".zarr") for p in paths]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    return names


def _open_models(features, model_names, layers):
    from ..features import open_feature_cache

    caches = [open_feature_cache(p) for p in features]
    if model_names:
        if len(model_names) != len(caches):
            raise InputError("--model-names", f"{len(model_names)} names for {len(caches)} feature caches")
        names = list(model_names)
    else:
        names = [Path(p).name.removesuffix(".zarr") for p in features]
    if len(set(names)) != len(names):
        raise InputError("--model-names", f"model names must be unique, got {names}")
    used = {}
    for name, cache in zip(names, caches):
        use = list(layers) if layers else list(cache.layers)
        missing = [layer for layer in use if layer not in cache.layers]
        if missing:
            raise InputError(cache.path, f"layers {missing} not in this cache (layers: {cache.layers})")
        if not use:
            raise InputError(cache.path, "feature cache has no layers")
        used[name] = use
    return names, caches, used


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


def _dimension_inputs(path, stim, models, baseline):
    """Read the dimension table and match it to the analysed stimuli (all checks before any computing).

    Returns
    -------
    positions : int ndarray, indices into ``stim`` of the stimuli the table covers
    scores : DataFrame (n_positions, n_dimensions), dimensions constant over those stimuli left out
    baseline : str or None, the model differences are taken against
    """
    scores = read_dimension_scores(path)
    if baseline is not None and baseline not in models:
        raise InputError("--dimension-baseline", f"{baseline!r} is not one of the models {models}")
    if baseline is None and DEFAULT_DIMENSION_BASELINE in models:
        baseline = DEFAULT_DIMENSION_BASELINE
    pos = [i for i, sid in enumerate(stim) if sid in scores.index]
    if len(pos) < 3:
        raise InputError(path, f"only {len(pos)} of the {len(stim)} analysed stimuli are in the dimension "
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
        raise InputError(path, "every dimension is constant over the analysed stimuli")
    return np.asarray(pos), values, baseline


def _common_inputs(stores, store_paths, features, *, model_names, layers, trained_on, rdm_method, model_rdm_method,
                   cv_folds, dimensions, dimension_baseline, method, n_boot, ci, device, eval_stimuli=None) -> _Inputs:
    """Check the options both modes share and derive subjects, models, stimuli, folds and the device."""
    for option, value, allowed in (("--rdm-method", rdm_method, RDM_METHODS), ("--method", method, COMPARISON_METHODS),
                                   ("--model-rdm-method", model_rdm_method, (None,) + MODEL_RDM_METHODS)):
        if value not in allowed:
            raise InputError(option, f"{value!r} is not one of {allowed}")
    subjects = _subject_names(stores, store_paths)
    if trained_on is not None and trained_on not in subjects:
        raise InputError("--trained-on", f"subject {trained_on!r} is not one of the stores' subjects {subjects}")
    if n_boot < 0 or not 0 < ci < 1:
        raise InputError("--n-boot/--ci", "need n_boot >= 0 and 0 < ci < 1")
    if cv_folds is not None and (rdm_method != "crossnobis" or cv_folds < 2):
        raise InputError("--cv-folds", "only used with --rdm-method crossnobis, and must be >= 2")
    names, caches, used_layers = _open_models(features, model_names, layers)
    # the held-out evaluation set (shared-flagged stimuli, or the user's list), refused if any compared model
    # was trained or selected on one of its stimuli (brainalign.heldout)
    stim = evaluation_stimuli(stores, caches, store_paths, eval_stimuli, where="RSA evaluation stimuli")
    folds = None
    if rdm_method == "crossnobis":
        stim, folds = _crossnobis_stimuli(stores, stim, cv_folds, store_paths)
    dims = _dimension_inputs(dimensions, stim, names, dimension_baseline) if dimensions else None
    # models have no repetitions to cross-validate over: crossnobis's noise-free counterpart is euclidean
    model_rdm_method = model_rdm_method or ("euclidean" if rdm_method == "crossnobis" else rdm_method)
    return _Inputs(subjects=subjects, models=names, caches=caches, layers=used_layers, stim=stim, folds=folds,
                   device=resolve_device(device), rdm_method=rdm_method, model_rdm_method=model_rdm_method,
                   dimensions=dims)


def _typed_ids(store, str_ids):
    """The store's own stimulus ids (int or str) of ``str_ids``."""
    lookup = {str(v): v for v in pd.unique(store.trials["stimulus"])}
    return [lookup[s] for s in str_ids]


# --------------------------------------------------------------------------------------------- shared steps

def _model_rdms(inp: _Inputs):
    """Condensed RDM of every (model, layer) on the analysed stimuli: keys, float32 (n_keys, P)."""
    keys, rdms = [], []
    for name, cache in zip(inp.models, inp.caches):
        rows = cache.rows_for(inp.stim)
        for layer in inp.layers[name]:
            feats = cache.layer(layer, rows=rows).reshape(len(rows), -1)
            rdms.append(compute_rdm(feats, inp.model_rdm_method, device=inp.device).astype(np.float32))
            keys.append((name, layer))
    return keys, np.stack(rdms)


def _dimension_table(inp: _Inputs, keys, model, method, n_boot, ci, seed, pairs=()):
    """The object-dimension table of the model RDMs and the comparisons of ``pairs`` on it (same bootstrap), or
    (None, None) without a dimension table."""
    if inp.dimensions is None:
        return None, None
    positions, scores, baseline = inp.dimensions
    rdms = condensed_subset(model, positions, len(inp.stim))
    result = dimension_rsa(rdms, scores.to_numpy(dtype=np.float32), method, device=inp.device, n_boot=n_boot,
                           seed=seed)
    table = dimension_table(keys, rdms, scores, baseline=baseline, method=method, n_boot=n_boot, level=ci, seed=seed,
                            device=inp.device, similarities=result)
    sims, boots = result if n_boot > 0 else (result, None)
    return table, dimension_comparisons(keys, sims, boots, pairs, len(scores), level=ci)


def _model_table(inp: _Inputs) -> pd.DataFrame:
    """``rsa_models.parquet``: each compared model's weights as its feature cache records them (``random``,
    ``imagenet:<file>``, ``checkpoint:<path>``; ``weights_origin``: where a trained model's weights started) and
    how many stimuli it was trained or selected on (0: untrained)."""
    rows = []
    for name, cache in zip(inp.models, inp.caches):
        attrs = cache.attrs
        model_attrs = attrs.get("model") if isinstance(attrs.get("model"), dict) else {}
        weights = attrs.get("weights") or model_attrs.get("weights") or "unknown"
        record = getattr(cache, "training_stimuli", None)
        rows.append(dict(model=name, weights=str(weights), weights_origin=str(attrs.get("weights_origin") or weights),
                         n_training_stimuli=0 if record is None else int(record["stimulus"].nunique())))
    return pd.DataFrame(rows, columns=["model", "weights", "weights_origin", "n_training_stimuli"])


def _check_pairs(compare, models):
    """The (model, baseline) pairs to compare, checked against the model names."""
    pairs = [tuple(p) for p in (compare or [])]
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or any(m not in models for m in pair):
            raise InputError("--compare", f"{pair} is not a pair of two different models of {models}")
    return pairs


def _stimulus_order(ids):
    """Stimulus ids (str) sorted as everywhere in this stage: numeric ids by value, then the others."""
    return sorted(ids, key=lambda v: (len(v), v) if v.lstrip("-").isdigit() else (np.inf, v))


def _selection_pools(stores, inp: _Inputs, max_stimuli: int, seed: int):
    """Per store, the stimuli a layer may be chosen on: in every feature cache, not in the evaluation set (with
    crossnobis: enough repetitions), at most ``max_stimuli`` of them (a seeded random subset)."""
    if max_stimuli < 3:
        raise InputError("--layer-choice-max", "need at least 3 stimuli to choose a layer on")
    in_caches = set.intersection(*(set(map(str, c.stimulus_ids.tolist())) for c in inp.caches))
    evaluated = set(inp.stim)
    rng = np.random.default_rng(seed)
    pools = []
    for i, s in enumerate(stores):
        counts = s.trials["stimulus"].astype(str).value_counts()
        need = inp.folds[i] if inp.folds else 1
        pool = _stimulus_order(sid for sid, c in counts.items() if c >= need and sid in in_caches
                               and sid not in evaluated)
        if len(pool) < 3:
            raise InputError(s.path, f"only {len(pool)} stimuli outside the evaluation set to choose each model's "
                                     "layer on (need 3); --compare needs the subject's training stimuli")
        if len(pool) > max_stimuli:
            pool = _stimulus_order(rng.choice(pool, size=max_stimuli, replace=False).tolist())
        pools.append(pool)
    return pools


def _layer_choices(stores, inp: _Inputs, rois, masks, method, pools, max_stimuli):
    """Each model's layer per subject and ROI, chosen on that subject's selection stimuli (never the evaluation
    stimuli): the layer whose RDM is most similar to the subject's ROI RDM there."""
    from dataclasses import replace

    criterion = (f"highest {method} RDM similarity on the subject's stimuli outside the evaluation set "
                 f"(at most {max_stimuli}, seeded subset)")
    frames = []
    for i, (s, subj) in enumerate(zip(stores, inp.subjects)):
        sel = replace(inp, stim=pools[i], subjects=[subj], folds=[inp.folds[i]] if inp.folds else None)
        brain = _roi_rdms([s], sel, rois, masks)  # (1, R, P)
        keys, model = _model_rdms(sel)
        sims = np.asarray(compare_rdms(model, brain, method, device=inp.device))[:, 0, :]  # (K, R)
        frames.append(choose_layers(keys, sims, subj, rois, len(pools[i]), criterion))
        del brain, model
    return pd.concat(frames, ignore_index=True)


def _relation(subject, trained_on):
    return "within" if trained_on is not None and subject == trained_on else "across"


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


def _rdm_arrays(inp: _Inputs, keys, model):
    """The npz entries both modes write: stimuli, RDM methods, crossnobis folds and the model RDMs."""
    arrays = {"stimulus_ids": np.asarray(inp.stim, dtype=str), "rdm_method": np.asarray(inp.rdm_method),
              "model_rdm_method": np.asarray(inp.model_rdm_method)}
    if inp.folds is not None:
        arrays["cv_folds"] = np.asarray(inp.folds)
    for k, (mname, layer) in enumerate(keys):
        arrays[f"model/{mname}/{layer}"] = model[k]
    return arrays


def _write_outputs(out, tables: dict, arrays: tuple, figure: tuple, dim_table):
    """Write the outputs atomically; the main table (last entry of ``tables``) last, as the sign of completion.

    Parameters
    ----------
    tables : dict file name -> DataFrame (parquet)
    arrays : (file name, dict of arrays) for the npz of RDMs
    figure : (file name, matplotlib Figure)
    dim_table : DataFrame or None (``dimensions.parquet`` and ``dimensions.png``)
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if dim_table is not None:
        save_figure(dimension_figure(dim_table), out / "dimensions.png", dpi=120, bbox_inches="tight")
        _write_table(dim_table, out / "dimensions.parquet")
    npz_name, npz = arrays
    with atomic_output(out / npz_name) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **npz)
    fig_name, fig = figure
    save_figure(fig, out / fig_name, dpi=120, bbox_inches="tight")
    for name, table in tables.items():
        _write_table(table, out / name)
    log.info("wrote %s", out / list(tables)[-1])


def _write_table(df, path):
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)


# --------------------------------------------------------------------------------------------- fMRI

def run_fmri_rsa(features, stores, rois, out, *, model_names=None, layers=None, trained_on=None,
                 rdm_method: str = "correlation", model_rdm_method=None, cv_folds=None, dimensions=None,
                 dimension_baseline=None, method: str = "spearman", n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0, device="auto", compare=None, layer_choice_max: int = 1000,
                 eval_stimuli=None) -> dict:
    """Model-vs-fMRI RSA: every model layer against every subject's ROI RDMs; writes ``out``.

    Parameters
    ----------
    features : list of paths, feature caches (one per model)
    stores : list of paths, voxel stores (one per subject)
    rois : list of str, ROI names of the stores (``store.roi_names()``); each needs >= 2 voxels in every store
    out : path, output folder
    model_names : list of str, optional, one per cache (default: cache file stems)
    layers : list of str, optional (default: every layer of each cache)
    trained_on : str, optional
        Subject the models were trained on: its rows get ``relation="within"``, the others ``"across"``.
    rdm_method : "correlation" | "euclidean" | "crossnobis" (brain RDMs)
    model_rdm_method : "correlation" | "euclidean", optional (default ``rdm_method``; euclidean with crossnobis)
    cv_folds : int >= 2, optional
        Crossnobis folds (repetition rank modulo K; default: per store the fewest repetitions of a used stimulus).
    dimensions : path, optional, a dimension table (:func:`brainalign.rsa.dimension_tables.read_dimension_scores`)
    dimension_baseline : str, optional (default ``cornet_s-initial`` when it is one of the models)
    method : RDM comparison ("spearman", "corr", "cosine", "tau-a")
    n_boot : bootstrap samples (stimuli per subject; subjects for the mean rows); 0 = no intervals
    ci : confidence level
    seed : seed of the bootstraps
    device : torch device ("auto", "cpu", "cuda", ...; :func:`brainalign.devices.resolve_device`)
    compare : list of (model, baseline), optional
        Paired comparisons (``rsa_comparisons.parquet``; with a dimension table also on the object dimensions).
        Each model's layer per subject and ROI is chosen on the subject's stimuli outside the evaluation set
        (``rsa_layers.parquet``), never on the evaluation stimuli.
    layer_choice_max : int, at most this many stimuli per subject for the layer choice (seeded random subset)
    eval_stimuli : path or list of ids, optional
        The evaluation set (:func:`brainalign.heldout.evaluation_stimuli`); default: the stimuli flagged
        ``shared`` in every store (NSD shared images, BOLD5000 repeated set, THINGS-EEG2 test images). Refused
        when a compared model's training record holds one of them.

    Returns
    -------
    dict: ``"rsa"`` the ``rsa_fmri.parquet`` table, ``"dimensions"`` the ``dimensions.parquet`` table or None,
    ``"comparisons"`` and ``"layers"`` (None without ``compare``)

    Raises
    ------
    InputError
        Naming the option or file, before anything is written.
    """
    from ..store import open_voxel_store

    if not rois:
        raise InputError("--rois", "fMRI mode (--stores) needs --rois")
    rois = list(rois)
    opened = [open_voxel_store(p) for p in stores]
    for s in opened:
        missing = [r for r in rois if r not in s.roi_names() and not _has_roi(s, r)]
        if missing:
            raise InputError(s.path, f"ROIs {missing} not in this store (ROIs: {s.roi_names()})")
    inp = _common_inputs(opened, stores, features, model_names=model_names, layers=layers, trained_on=trained_on,
                         rdm_method=rdm_method, model_rdm_method=model_rdm_method, cv_folds=cv_folds,
                         dimensions=dimensions, dimension_baseline=dimension_baseline, method=method,
                         n_boot=n_boot, ci=ci, device=device, eval_stimuli=eval_stimuli)
    masks = {}
    for s, subj in zip(opened, inp.subjects):
        for roi in rois:
            m = s.roi_mask(roi)
            if m.sum() < 2:
                raise InputError(s.path, f"ROI {roi!r} has {int(m.sum())} voxels; need at least 2")
            masks[subj, roi] = m
    pairs = _check_pairs(compare, inp.models)
    pools = _selection_pools(opened, inp, layer_choice_max, seed) if pairs else None
    log.info("RSA on %d shared stimuli, %d subjects, %d ROIs, %d models; brain RDMs %s%s, model RDMs %s",
             len(inp.stim), len(opened), len(rois), len(inp.models), rdm_method,
             f" (folds per subject: {inp.folds})" if inp.folds else "", inp.model_rdm_method)

    brain = _roi_rdms(opened, inp, rois, masks)  # (S, R, P)
    keys, model = _model_rdms(inp)
    sims = np.asarray(compare_rdms(model, brain, method, device=inp.device))  # (K, S, R)
    ci_low = np.full(sims.shape, np.nan)
    ci_high = np.full(sims.shape, np.nan)
    boots = None
    if n_boot > 0:
        boots = bootstrap_stimuli(model, brain, method, n_boot=n_boot, seed=seed, device=inp.device)
        ci_low, ci_high = confidence_interval(boots, ci)
    nc = {roi: noise_ceiling(brain[:, j], method) if len(opened) >= 2 else None for j, roi in enumerate(rois)}

    rows = []
    for k, (mname, layer) in enumerate(keys):
        for i, subj in enumerate(inp.subjects):
            for j, roi in enumerate(rois):
                rows.append(dict(model=mname, layer=layer, roi=roi, subject=subj,
                                 relation=_relation(subj, trained_on), method=method,
                                 value=float(sims[k, i, j]), ci_low=float(ci_low[k, i, j]),
                                 ci_high=float(ci_high[k, i, j]),
                                 nc_low=nc[roi].lower if nc[roi] else np.nan,
                                 nc_high=nc[roi].upper if nc[roi] else np.nan))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = pd.concat([df, _group_rows(df, n_boot, ci, seed)[COLUMNS]], ignore_index=True)
    dim_table, dim_comparisons = _dimension_table(inp, keys, model, method, n_boot, ci, seed, pairs)

    tables = {"rsa_models.parquet": _model_table(inp), "rsa_fmri.parquet": df}
    choices = comparisons = None
    if pairs:
        choices = _layer_choices(opened, inp, rois, masks, method, pools, layer_choice_max)
        relations = [_relation(subj, trained_on) for subj in inp.subjects]
        comparisons = paired_comparisons(keys, sims, boots, inp.subjects, relations, rois, pairs, choices,
                                         len(inp.stim), level=ci, seed=seed)
        if dim_comparisons is not None and len(dim_comparisons):
            comparisons = pd.concat([comparisons, dim_comparisons], ignore_index=True)
        tables = {"rsa_layers.parquet": choices, "rsa_comparisons.parquet": comparisons, **tables}  # main last
    arrays = _rdm_arrays(inp, keys, model)
    for i, subj in enumerate(inp.subjects):
        for j, roi in enumerate(rois):
            arrays[f"brain/{subj}/{roi}"] = brain[i, j]
    _write_outputs(out, tables, ("rdms_fmri.npz", arrays), ("rsa_fmri.png", fmri_figure(df, rois)), dim_table)
    return {"rsa": df, "dimensions": dim_table, "comparisons": comparisons, "layers": choices}


def _has_roi(store, name):
    try:
        store.roi_mask(name)
        return True
    except InputError:
        return False


def _roi_rdms(stores, inp: _Inputs, rois, masks):
    """Brain RDM of every subject and ROI: float32 (n_subjects, n_rois, P)."""
    n = len(inp.stim)
    brain = np.empty((len(stores), len(rois), n * (n - 1) // 2), dtype=np.float32)
    for i, (s, subj) in enumerate(progress(list(zip(stores, inp.subjects)), desc="brain RDMs")):
        typed = _typed_ids(s, inp.stim)
        if inp.folds is None:
            for j, roi in enumerate(rois):
                _, means, _ = s.mean_by_stimulus(stimuli=typed, voxels=masks[subj, roi])
                brain[i, j] = compute_rdm(means, inp.rdm_method, device=inp.device)
            continue
        # crossnobis: per-fold means and trial counts of the union of the ROIs, read once, then one trial-level
        # RDM per ROI (folds weighted by their trials, as rsatoolbox's calc_rdm with a cv_descriptor)
        union = np.flatnonzero(np.any([masks[subj, roi] for roi in rois], axis=0))
        _, fold_means, fold_counts = s.mean_by_fold(typed, inp.folds[i], voxels=union)
        for j, roi in enumerate(rois):
            cols = np.flatnonzero(masks[subj, roi][union])
            brain[i, j] = crossnobis_from_fold_means(fold_means[:, :, cols], fold_counts, device=inp.device)
        del fold_means
    return brain


# --------------------------------------------------------------------------------------------- EEG

def run_eeg_rsa(features, eeg_stores, out, *, model_names=None, layers=None, trained_on=None,
                rdm_method: str = "correlation", model_rdm_method=None, cv_folds=None, dimensions=None,
                dimension_baseline=None, method: str = "spearman", n_boot: int = 1000, ci: float = 0.95,
                seed: int = 0, device="auto", time_range=None, window: int = 1, step: int = 1,
                n_permutations: int = 1000, cluster_alpha: float = 0.05, alpha: float = 0.05,
                eval_stimuli=None) -> dict:
    """Time-resolved model-vs-EEG RSA with noise ceilings and cluster permutation tests; writes ``out``.

    Parameters
    ----------
    features : list of paths, feature caches (one per model)
    eeg_stores : list of paths, EEG stores (one per subject, same time axis)
    out : path, output folder
    model_names, layers, trained_on, rdm_method, model_rdm_method, cv_folds, dimensions, dimension_baseline,
    method, seed, device, eval_stimuli : as in :func:`run_fmri_rsa`
    n_boot : bootstrap samples over subjects for the mean rows; 0 = no intervals
    ci : confidence level
    time_range : (start, stop) seconds, optional; keeps start <= t <= stop
    window, step : samples averaged per RDM, and samples between windows
    n_permutations : sign-flip permutations of the cluster tests (against zero, and between models per layer)
    cluster_alpha : cluster-forming threshold (two-sided p per time point)
    alpha : cluster significance level

    Returns
    -------
    dict: ``"rsa"`` the ``rsa_eeg.parquet`` table, ``"clusters"`` ``rsa_eeg_clusters.parquet``,
    ``"dimensions"`` ``dimensions.parquet`` or None

    Raises
    ------
    InputError
        Naming the option or file, before anything is written.
    """
    from ..store import open_eeg_store

    opened = [open_eeg_store(p) for p in eeg_stores]
    times = opened[0].times
    for s in opened[1:]:
        if s.times.shape != times.shape or not np.allclose(s.times, times):
            raise InputError(s.path, "EEG stores have different time axes")
    keep = np.ones(len(times), dtype=bool)
    if time_range:
        keep = (times >= time_range[0] - 1e-9) & (times <= time_range[1] + 1e-9)
    n_keep = int(keep.sum())
    if n_keep < 1 or not 1 <= window <= n_keep or step < 1:
        raise InputError("--time-range/--window/--step", f"{n_keep} time points selected; window {window}")
    if n_permutations < 1:
        raise InputError("--n-permutations", "must be >= 1")
    inp = _common_inputs(opened, eeg_stores, features, model_names=model_names, layers=layers, trained_on=trained_on,
                         rdm_method=rdm_method, model_rdm_method=model_rdm_method, cv_folds=cv_folds,
                         dimensions=dimensions, dimension_baseline=dimension_baseline, method=method,
                         n_boot=n_boot, ci=ci, device=device, eval_stimuli=eval_stimuli)

    series = []
    for i, s in enumerate(progress(opened, desc="EEG RDMs")):
        typed = _typed_ids(s, inp.stim)
        if inp.folds is None:
            _, data, _ = s.mean_by_stimulus(stimuli=typed)  # (n_stim, n_chan, n_times)
        else:  # fold means as repetitions: (n_stim, n_folds, n_chan, n_times), with their trial counts
            _, data, fold_counts = s.mean_by_fold(typed, inp.folds[i])
            data, rep_counts = data.transpose(1, 0, 2, 3), fold_counts.T
        rdms, starts = eeg_rdms(data[..., keep], method=rdm_method, window=window, step=step, device=inp.device,
                                counts=None if inp.folds is None else rep_counts)
        series.append(np.asarray(rdms))
    series = np.stack(series)  # (S, W, P)
    t_sel = times[keep]
    win_times = np.array([t_sel[a:a + window].mean() for a in starts])
    keys, model = _model_rdms(inp)
    dim_table, _ = _dimension_table(inp, keys, model, method, n_boot, ci, seed)
    curves = rsa_timecourses(model, series, method, device=inp.device)  # (S, K, W)
    n_sub = len(inp.subjects)
    if n_sub >= 2:
        ncs = [noise_ceiling(series[:, w], method) for w in range(series.shape[1])]
        nc_low = np.array([n.lower for n in ncs])
        nc_high = np.array([n.upper for n in ncs])
    else:
        nc_low = nc_high = np.full(len(win_times), np.nan)

    rows = []
    for k, (mname, layer) in enumerate(keys):
        for i, subj in enumerate(inp.subjects):
            rows.append(pd.DataFrame(dict(
                model=mname, layer=layer, roi="eeg", subject=subj, relation=_relation(subj, trained_on),
                method=method, time=win_times, value=curves[i, k], ci_low=np.nan, ci_high=np.nan,
                nc_low=nc_low, nc_high=nc_high)))
    df = pd.concat(rows, ignore_index=True)
    df = pd.concat([df, _group_rows(df, n_boot, ci, seed)[df.columns]], ignore_index=True)
    if n_sub >= 2:
        clusters = _cluster_table(keys, curves, win_times, method, n_permutations=n_permutations,
                                  cluster_alpha=cluster_alpha, alpha=alpha, seed=seed)
    else:
        log.warning("one EEG subject: no noise ceiling and no cluster tests (need >= 2 subjects)")
        clusters = pd.DataFrame([], columns=CLUSTER_COLUMNS)

    arrays = _rdm_arrays(inp, keys, model)
    arrays.update(times=win_times, subjects=np.asarray(inp.subjects, dtype=str), eeg=series)
    _write_outputs(out, {"rsa_eeg_clusters.parquet": clusters, "rsa_eeg.parquet": df}, ("rdms_eeg.npz", arrays),
                   ("rsa_eeg.png", eeg_figure(df, clusters)), dim_table)
    return {"rsa": df, "clusters": clusters, "dimensions": dim_table}


def _cluster_table(keys, curves, win_times, method, *, n_permutations, cluster_alpha, alpha, seed):
    """Cluster permutation tests of every layer's curves against zero, of the curve averaged over every model and
    layer against zero (:data:`MEAN_CURVE`), and between models with the same layer name.

    Parameters
    ----------
    keys : list of (model, layer)
    curves : float (n_subjects, n_keys, n_windows)
    win_times : float (n_windows,) seconds

    Returns
    -------
    DataFrame with :data:`CLUSTER_COLUMNS`, one row per observed cluster (``versus`` = "zero" or the other model)
    """
    test_kw = dict(n_permutations=n_permutations, cluster_alpha=cluster_alpha, alpha=alpha, seed=seed)
    tests = [((mname, layer, "zero"), cluster_permutation_test(curves[:, k], **test_kw))
             for k, (mname, layer) in enumerate(keys)]
    tests.append(((*MEAN_CURVE, "zero"), cluster_permutation_test(curves.mean(axis=1), **test_kw)))
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            if keys[a][1] == keys[b][1] and keys[a][0] != keys[b][0]:
                tests.append(((keys[a][0], keys[a][1], keys[b][0]),
                              paired_cluster_test(curves[:, a], curves[:, b], **test_kw)))
    rows = []
    for (mname, layer, versus), res in tests:
        for c in res.clusters:
            rows.append(dict(model=mname, layer=layer, versus=versus, method=method,
                             start_time=float(win_times[c.start]), stop_time=float(win_times[c.stop - 1]),
                             start_index=c.start, stop_index=c.stop, sign=c.sign, mass=c.mass,
                             p_value=c.p_value, significant=c.p_value < alpha))
    return pd.DataFrame(rows, columns=CLUSTER_COLUMNS)
