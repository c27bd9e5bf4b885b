"""Paired model comparisons of RSA results: model minus baseline, each at a layer chosen without the test data.

A model's layer for an ROI and subject is chosen on data the comparison does not score (the subject's
stimuli outside the evaluation set: :func:`choose_layers`); the comparison then takes the difference of the two
models' RDM similarities on the evaluation stimuli, with the **paired stimulus bootstrap**: each draw resamples
the evaluation stimuli (the same draw for both models and every subject, as all subjects saw them) and
recomputes both similarities. Where a relation (within / across the training subject) has several subjects,
the group row also resamples subjects in every draw (two-level bootstrap). See docs/methods.md §6.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inference import bootstrap_p, percentile_ci

#: columns of ``rsa_comparisons.parquet``
COMPARISON_COLUMNS = ["analysis", "model", "baseline", "roi", "relation", "subject", "layer_model", "layer_baseline",
                      "value_model", "value_baseline", "effect", "ci_low", "ci_high", "p", "n_stimuli",
                      "n_subjects", "n_boot", "test"]
#: columns of ``rsa_layers.parquet`` (the recorded layer choices)
LAYER_CHOICE_COLUMNS = ["model", "subject", "roi", "layer", "selection_value", "n_selection_stimuli", "criterion"]
STIMULUS_TEST = "paired bootstrap over stimuli"
SUBJECT_TEST = "paired bootstrap over stimuli and subjects"


def choose_layers(keys, selection_sims, subject: str, rois, n_stimuli: int, criterion: str) -> pd.DataFrame:
    """Each model's layer per ROI: the one whose RDM is most similar to the subject's ROI RDM on the selection
    stimuli.

    Parameters
    ----------
    keys : list of (model, layer), one per row of ``selection_sims``
    selection_sims : array (n_keys, n_rois), similarities on the selection stimuli (not the evaluation ones)
    subject : str
    rois : list of str
    n_stimuli : int, selection stimuli used
    criterion : str, how the choice was made (recorded)

    Returns
    -------
    DataFrame with :data:`LAYER_CHOICE_COLUMNS`, one row per (model, ROI)
    """
    sims = np.asarray(selection_sims, dtype=float)
    rows = []
    for model in dict.fromkeys(m for m, _ in keys):
        ks = [k for k, (m, _) in enumerate(keys) if m == model]
        for j, roi in enumerate(rois):
            vals = sims[ks, j]
            best = ks[int(np.nanargmax(vals))] if np.isfinite(vals).any() else ks[-1]
            rows.append(dict(model=model, subject=subject, roi=roi, layer=keys[best][1],
                             selection_value=float(sims[best, j]), n_selection_stimuli=int(n_stimuli),
                             criterion=criterion))
    return pd.DataFrame(rows, columns=LAYER_CHOICE_COLUMNS)


def _layer_label(layers):
    unique = list(dict.fromkeys(layers))
    return unique[0] if len(unique) == 1 else "per subject: " + ", ".join(layers)


def paired_comparisons(keys, sims, boots, subjects, relations, rois, pairs, choices: pd.DataFrame, n_stimuli: int,
                       level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Model-minus-baseline RDM similarity per ROI, per subject and per relation group, with bootstrap CI and p.

    Parameters
    ----------
    keys : list of (model, layer)
    sims : array (n_keys, n_subjects, n_rois), similarities on the evaluation stimuli
    boots : array (n_boot, n_keys, n_subjects, n_rois) of the same on resampled stimuli (one draw for every key and
        subject), or None (no intervals, no p)
    subjects : list of str; relations : list of str ("within" / "across"), one per subject
    rois : list of str
    pairs : list of (model, baseline)
    choices : DataFrame from :func:`choose_layers` (model, subject, roi -> layer)
    n_stimuli : int, evaluation stimuli
    level : confidence level; seed : seed of the subject resampling of the group rows

    Returns
    -------
    DataFrame with :data:`COMPARISON_COLUMNS` (``analysis = "rsa"``); ``subject = "mean"`` rows are the
    relation groups (mean over their subjects)
    """
    index = {key: k for k, key in enumerate(keys)}
    layer = {(r.model, r.subject, r.roi): r.layer for r in choices.itertuples()}
    sims = np.asarray(sims, dtype=float)
    n_boot = 0 if boots is None else int(boots.shape[0])
    rng = np.random.default_rng(seed)
    rows = []
    for model, baseline in pairs:
        for j, roi in enumerate(rois):
            per_subject = []
            for i, subject in enumerate(subjects):
                la, lb = layer[model, subject, roi], layer[baseline, subject, roi]
                ka, kb = index[model, la], index[baseline, lb]
                d = sims[ka, i, j] - sims[kb, i, j]
                draws = boots[:, ka, i, j] - boots[:, kb, i, j] if n_boot else np.empty(0)
                per_subject.append((subject, relations[i], la, lb, sims[ka, i, j], sims[kb, i, j], d, draws))
                rows.append(_row(model, baseline, roi, relations[i], subject, la, lb, sims[ka, i, j], sims[kb, i, j],
                                 d, draws, n_stimuli, 1, n_boot, level, STIMULUS_TEST))
            for relation in dict.fromkeys(relations):
                group = [g for g in per_subject if g[1] == relation]
                d = np.array([g[6] for g in group])
                draws = np.empty(0)
                if n_boot:
                    stacked = np.stack([g[7] for g in group], axis=1)  # (B, S_rel)
                    picks = rng.integers(0, len(group), size=(n_boot, len(group)))
                    draws = np.take_along_axis(stacked, picks, axis=1).mean(axis=1)
                rows.append(_row(model, baseline, roi, relation, "mean", _layer_label([g[2] for g in group]),
                                 _layer_label([g[3] for g in group]), np.mean([g[4] for g in group]),
                                 np.mean([g[5] for g in group]), float(d.mean()), draws, n_stimuli, len(group),
                                 n_boot, level, SUBJECT_TEST if len(group) > 1 else STIMULUS_TEST))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _row(model, baseline, roi, relation, subject, la, lb, va, vb, effect, draws, n_stimuli, n_subjects, n_boot, level,
         test):
    lo, hi = percentile_ci(draws, level) if len(draws) else (np.nan, np.nan)
    return dict(analysis="rsa", model=model, baseline=baseline, roi=roi, relation=relation, subject=subject,
                layer_model=la, layer_baseline=lb, value_model=float(va), value_baseline=float(vb),
                effect=float(effect), ci_low=lo, ci_high=hi, p=bootstrap_p(draws) if len(draws) else np.nan,
                n_stimuli=int(n_stimuli), n_subjects=int(n_subjects), n_boot=int(n_boot), test=test)
