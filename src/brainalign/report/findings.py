"""The findings: the three papers' qualitative claims checked on a results folder's tables.

Each finding function returns :class:`Finding` rows (``finding``, ``paper``, ``expected``, ``observed``,
``holds``). A finding whose inputs are absent (a stage not run) is ``not run``, never silently dropped.
The tables come from :mod:`brainalign.report.sources`; the functions here only compute and state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .sources import inputs, neurofusion_summary, synthetic_evaluations

#: ROIs whose best layer should come early / late in the hierarchy (NSD atlas names)
EARLY_ROIS = ("prf-visualrois",)
LATE_ROIS = ("floc-faces", "floc-bodies", "floc-places", "floc-words")
#: the whole-cortex ROI the model comparisons summarise (NSD nsdgeneral atlas, label nsdgeneral)
WHOLE_ROI = "nsdgeneral/nsdgeneral"


@dataclass
class Finding:
    finding: str
    paper: str
    expected: str
    observed: str
    holds: str  # "yes" | "no" | "not run"


def _roi_group(roi: str) -> str | None:
    atlas = roi.split("/")[0]
    if atlas in EARLY_ROIS:
        return "early"
    if atlas in LATE_ROIS:
        return "late"
    return None


def layer_hierarchy(enc: pd.DataFrame, model: str = "alexnet") -> Finding:
    """Early visual ROIs are best predicted by earlier layers than category-selective ROIs."""
    name, paper = f"layer hierarchy ({model})", "Delavari et al. 2025"
    expected = "mean best-layer index of early ROIs (prf-visualrois) < that of category ROIs (floc-*)"
    # rows of combined fits (per-voxel selected layer, banded ridge over all layers) are not layers
    sub = enc[(enc.get("model") == model) & ~enc.get("layer").isin(["selected", "banded"])] if len(enc) else enc
    if not len(sub):
        return Finding(name, paper, expected, "encoding of this model not run", "not run")
    order = {layer: i for i, layer in enumerate(dict.fromkeys(sub["layer"]))}
    best = (sub.sort_values("mean_r", ascending=False).groupby(["subject", "roi"], as_index=False).first())
    best["group"] = best["roi"].map(_roi_group)
    best["index"] = best["layer"].map(order)
    means = best.dropna(subset=["group"]).groupby("group")["index"].mean()
    if not {"early", "late"} <= set(means.index):
        return Finding(name, paper, expected, "ROIs of one group missing", "not run")
    layers = list(order)
    observed = (f"early ROIs: mean best layer {means['early']:.2f} (~{layers[int(round(means['early']))]}), "
                f"category ROIs: {means['late']:.2f} (~{layers[int(round(means['late']))]})")
    return Finding(name, paper, expected, observed, "yes" if means["early"] < means["late"] else "no")


def _model_scores(enc: pd.DataFrame, subject: str, roi: str = WHOLE_ROI) -> pd.Series:
    if not len(enc):  # encoding not run: every comparison reports "models not run"
        return pd.Series(dtype=float)
    rows = enc[(enc["subject"] == subject) & (enc["layer"] == "selected") & (enc["roi"] == roi)]
    return rows.set_index("model")["mean_r"]


def _compare_to_baselines(name, paper, expected, values: pd.Series, subj: str) -> Finding:
    """ReAlnet(subj) against the initial CORnet-S and the controls, given one value per model name."""
    aligned = f"realnet-{subj}-aligned"
    others = [m for m in ("cornet_s-initial", f"realnet-{subj}-beta0", f"realnet-{subj}-shuffled") if m in values.index]
    if aligned not in values.index or not others:
        return Finding(name, paper, expected, "models not run", "not run")
    observed = ", ".join(f"{m}: {values[m]:.3f}" for m in [aligned] + others)
    return Finding(name, paper, expected, observed, "yes" if all(values[aligned] > values[m] for m in others) else "no")


def realnet_encoding(enc: pd.DataFrame, trained_subjects: list[str]) -> list[Finding]:
    """ReAlnet-fMRI's features predict held-out voxels better than the initial CORnet-S and the controls."""
    out = []
    paper = "Lu & Wang 2025 (ReAlnet-fMRI)"
    expected = "mean test r (nsdgeneral, CV-chosen layer) of ReAlnet > CORnet-S initial, beta0, shuffled"
    for subj in trained_subjects:
        for relation, subjects in (("within", [subj]),
                                   ("across", sorted(set(enc.get("subject", [])) - {subj}))):
            for s in subjects:
                name = f"encoding: ReAlnet({subj}) vs baselines on {s} ({relation} subject)"
                out.append(_compare_to_baselines(name, paper, expected, _model_scores(enc, s), subj))
    return out


