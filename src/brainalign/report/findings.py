"""The findings: the three papers' qualitative claims, each decided by a pre-declared test on a results folder.

Every finding is a :class:`Finding`: the claim, the evidence of its test (:class:`brainalign.inference.TestResult`:
test name, effect with its 95% CI, p after correction, n, verdict ``yes`` / ``no`` / ``inconclusive`` /
``not testable``, note) and the observed values a reader wants. The tests and why each is the right one are in
docs/methods.md §6; the verdict rule is :func:`brainalign.inference.verdict`. No finding selects anything on the
test data: layers come from choices made on training data and recorded by the stages (``roi_layers.parquet``
of the encoders, ``rsa_layers.parquet`` of the RSA stage); the decoder's sample size is fixed in the config.
A finding whose inputs are absent (a stage not run) is ``not testable`` with the reason, never dropped.
The tables come from :mod:`brainalign.report.sources`; the functions here only compute and state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..inference import (ALPHA, TestResult, bootstrap_result, decide, holm_results, paired_voxel_bootstrap,
                         percentile_ci, permutation_p, sign_flip_min_p, sign_flip_result, sign_flip_testable,
                         untestable)
from ..layout import category_fold
from .sources import inputs, neurofusion_predictions, neurofusion_summary, synthetic_evaluations

#: ROIs whose chosen layer should come early / late in the hierarchy (NSD atlas names)
EARLY_ROIS = ("prf-visualrois",)
LATE_ROIS = ("floc-faces", "floc-bodies", "floc-places", "floc-words")
#: the whole-cortex ROI the model comparisons summarise (NSD nsdgeneral atlas, label nsdgeneral)
WHOLE_ROI = "nsdgeneral/nsdgeneral"
#: columns of ``findings.parquet``
FINDING_COLUMNS = ["finding", "paper", "claim", "test", "effect", "ci_low", "ci_high", "p", "p_uncorrected", "n",
                   "verdict", "note", "observed"]
REALNET = "Lu & Wang 2025 (ReAlnet-fMRI)"
DELAVARI = "Delavari et al. 2025"


@dataclass
class Finding:
    """One claim and the evidence of its pre-declared test."""

    finding: str
    paper: str
    claim: str
    result: TestResult
    observed: str = ""

    @property
    def verdict(self) -> str:
        return self.result.verdict

    def row(self) -> dict:
        """The finding as a row of ``findings.parquet`` (:data:`FINDING_COLUMNS`)."""
        r = self.result
        return dict(finding=self.finding, paper=self.paper, claim=self.claim, test=r.test, effect=r.effect,
                    ci_low=r.ci_low, ci_high=r.ci_high, p=r.p, p_uncorrected=r.p_uncorrected, n=r.n,
                    verdict=r.verdict, note=r.note, observed=self.observed)


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    """The findings as one table with :data:`FINDING_COLUMNS`."""
    return pd.DataFrame([f.row() for f in findings], columns=FINDING_COLUMNS)


def _bootstrap_floor(n_boot: int, family: int = 1, alpha: float = ALPHA) -> str:
    """Why a bootstrap test with ``n_boot`` draws cannot reach ``alpha`` after Holm over ``family`` tests ("" if it
    can): its smallest p is ``2 / (B + 1)``."""
    floor = 2.0 / (int(n_boot) + 1)
    if family * floor < alpha:
        return ""
    return (f"{int(n_boot)} bootstrap draws give p >= {floor:.3g}; with Holm over {family} tests it cannot reach "
            f"p < {alpha} (raise the configured bootstrap)")


def _from_table(test: str, row, n: str, note: str = "") -> TestResult:
    """A result from a comparison table row (effect, ci_low, ci_high, p, n_boot), not testable when the number of
    draws cannot reach alpha."""
    floor = _bootstrap_floor(row.n_boot) if int(row.n_boot) > 0 else "no bootstrap draws"
    if floor:
        return untestable(test, floor, n=n, effect=row.effect)
    return decide(test, row.effect, (row.ci_low, row.ci_high), row.p, n, note=note)


# --------------------------------------------------------------------------------------------- baselines

def baseline_label(model: str, trained_subject: str, weights: dict) -> str:
    """How a baseline is named in the findings; the initial CORnet-S says whether it is a random network (then the
    comparison is a trained against an untrained network)."""
    prefix = f"realnet-{trained_subject}-"
    if model.startswith(prefix):
        variant = model[len(prefix):]
        return {"beta0": "beta=0 control", "shuffled": "shuffled-pairs control"}.get(variant, f"{variant} control")
    if model == "cornet_s-initial":
        origin = weights.get(model, "")
        if origin == "random":
            return "initial CORnet-S (random weights: trained vs untrained network)"
        return f"initial CORnet-S ({origin or 'weights not recorded'})"
    return model


def _baseline_order(baselines, trained_subject):
    """Controls first (the headline comparisons), then the initial network."""
    return sorted(baselines, key=lambda b: (not b.startswith(f"realnet-{trained_subject}-"), b))


# --------------------------------------------------------------------------------------------- hierarchy

def _roi_group(roi: str) -> str | None:
    atlas = roi.split("/")[0]
    if atlas in EARLY_ROIS:
        return "early"
    if atlas in LATE_ROIS:
        return "late"
    return None


def layer_hierarchy(roi_layers: pd.DataFrame, layer_order: dict, model: str = "alexnet",
                    n_permutations: int = 10_000, seed: int = 0) -> Finding:
    """Category-selective ROIs get later layers than early visual ROIs, from the layers the encoders chose by
    cross-validation on training images (``roi_layers.parquet``), never from test scores.

    Parameters
    ----------
    roi_layers : DataFrame with subject, model, roi, layer (the CV-chosen layer of each ROI)
    layer_order : dict model -> list of its layers, in network order
    model : the network whose hierarchy is tested

    Test: effect = mean over subjects of (mean layer index of category ROIs - mean of early ROIs); two-sided
    permutation p, shuffling the early/category labels among each subject's ROIs; CI by resampling ROIs within each
    group and subject.
    """
    name = f"layer hierarchy ({model})"
    claim = ("the layer chosen by cross-validation on training images comes later in the network for category ROIs "
             "(floc-*) than for early visual ROIs (prf-visualrois)")
    test = "permutation of early/category ROI labels within subjects (layer index difference)"
    sub = roi_layers[roi_layers["model"] == model] if len(roi_layers) else roi_layers
    if not len(sub) or model not in layer_order:
        return Finding(name, DELAVARI, claim, untestable(test, f"encoding of {model} not run"))
    index = {layer: i for i, layer in enumerate(layer_order[model])}
    sub = sub.assign(group=sub["roi"].map(_roi_group), index=sub["layer"].map(index)).dropna(subset=["group", "index"])
    per_subject = []
    for subject, part in sub.groupby("subject", sort=True):
        groups = part["group"].to_numpy()
        if (groups == "early").any() and (groups == "late").any():
            per_subject.append((subject, part["index"].to_numpy(dtype=float), groups == "late"))
    if not per_subject:
        return Finding(name, DELAVARI, claim, untestable(test, "no subject has both early and category ROIs"))

    observed = float(np.mean([idx[late].mean() - idx[~late].mean() for _, idx, late in per_subject]))
    rng = np.random.default_rng(seed)
    null = np.zeros(n_permutations)
    boots = np.zeros(2000)
    for _, idx, late in per_subject:
        # label permutations within the subject: (N, m) shuffled copies of its late/early labels
        perm = rng.permuted(np.tile(late, (n_permutations, 1)), axis=1)
        null += (perm @ idx) / late.sum() - (~perm @ idx) / (~late).sum()
        # ROIs resampled within each group
        lv, ev = idx[late], idx[~late]
        boots += (lv[rng.integers(0, lv.size, (boots.size, lv.size))].mean(1)
                  - ev[rng.integers(0, ev.size, (boots.size, ev.size))].mean(1))
    null /= len(per_subject)
    boots /= len(per_subject)
    from math import comb

    labelings = float(np.prod([comb(len(late), int(late.sum())) for _, _, late in per_subject]))
    n_early = int(np.mean([(~late).sum() for *_, late in per_subject]))
    n_late = int(np.mean([late.sum() for *_, late in per_subject]))
    n = f"{len(per_subject)} subjects x ~{n_early} early + ~{n_late} category ROIs"
    note = ("layers chosen per ROI by mean CV R² on training images (roi_layers.parquet); ROIs of a subject are "
            "not independent (neighbouring voxels), the test permutes their labels")
    if 2.0 / labelings >= ALPHA:
        result = untestable(test, f"only {labelings:.0f} labelings of the ROIs: p cannot reach {ALPHA}", n=n,
                            effect=observed)
    else:
        result = decide(test, observed, percentile_ci(boots), permutation_p(observed, null), n, note=note)
    layers = layer_order[model]

    def mean_index(late_group):
        vals = np.concatenate([idx[late == late_group] for _, idx, late in per_subject])
        return vals.mean()

    early, late = mean_index(False), mean_index(True)
    observed_text = (f"mean chosen-layer index: early ROIs {early:.2f} (~{layers[int(round(early))]}), "
                     f"category ROIs {late:.2f} (~{layers[int(round(late))]})")
    return Finding(name, DELAVARI, claim, result, observed_text)


# --------------------------------------------------------------------------------------------- ReAlnet

def _relation(subject, trained_subject):
    return "within" if subject == trained_subject else "across"


def realnet_encoding(comparisons: pd.DataFrame, trained_subjects: list[str], weights: dict) -> list[Finding]:
    """ReAlnet-fMRI's features predict held-out voxels better than its controls' and the initial CORnet-S's.

    From ``encoding/nsd/comparisons.parquet`` (``brainalign compare-encoders``): paired stimulus bootstrap of the
    mean over nsdgeneral voxels of the held-out r difference, each voxel through its CV-chosen layer.
    """
    out = []
    claim = "mean held-out r over nsdgeneral voxels (CV-chosen layer per voxel): ReAlnet > baseline"
    test = "paired stimulus bootstrap (mean over voxels of the r difference)"
    for subj in trained_subjects:
        aligned = f"realnet-{subj}-aligned"
        rows = comparisons[comparisons["model"] == aligned] if len(comparisons) else comparisons
        if not len(rows):
            out.append(Finding(f"encoding: ReAlnet({subj}) vs baselines", REALNET, claim,
                               untestable(test, "encoder comparisons not run (brainalign compare-encoders)")))
            continue
        rows = rows.assign(relation=rows["subject"].map(lambda s: _relation(s, subj)))
        for relation in ("within", "across"):
            for row in rows[rows["relation"] == relation].sort_values("subject").itertuples():
                for_b = row.baseline
                label = baseline_label(for_b, subj, weights)
                n = f"{row.n_stimuli} test images x {row.n_voxels} voxels"
                note = ("stimulus bootstrap: test images resampled, every voxel's r recomputed for both models on "
                        "the same draw (voxels are never treated as independent)")
                out.append(Finding(
                    f"encoding: ReAlnet({subj}) vs {label} on {row.subject} ({relation} subject)", REALNET, claim,
                    _from_table(test, row, n, note),
                    f"mean r {row.value_model:.4f} (ReAlnet) vs {row.value_baseline:.4f} ({for_b})"))
    out.sort(key=lambda f: ("initial" in f.finding,))
    return out


def realnet_rsa(comparisons: pd.DataFrame, trained_subjects: list[str], weights: dict) -> list[Finding]:
    """ReAlnet-fMRI's RDMs (at the layer chosen on training images) match the subjects' ROI RDMs better than its
    controls' and the initial CORnet-S's; one finding per ROI, Holm-corrected over the ROIs of each comparison."""
    claim = ("RDM similarity with the ROI's fMRI RDM (each model at its layer chosen on training images): "
             "ReAlnet > baseline")
    out = []
    rows = comparisons[comparisons["analysis"] == "rsa"] if len(comparisons) else comparisons
    for subj in trained_subjects:
        aligned = f"realnet-{subj}-aligned"
        mine = rows[rows["model"] == aligned] if len(rows) else rows
        if not len(mine):
            out.append(Finding(f"RSA: ReAlnet({subj}) vs baselines", REALNET, claim,
                               untestable("paired bootstrap over stimuli", "RSA comparisons not run")))
            continue
        per = mine[mine["subject"] != "mean"]
        # the RSA stage's relation groups are relative to its --trained-on subject: use them when that is this one
        groups = mine[mine["subject"] == "mean"]
        if not ((per["subject"] == subj) & (per["relation"] == "within")).any():
            groups = per.assign(relation=per["subject"].map(lambda s: _relation(s, subj)))
        for baseline in _baseline_order(mine["baseline"].unique(), subj):
            label = baseline_label(baseline, subj, weights)
            for relation in ("within", "across"):
                family = groups[(groups["baseline"] == baseline) & (groups["relation"] == relation)]
                if not len(family):
                    continue
                results, labels = [], []
                for row in family.itertuples():
                    who = row.subject if row.subject != "mean" else f"{row.n_subjects} subject(s)"
                    n = f"{row.n_stimuli} images x {who}"
                    floor = _bootstrap_floor(row.n_boot, len(family))
                    res = (untestable(row.test, floor, n=n, effect=row.effect) if floor else
                           decide(row.test, row.effect, (row.ci_low, row.ci_high), row.p, n))
                    results.append(res)
                    labels.append((row, who))
                for res, (row, who) in zip(holm_results(results, family=f"{len(family)} ROIs"), labels):
                    where = f"{relation} subject" + (f" {row.subject}" if row.subject != "mean" else "")
                    out.append(Finding(
                        f"RSA: ReAlnet({subj}) vs {label}, {row.roi} ({where})", REALNET, claim, res,
                        f"rho {row.value_model:.3f} (ReAlnet, {row.layer_model}) vs {row.value_baseline:.3f} "
                        f"({baseline}, {row.layer_baseline})"))
    return out


def dimension_findings(comparisons: pd.DataFrame, trained_subjects: list[str], weights: dict,
                       dims: pd.DataFrame | None = None) -> list[Finding]:
    """Object dimensions: ReAlnet's layer RDMs reflect the per-image object dimensions (categories on the
    simulator) more than its controls' and the initial CORnet-S's (mean over layers and dimensions, no layer
    chosen; paired stimulus bootstrap)."""
    claim = ("similarity of the layer RDMs with the object-dimension RDMs (mean over shared layers and dimensions): "
             "ReAlnet > baseline")
    test = "paired bootstrap over stimuli"
    rows = comparisons[comparisons["analysis"] == "dimensions"] if len(comparisons) else comparisons
    out = []
    for subj in trained_subjects:
        aligned = f"realnet-{subj}-aligned"
        mine = rows[rows["model"] == aligned] if len(rows) else rows
        if not len(mine):
            out.append(Finding(f"object dimensions: ReAlnet({subj}) vs baselines", REALNET, claim,
                               untestable(test, "object-dimension analysis or its comparisons not run")))
            continue
        for baseline in _baseline_order(mine["baseline"].unique(), subj):
            row = next(mine[mine["baseline"] == baseline].itertuples())
            per_dim = ""
            if dims is not None and len(dims) and {"model", "layer", "dimension", "value"} <= set(dims.columns):
                a = dims[(dims["model"] == aligned) & (dims["layer"] != "all")].groupby("dimension", sort=False)
                b = dims[(dims["model"] == baseline) & (dims["layer"] != "all")].groupby("dimension", sort=False)
                diff = (a["value"].mean() - b["value"].mean()).dropna()
                per_dim = "; per dimension: " + ", ".join(f"{d} {v:+.3f}" for d, v in diff.items())
            out.append(Finding(
                f"object dimensions: ReAlnet({subj}) vs {baseline_label(baseline, subj, weights)}", REALNET, claim,
                _from_table(test, row, f"{row.n_stimuli} images"),
                f"{row.value_model:.3f} (ReAlnet) vs {row.value_baseline:.3f} ({baseline}), {row.layer_model}"
                + per_dim))
    return out


# --------------------------------------------------------------------------------------------- NeuroFusionNet

def neurofusion_findings(results: Path, n_boot: int = 1000, seed: int = 0) -> list[Finding]:
    """NeuroFusionNet's image network, frozen, predicts a held-out subject's voxels better after training than
    with its initial weights and than its shuffled-pairs control (ridge read-out fitted on that subject's
    non-shared images, PCC on the shared ones), by the paired stimulus bootstrap over the held-out images."""
    paper = "Lang, Fang & Su 2025"
    claim = "mean PCC over the held-out subject's voxels (shared images): trained image network > baseline"
    test = "paired stimulus bootstrap (mean over voxels of the PCC difference)"
    trained = neurofusion_predictions(results)
    summary = neurofusion_summary(results) or {}
    if trained is None:
        return [Finding("NeuroFusionNet: held-out subject's voxels", paper, claim,
                        untestable(test, "NeuroFusionNet not trained, or its held-out predictions not saved"))]
    origin = str(summary.get("initial_weights", ""))
    initial_label = ("initial weights (random: trained vs untrained network)" if origin == "random"
                     else f"initial weights ({origin or 'not recorded'})")
    baselines = [(initial_label, trained["initial"])]
    for control, pred in sorted(neurofusion_predictions(results, controls=True).items()):
        same = (np.array_equal(pred["stimulus"], trained["stimulus"])
                and np.allclose(pred["measured"], trained["measured"], equal_nan=True))
        if same:
            baselines.append((f"{control}-pairs control", pred["trained"]))
        else:
            baselines.append((f"{control}-pairs control", None))
    subject = summary.get("heldout", {}).get("subject", "held-out subject")
    out = []
    for label, pred in baselines:
        name = f"NeuroFusionNet: {subject}'s voxels, trained vs {label}"
        if pred is None:
            out.append(Finding(name, paper, claim, untestable(test, "the control was scored on other images")))
            continue
        obs, samples = paired_voxel_bootstrap(trained["measured"], trained["trained"], pred, n_boot, seed)
        n = f"{trained['measured'].shape[0]} shared images x {trained['measured'].shape[1]} voxels"
        res = bootstrap_result(test, obs["effect"], samples, n,
                               note="stimulus bootstrap: the held-out images are resampled, the voxels stay together")
        out.append(Finding(name, paper, claim, res, f"mean PCC {obs['value_a']:.4f} (trained) vs {obs['value_b']:.4f}"))
    return out


# --------------------------------------------------------------------------------------------- synthetic fMRI

def _declared_row(dec: pd.DataFrame):
    """The decoding row of the verdict: synthetic training, all voxels, the declared sample size."""
    if not len(dec) or "train" not in dec.columns:
        return None
    rows = dec[dec["train"] == "synthetic"]
    if "roi" in rows.columns and (rows["roi"] == "all").any():
        rows = rows[rows["roi"] == "all"]
    if "declared" not in rows.columns or not rows["declared"].any():
        return None
    return rows[rows["declared"]].iloc[0]


def synthetic_findings(results: Path) -> list[Finding]:
    """Claim 1 (synthetic vs real repetitions, paired Wilcoxon over images) and claim 2 (a decoder trained on
    synthetic fMRI classifies real fMRI: on unseen images, permutation test over all draws at the declared sample
    size; on unseen categories, exact sign-flip test over the held-out category sets)."""
    out, folds = [], {}
    c2_claim = "balanced accuracy on real responses to {} > chance"
    for values, tables in synthetic_evaluations(results):
        dataset, subject, split = values["dataset"], values["subject"], values["split"]
        fold = category_fold(split)
        if fold is not None or split == "unseen-categories":
            folds.setdefault((dataset, subject), []).append((fold, tables))
            continue
        label = f"{dataset} {subject}, {split} split"
        test1 = "Wilcoxon signed-rank over images (paired, two-sided)"
        claim1 = "mean pattern corr(synthetic, real repetition) > corr(real repetition, other real repetition)"
        t1 = pd.read_parquet(tables["claim1_tests"]) if tables["claim1_tests"].exists() else pd.DataFrame()
        if split == "repeated":
            row = t1[(t1["roi"] == "all") & (t1["level"] == "image")] if len(t1) else t1
            if not len(row) or "diff_ci_low" not in row.columns:
                out.append(Finding(f"claim 1: synthetic vs real repetitions ({label})", DELAVARI, claim1,
                                   untestable(test1, "claim-1 tests missing (rerun the synthetic evaluation)")))
            else:
                row = row.iloc[0]
                res = decide(test1, row["mean_diff"], (row["diff_ci_low"], row["diff_ci_high"]), row["wilcoxon_p"],
                             f"{int(row['n'])} images", note="CI: bootstrap over images")
                out.append(Finding(f"claim 1: synthetic vs real repetitions ({label})", DELAVARI, claim1, res,
                                   f"{row['mean_a']:.3f} (synthetic) vs {row['mean_b']:.3f} (real)"))
        dec = pd.read_parquet(tables["decoding"]) if tables["decoding"].exists() else pd.DataFrame()
        test2 = "permutation test of the mean balanced accuracy over all draws (test labels shuffled)"
        name2 = f"claim 2: decoder trained on synthetic fMRI classifies real fMRI ({label})"
        row = _declared_row(dec)
        if row is None:
            out.append(Finding(name2, DELAVARI, c2_claim.format("unseen images"),
                               untestable(test2, "no decoding result at the declared sample size (too few unseen "
                                                 "images per class, or an evaluation from before declared sizes)")))
            continue
        lo, hi = (row.get("ci_low", np.nan), row.get("ci_high", np.nan))
        res = decide(test2, row["balanced_accuracy"] - row["chance"], (lo - row["chance"], hi - row["chance"]),
                     row["p_two_sided"], f"{int(row['n_test'])} test images, {int(row['n_draws'])} draws",
                     note="effect = balanced accuracy - chance; CI: bootstrap over test images")
        out.append(Finding(name2, DELAVARI, c2_claim.format("unseen images"), res,
                           f"balanced accuracy {row['balanced_accuracy']:.3f} (chance {row['chance']:.3f}) with "
                           f"{int(row['n_per_class'])} synthetic samples per class (declared)"))
    for (dataset, subject), items in sorted(folds.items()):
        out.append(_category_folds_finding(dataset, subject, items, c2_claim.format("unseen categories")))
    if not out:
        out.append(Finding("synthetic fMRI", DELAVARI, "", untestable("", "synthetic-fMRI evaluation not run")))
    return out


def _category_folds_finding(dataset, subject, items, claim) -> Finding:
    """Claim 2 on unseen categories: one balanced accuracy per held-out category set (fold), tested over folds."""
    test = "exact sign-flip test over held-out category sets (balanced accuracy - chance per set)"
    name = f"claim 2: decoder trained on synthetic fMRI classifies real fMRI ({dataset} {subject}, unseen categories)"
    effects, parts, image_level = [], [], []
    for fold, tables in sorted(items, key=lambda t: -1 if t[0] is None else t[0]):
        dec = pd.read_parquet(tables["decoding"]) if tables["decoding"].exists() else pd.DataFrame()
        row = _declared_row(dec)
        if row is None:
            continue
        effects.append(row["balanced_accuracy"] - row["chance"])
        classes = str(row.get("classes", "")).replace(",", "+") or f"fold {fold}"
        parts.append(f"{classes} {row['balanced_accuracy']:.2f}")
        image_level.append(row["p_two_sided"] < ALPHA)
    note = ("the unit is the held-out category set: a decoder learns one direction per set, so the images of a set "
            "are not independent evidence (image-level permutation p < 0.05 in "
            f"{sum(image_level)} of {len(image_level)} sets, in either direction); sets share categories, so they "
            "are not fully independent either")
    res = sign_flip_result(test, effects, "held-out category sets", note=note)
    return Finding(name, DELAVARI, claim, res, "balanced accuracy per held-out set: " + "; ".join(parts))


# --------------------------------------------------------------------------------------------- EEG

def eeg_findings(results: Path, clusters_versus: str = "zero") -> list[Finding]:
    """Time-resolved RSA: the model-EEG correlation (mean over models and layers) has a significant positive
    cluster after stimulus onset and none before it, by the cluster-mass sign-flip test over subjects
    (``rsa_eeg_clusters.parquet``, model ``all models``); ``not testable`` when 2^S < 2/alpha."""
    paths = inputs(results)
    name, paper = "EEG RSA time course", "Lu, Wang & Golomb (ReAlnet, EEG)"
    claim = ("model-EEG correlation (mean over models and layers) > 0 in a cluster after onset; "
             "no significant cluster before onset")
    test = "cluster-mass sign-flip permutation test over subjects (vs 0)"
    path = Path(paths["rsa_eeg"])
    if not path.exists():
        return [Finding(name, paper, claim, untestable(test, "EEG RSA not run"))]
    eeg = pd.read_parquet(path)
    per = eeg[eeg["subject"] != "mean"]
    n_sub = per["subject"].nunique()
    curves = per.groupby(["subject", "time"])["value"].mean().unstack("time")  # (S, T), mean over models/layers
    mean = curves.mean(axis=0)
    post = mean[mean.index > 0]
    peak = float(post.idxmax()) if len(post) else float("nan")
    pre = float(mean[mean.index < 0].abs().mean()) if (mean.index < 0).any() else float("nan")
    n = f"{n_sub} subjects"
    observed = (f"peak after onset at {peak * 1000:.0f} ms (mean r {post.max():.3f}); pre-stimulus mean |r| "
                f"{pre:.3f}" if len(post) else "no time point after onset")
    if not sign_flip_testable(n_sub):
        return [Finding(name, paper, claim, untestable(
            test, f"{n_sub} subjects: an exact sign-flip test cannot reach p < {ALPHA} (smallest p = 2/2^{n_sub} = "
                  f"{sign_flip_min_p(n_sub):.3g}; needs 2^S >= 2/alpha, i.e. >= 6 subjects); 'no cluster before "
                  "onset' is no evidence here", n=n, effect=float(post.max()) if len(post) else np.nan), observed)]
    from ..rsa.options import MEAN_CURVE

    cpath = Path(paths["rsa_eeg_clusters"])
    cl = pd.read_parquet(cpath) if cpath.exists() else pd.DataFrame()
    cl = cl[(cl["model"] == MEAN_CURVE[0]) & (cl["layer"] == MEAN_CURVE[1]) & (cl["versus"] == clusters_versus)] \
        if len(cl) else cl
    if not len(post) or (not len(cl) and not cpath.exists()):
        return [Finding(name, paper, claim, untestable(test, "cluster test of the mean curve missing (rerun RSA)",
                                                       n=n), observed)]
    rng = np.random.default_rng(0)
    at_peak = curves[peak].to_numpy()
    ci = percentile_ci(at_peak[rng.integers(0, n_sub, size=(2000, n_sub))].mean(axis=1))
    after = cl[(cl["start_time"] > 0) & (cl["sign"] > 0)] if len(cl) else cl
    before = cl[(cl["stop_time"] < 0) & cl["significant"]] if len(cl) else cl
    p = float(after["p_value"].min()) if len(after) else 1.0
    observed += f"; significant clusters before onset: {len(before)}; smallest post-onset cluster p {p:.3g}"
    note = "effect: mean curve at its post-onset peak (CI: bootstrap over subjects); p: its best post-onset cluster"
    if len(before):
        res = TestResult(test, float(post.max()), *ci, p=float(before["p_value"].min()), n=n, verdict="no",
                         note="a significant cluster before stimulus onset contradicts the claim")
    else:
        res = decide(test, float(post.max()), ci, p, n, note=note)
    return [Finding(name, paper, claim, res, observed)]


# --------------------------------------------------------------------------------------------- tables

ALIGNMENT_COLUMNS = ["model", "layer", "roi", "subject", "relation", "measure", "value", "ci_low", "ci_high",
                     "nc_low", "nc_high"]


def alignment_table(enc: pd.DataFrame, rsa: pd.DataFrame) -> pd.DataFrame:
    """RSA and encoding-based alignment of every model with every subject, in one tidy table.

    Parameters
    ----------
    enc : DataFrame
        :func:`brainalign.report.sources.encoding_table` (per subject, model, ROI and layer: ``mean_r``, ``mean_score``, ``mean_nc``).
    rsa : DataFrame
        ``rsa/fmri/rsa_fmri.parquet`` (model, layer, roi, subject, relation, method, value, CI, noise ceiling).

    Returns
    -------
    DataFrame with :data:`ALIGNMENT_COLUMNS`. ``measure`` is ``rsa_<comparison>`` (RDM correlation with its
    bootstrap CI and noise ceiling), ``encoding_r`` (mean held-out Pearson r over the ROI's voxels; ``nc_high`` =
    mean noise ceiling, r²-scale) or ``encoding_score`` (mean noise-ceiling-normalised score). ``layer`` is a
    model layer, or ``selected`` for the encoder's CV-chosen layer per voxel. ``relation`` (within/across the
    subject the models were trained on) is the RSA stage's, by subject.
    """
    frames = []
    if len(rsa):
        frames.append(rsa.assign(measure="rsa_" + rsa["method"].astype(str)))
    if len(enc):
        relation = dict(zip(rsa["subject"], rsa["relation"])) if len(rsa) else {}
        base = enc.assign(relation=enc["subject"].map(relation), ci_low=np.nan, ci_high=np.nan, nc_low=np.nan)
        frames.append(base.assign(measure="encoding_r", value=enc["mean_r"], nc_high=enc["mean_nc"]))
        frames.append(base.assign(measure="encoding_score", value=enc["mean_score"], nc_high=np.nan))
    if not frames:
        return pd.DataFrame(columns=ALIGNMENT_COLUMNS)
    return pd.concat([f.reindex(columns=ALIGNMENT_COLUMNS) for f in frames], ignore_index=True)