def realnet_rsa(rsa: pd.DataFrame, trained_subjects: list[str]) -> list[Finding]:
    """ReAlnet-fMRI's RDMs (best layer) correlate more with fMRI RDMs than CORnet-S's and the controls'."""
    out = []
    paper = "Lu & Wang 2025 (ReAlnet-fMRI)"
    if not len(rsa):
        return [Finding("RSA: ReAlnet vs baselines", paper, "", "RSA not run", "not run")]
    for subj in trained_subjects:
        for relation, part in rsa[rsa["subject"] == "mean"].groupby("relation"):
            best = part.groupby(["model", "roi"])["value"].max().unstack("roi")  # best layer per model and ROI
            name = f"RSA: ReAlnet({subj}) vs baselines ({relation} subject, mean over ROIs of best-layer rho)"
            out.append(_compare_to_baselines(name, paper, "ReAlnet > CORnet-S initial, beta0, shuffled",
                                             best.mean(axis=1), subj))
    return out


def dimension_findings(dims: pd.DataFrame, trained_subjects: list[str]) -> list[Finding]:
    """Object dimensions: ReAlnet's layer RDMs reflect the per-image dimensions (categories on the simulator)
    more than the initial CORnet-S's (``rsa/fmri/dimensions.parquet``, rows ``layer = dimension = "all"``)."""
    paper = "Lu & Wang 2025 (ReAlnet-fMRI)"
    expected = ("ReAlnet minus CORnet-S initial: similarity of layer RDMs with the object-dimension RDMs "
                "(mean over layers and dimensions) > 0")
    if not len(dims):
        return [Finding("object dimensions: ReAlnet vs CORnet-S initial", paper, expected,
                        "object-dimension analysis not run", "not run")]
    out = []
    for subj in trained_subjects:
        name = f"object dimensions: ReAlnet({subj}) vs CORnet-S initial"
        model = f"realnet-{subj}-aligned"
        summary = dims[(dims["model"] == model) & (dims["layer"] == "all")]
        if not len(summary) or not np.isfinite(summary["diff"].iloc[0]):
            out.append(Finding(name, paper, expected, f"{model} or its baseline not in the dimension analysis",
                               "not run"))
            continue
        row = summary.iloc[0]
        per_dim = (dims[(dims["model"] == model) & (dims["layer"] != "all")].groupby("dimension", sort=False)["diff"]
                   .mean())
        ci = (f" [CI {row['diff_ci_low']:+.3f}, {row['diff_ci_high']:+.3f}]"
              if np.isfinite(row["diff_ci_low"]) else "")
        observed = (f"difference {row['diff']:+.3f}{ci} vs {row['baseline']} over {int(row['n_stimuli'])} images; "
                    "per dimension (mean over layers): " + ", ".join(f"{d} {v:+.3f}" for d, v in per_dim.items()))
        out.append(Finding(name, paper, expected, observed, "yes" if row["diff"] > 0 else "no"))
    return out


def synthetic_findings(results: Path) -> list[Finding]:
    """Claim 1 (synthetic vs real repetitions) and claim 2 (synthetic-trained decoder on real data)."""
    out = []
    paper = "Delavari et al. 2025"
    for values, tables in synthetic_evaluations(results):
        dataset, subject, split = values["dataset"], values["subject"], values["split"]
        label = f"{dataset} {subject}, {split} split"
        c1 = pd.read_parquet(tables["claim1"]) if tables["claim1"].exists() else None
        if c1 is not None and {"c_syn", "c_real"} <= set(c1.columns) and len(c1) and split == "repeated":
            roi_col = "roi" if "roi" in c1.columns else None
            part = c1[c1[roi_col] == "all"] if roi_col and (c1[roi_col] == "all").any() else c1
            syn, real = part["c_syn"].mean(), part["c_real"].mean()
            out.append(Finding(f"claim 1: synthetic vs real repetitions ({label})", paper,
                               "mean pattern corr(synthetic, real rep) > corr(real rep, other real rep)",
                               f"{syn:.3f} vs {real:.3f} over {part['image'].nunique() if 'image' in part else len(part)} images",
                               "yes" if syn > real else "no"))
        dec_path = tables["decoding"]
        if dec_path.exists():
            dec = pd.read_parquet(dec_path)
            synth = dec[dec["train"] == "synthetic"] if "train" in dec.columns else dec.iloc[:0]
            if "roi" in synth.columns and (synth["roi"] == "all").any():
                synth = synth[synth["roi"] == "all"]
            if not len(synth):
                out.append(Finding(f"claim 2: decoder trained on synthetic fMRI classifies real fMRI ({label})", paper,
                                   "", "no decoding result (too few unseen or held-out images)", "not run"))
            else:
                best = synth.sort_values("balanced_accuracy").iloc[-1]
                target = "unseen categories" if split == "unseen-categories" else "unseen images"
                out.append(Finding(f"claim 2: decoder trained on synthetic fMRI classifies real fMRI ({label})",
                                   paper, f"balanced accuracy on real responses to {target} > chance, p < 0.05",
                                   f"{best['balanced_accuracy']:.3f} (chance {best['chance']:.3f}, p = {best['p_value']:.3g},"
                                   f" {int(best['n_per_class'])} synthetic samples per class)",
                                   "yes" if best["balanced_accuracy"] > best["chance"] and best["p_value"] < 0.05 else "no"))
    if not out:
        out.append(Finding("synthetic fMRI", paper, "", "synthetic-fMRI evaluation not run", "not run"))
    return out


def eeg_findings(results: Path) -> list[Finding]:
    """Time-resolved RSA: the model-EEG curve peaks after stimulus onset and is flat before it."""
    paths = inputs(results)
    path = Path(paths["rsa_eeg"])
    name, paper = "EEG RSA time course", "Lu, Wang & Golomb (ReAlnet, EEG)"
    expected = "mean model-EEG correlation peaks after 0 s; |pre-stimulus mean| small; clusters only after onset"
    if not path.exists():
        return [Finding(name, paper, expected, "EEG RSA not run", "not run")]
    eeg = pd.read_parquet(path)
    mean = eeg[eeg["subject"] == "mean"].groupby("time")["value"].mean()
    peak = float(mean.idxmax())
    pre = float(mean[mean.index < 0].abs().mean())
    post = float(mean[mean.index > 0].max())
    clusters_path = Path(paths["rsa_eeg_clusters"])
    early_clusters = 0
    if clusters_path.exists():
        cl = pd.read_parquet(clusters_path)
        cl = cl[(cl["versus"] == "zero") & cl["significant"]]
        early_clusters = int((cl["stop_time"] <= 0).sum())
    observed = (f"peak at {peak * 1000:.0f} ms (value {post:.3f}); pre-stimulus mean |r| {pre:.3f}; "
                f"significant clusters ending before onset: {early_clusters}")
    holds = peak > 0 and pre < 0.5 * post and early_clusters == 0
    return [Finding(name, paper, expected, observed, "yes" if holds else "no")]


def neurofusion_findings(results: Path) -> list[Finding]:
    """NeuroFusionNet's image network, frozen, predicts a held-out subject's voxels better after training than
    with its initial weights (ridge read-out fitted on that subject's non-shared images, PCC on the shared ones)."""
    name, paper = "NeuroFusionNet: held-out subject's voxels from the image network", "Lang, Fang & Su 2025"
    expected = "mean PCC over the held-out subject's voxels (shared images) after training > with the initial weights"
    summary = neurofusion_summary(results)
    if summary is None:
        return [Finding(name, paper, expected, "NeuroFusionNet not trained, or no held-out subject scored", "not run")]
    after, before = summary["heldout"], summary["heldout_initial"]
    rois = ", ".join(f"{roi} {after['roi_pcc'][roi]:.3f} ({before['roi_pcc'].get(roi, float('nan')):.3f})"
                     for roi in after["roi_pcc"])
    observed = (f"{after['subject']} (trained on {', '.join(summary.get('subjects', []))}): {after['mean_pcc']:.3f} "
                f"after vs {before['mean_pcc']:.3f} initial over {after['n_voxels']} voxels, {after['n_test']} images; "
                f"per ROI after (initial): {rois}")
    return [Finding(name, paper, expected, observed, "yes" if after["mean_pcc"] > before["mean_pcc"] else "no")]


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
