"""Report findings: every verdict comes from its pre-declared test; a planted effect gives ``yes``, a reversed one
``no``, a near tie ``inconclusive``, a design that cannot reach alpha ``not testable``; Holm is applied across ROIs.

Inputs are the stages' tables built by hand (or, for the EEG cluster test and NeuroFusionNet's bootstrap, computed
by the stages' own functions from planted data)."""

import json

import numpy as np
import pandas as pd
import pytest

from brainalign.inference import holm
from brainalign.report import (FINDING_COLUMNS, alignment_table, build_report, dimension_findings, eeg_findings,
                               layer_hierarchy, neurofusion_findings, realnet_encoding, realnet_rsa,
                               synthetic_findings)
from brainalign.report.sources import layer_orders

LAYERS = ["conv1", "conv2", "conv3", "conv4", "fc7"]
EARLY = ["prf-visualrois/V1v", "prf-visualrois/V1d", "prf-visualrois/V2v", "prf-visualrois/V2d"]
LATE = ["floc-faces/FFA-1", "floc-places/PPA", "floc-bodies/EBA", "floc-words/VWFA-1"]


# --------------------------------------------------------------------------------------------- hierarchy

def _roi_layers(early, late, subjects=("subj01", "subj02")):
    rows = []
    for subject in subjects:
        for roi, layer in list(zip(EARLY, early)) + list(zip(LATE, late)):
            rows.append(dict(subject=subject, model="alexnet", roi=roi, layer=layer, mean_r=0.1))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("early, late, expected", [
    (["conv1", "conv1", "conv2", "conv1"], ["fc7", "conv4", "fc7", "fc7"], "yes"),
    (["fc7", "conv4", "fc7", "fc7"], ["conv1", "conv1", "conv2", "conv1"], "no"),
    (["conv3"] * 4, ["conv3"] * 4, "inconclusive"),
    (["conv1", "conv3", "conv2", "fc7"], ["conv2", "conv1", "fc7", "conv3"], "inconclusive"),  # near tie
])
def test_layer_hierarchy_from_cv_chosen_layers(early, late, expected):
    finding = layer_hierarchy(_roi_layers(early, late), {"alexnet": LAYERS})
    assert finding.verdict == expected, finding.result
    assert finding.result.test.startswith("permutation") and "roi_layers" in finding.result.note
    if expected != "inconclusive":
        assert np.isfinite(finding.result.ci_low) and finding.result.p < 0.05


def test_layer_hierarchy_not_testable_with_too_few_rois():
    table = _roi_layers(["conv1"], ["fc7"], subjects=("subj01",))
    assert layer_hierarchy(table, {"alexnet": LAYERS}).verdict == "not testable"
    assert layer_hierarchy(pd.DataFrame(), {}).verdict == "not testable"


def test_layer_order_leaves_out_combined_fits():
    enc = pd.DataFrame(dict(model="alexnet", layer=LAYERS + ["selected", "banded"], roi="x", subject="subj01"))
    assert layer_orders(enc) == {"alexnet": LAYERS}


# --------------------------------------------------------------------------------------------- ReAlnet

BASELINES = ["realnet-subj01-beta0", "realnet-subj01-shuffled", "cornet_s-initial"]


def _encoding_comparisons(effects, n_boot=1000):
    """effects: {(baseline, subject): (effect, ci_low, ci_high, p)}"""
    rows = []
    for (baseline, subject), (e, lo, hi, p) in effects.items():
        rows.append(dict(model="realnet-subj01-aligned", baseline=baseline, subject=subject, roi=WHOLE,
                         split="nsd-shared", n_stimuli=100, n_voxels=900, value_model=0.4 + e, value_baseline=0.4,
                         effect=e, ci_low=lo, ci_high=hi, p=p, n_boot=n_boot, test="t"))
    return pd.DataFrame(rows)


WHOLE = "nsdgeneral/nsdgeneral"


def test_realnet_encoding_verdicts_and_labels():
    table = _encoding_comparisons({
        ("realnet-subj01-beta0", "subj01"): (0.04, 0.02, 0.06, 0.002),      # planted gain -> yes
        ("realnet-subj01-shuffled", "subj01"): (0.003, -0.01, 0.016, 0.62),  # 0.003 margin -> inconclusive
        ("cornet_s-initial", "subj01"): (0.05, 0.03, 0.07, 0.002),
        ("realnet-subj01-beta0", "subj02"): (-0.03, -0.05, -0.01, 0.004),    # reversed -> no
    })
    findings = realnet_encoding(table, ["subj01"], {"cornet_s-initial": "random"})
    verdicts = {f.finding: f.verdict for f in findings}
    assert verdicts == {
        "encoding: ReAlnet(subj01) vs beta=0 control on subj01 (within subject)": "yes",
        "encoding: ReAlnet(subj01) vs shuffled-pairs control on subj01 (within subject)": "inconclusive",
        "encoding: ReAlnet(subj01) vs beta=0 control on subj02 (across subject)": "no",
        "encoding: ReAlnet(subj01) vs initial CORnet-S (random weights: trained vs untrained network) on subj01 "
        "(within subject)": "yes"}
    assert "initial" in findings[-1].finding  # the controls are the headline, the untrained network comes last
    row = findings[0].row()
    assert row["test"].startswith("paired stimulus bootstrap") and row["n"] == "100 test images x 900 voxels"
    assert (row["ci_low"], row["ci_high"]) == (0.02, 0.06)


def test_realnet_encoding_with_too_few_draws_is_not_testable():
    table = _encoding_comparisons({("realnet-subj01-beta0", "subj01"): (0.04, 0.02, 0.06, 2 / 21)}, n_boot=20)
    (finding,) = realnet_encoding(table, ["subj01"], {})
    assert finding.verdict == "not testable" and "20 bootstrap draws" in finding.result.note
    (missing,) = realnet_encoding(pd.DataFrame(), ["subj01"], {})
    assert missing.verdict == "not testable"


def _rsa_comparisons(p_values, effect=0.05, n_boot=1000):
    rows = []
    for baseline in BASELINES:
        for relation, subject in (("within", "subj01"), ("across", "subj02")):
            for roi, p in zip(("V1", "FFA", "PPA"), p_values):
                for who in (subject, "mean"):
                    rows.append(dict(analysis="rsa", model="realnet-subj01-aligned", baseline=baseline, roi=roi,
                                     relation=relation, subject=who, layer_model="IT", layer_baseline="V4",
                                     value_model=0.3, value_baseline=0.3 - effect, effect=effect,
                                     ci_low=effect - 0.02, ci_high=effect + 0.02, p=p, n_stimuli=100,
                                     n_subjects=1, n_boot=n_boot, test="paired bootstrap over stimuli"))
    rows.append(dict(rows[0], analysis="dimensions", roi="object dimensions", relation="", subject="",
                     layer_model="mean of V1, IT", layer_baseline="mean of V1, IT", effect=0.003, ci_low=-0.02,
                     ci_high=0.026, p=0.7))
    return pd.DataFrame(rows)


def test_realnet_rsa_holm_across_rois():
    raw = [0.004, 0.02, 0.3]
    findings = realnet_rsa(_rsa_comparisons(raw), ["subj01"], {"cornet_s-initial": "random"})
    assert len(findings) == 3 * 2 * 3  # baselines x relations x ROIs
    within = [f for f in findings if "beta=0" in f.finding and "(within subject)" in f.finding]
    assert [f.result.p_uncorrected for f in within] == raw
    np.testing.assert_allclose([f.result.p for f in within], holm(raw))  # 0.012, 0.04, 0.3
    assert [f.verdict for f in within] == ["yes", "yes", "inconclusive"]
    assert all("Holm over 3 ROIs" in f.result.note for f in within)
    # Holm makes the difference: raw 0.03 and 0.04 each pass alone, not as a family of three
    strict = realnet_rsa(_rsa_comparisons([0.01, 0.03, 0.04]), ["subj01"], {})
    assert [f.verdict for f in strict if "beta=0" in f.finding and "within" in f.finding] == \
        ["yes", "inconclusive", "inconclusive"]


def test_realnet_rsa_draws_that_cannot_survive_holm_are_not_testable():
    findings = realnet_rsa(_rsa_comparisons([0.004, 0.004, 0.004], n_boot=100), ["subj01"], {})
    assert {f.verdict for f in findings} == {"not testable"}  # 2/101 x 3 ROIs >= 0.05
    assert "Holm over 3" in findings[0].result.note


def test_dimension_finding_near_tie_is_inconclusive():
    table = _rsa_comparisons([0.01, 0.01, 0.01])
    findings = dimension_findings(table, ["subj01"], {})
    assert len(findings) == 1 and findings[0].verdict == "inconclusive"  # effect 0.003, CI covers 0, p 0.7
    assert findings[0].row()["effect"] == pytest.approx(0.003)
    assert dimension_findings(pd.DataFrame(), ["subj01"], {})[0].verdict == "not testable"


# --------------------------------------------------------------------------------------------- NeuroFusionNet

def _neurofusion_run(results, trained_gain, control_gain=None, seed=0):
    """Held-out predictions: measured = signal + noise; trained/initial/control predictions with planted quality."""
    rng = np.random.default_rng(seed)
    n, v = 80, 120
    signal = rng.normal(size=(n, v))
    measured = signal + rng.normal(size=(n, v))
    pred = lambda gain: gain * signal + rng.normal(size=(n, v))  # noqa: E731
    run = results / "training" / "neurofusion"
    run.mkdir(parents=True)
    stim = np.array([str(i) for i in range(n)])
    np.savez(run / "heldout_predictions.npz", stimulus=stim, measured=measured, trained=pred(1.0 + trained_gain),
             initial=pred(1.0), voxel_index=np.arange(v))
    if control_gain is not None:
        control = results / "training" / "neurofusion-shuffled"
        control.mkdir(parents=True)
        np.savez(control / "heldout_predictions.npz", stimulus=stim, measured=measured,
                 trained=pred(1.0 + control_gain), initial=pred(1.0), voxel_index=np.arange(v))
    score = lambda m: dict(subject="subj02", mean_pcc=m, roi_pcc={"prf-visualrois": m, "floc-faces": m / 2},  # noqa
                           n_voxels=v, n_test=n)
    (run / "summary.json").write_text(json.dumps(dict(subjects=["subj01"], initial_weights="random",
                                                      heldout=score(0.3), heldout_initial=score(0.2))))


def test_neurofusion_trained_vs_initial_and_control(tmp_path):
    _neurofusion_run(tmp_path, trained_gain=1.0, control_gain=1.0)
    initial, control = neurofusion_findings(tmp_path, n_boot=500)
    assert initial.verdict == "yes" and "random: trained vs untrained network" in initial.finding
    assert control.verdict == "inconclusive" and "shuffled-pairs control" in control.finding  # same quality
    assert control.result.ci_low < 0 < control.result.ci_high
    table = build_report(tmp_path, tmp_path / "report")
    assert "yes" in set(table.loc[table["finding"] == initial.finding, "verdict"])
    assert (tmp_path / "report" / "figures" / "neurofusion_heldout.png").stat().st_size > 1000


def test_neurofusion_reversed_is_no(tmp_path):
    _neurofusion_run(tmp_path, trained_gain=-0.8)
    (finding,) = neurofusion_findings(tmp_path, n_boot=500)
    assert finding.verdict == "no"


def test_neurofusion_not_testable_without_training(tmp_path):
    (finding,) = neurofusion_findings(tmp_path)
    assert finding.verdict == "not testable"


# --------------------------------------------------------------------------------------------- synthetic

def _evaluation(results, split, decoding=None, claim1=None):
    folder = results / "synthetic" / "bold5000" / "CSI1" / split / "evaluation"
    folder.mkdir(parents=True)
    (decoding if decoding is not None else pd.DataFrame()).to_parquet(folder / "decoding.parquet")
    (claim1 if claim1 is not None else pd.DataFrame()).to_parquet(folder / "claim1_tests.parquet")
    pd.DataFrame().to_parquet(folder / "claim1_images.parquet")


def _decoding(accuracy, classes="places,words", p=0.001, n=10):
    rows = [dict(roi="all", train="synthetic", n_per_class=n, balanced_accuracy=accuracy, chance=0.5, p_value=p,
                 p_two_sided=p, ci_low=accuracy - 0.05, ci_high=accuracy + 0.05, classes=classes, n_draws=5,
                 declared=True, n_test=200),
            dict(roi="all", train="synthetic", n_per_class=100, balanced_accuracy=0.99, chance=0.5, p_value=0.001,
                 p_two_sided=0.001, ci_low=0.9, ci_high=1.0, classes=classes, n_draws=5, declared=False,
                 n_test=200)]
    return pd.DataFrame(rows)


def test_claim1_uses_the_wilcoxon_test_and_claim2_the_declared_size(tmp_path):
    claim1 = pd.DataFrame([dict(roi="all", level="image", n=60, mean_a=0.45, mean_b=0.44, mean_diff=0.003,
                                diff_ci_low=-0.01, diff_ci_high=0.016, wilcoxon_stat=800.0, wilcoxon_p=0.41)])
    _evaluation(tmp_path, "repeated", _decoding(0.52, p=0.4), claim1)
    c1, c2 = synthetic_findings(tmp_path)
    assert c1.verdict == "inconclusive" and c1.result.test.startswith("Wilcoxon") and c1.result.p == 0.41
    # the declared size (10, p 0.4) decides, not the best of the sweep (100 per class, 0.99)
    assert c2.verdict == "inconclusive" and c2.result.effect == pytest.approx(0.02)
    assert "10 synthetic samples per class (declared)" in c2.observed


def test_claim2_unseen_categories_is_tested_over_held_out_sets(tmp_path):
    pairs = ["faces,places", "faces,words", "bodies,objects", "places,words", "bodies,faces", "objects,words",
             "bodies,places", "faces,objects", "bodies,words", "objects,places"]
    for k, classes in enumerate(pairs):
        _evaluation(tmp_path, f"unseen-categories-fold{k}", _decoding(0.7 + 0.01 * k, classes))
    (finding,) = synthetic_findings(tmp_path)
    assert finding.verdict == "yes" and finding.result.n == "10 held-out category sets"
    assert finding.result.p == pytest.approx(2 / 2 ** 10)
    assert "image-level permutation p < 0.05 in 10 of 10 sets" in finding.result.note


def test_claim2_unseen_categories_mixed_directions_is_inconclusive(tmp_path):
    # one set far below chance with a tiny image-level p (the demo's symptom), the others on both sides
    accuracies = [0.13, 0.75, 0.62, 0.41, 0.55, 0.35, 0.68, 0.47, 0.6, 0.52]
    for k, acc in enumerate(accuracies):
        _evaluation(tmp_path, f"unseen-categories-fold{k}", _decoding(acc))
    (finding,) = synthetic_findings(tmp_path)
    assert finding.verdict == "inconclusive"
    assert finding.result.effect == pytest.approx(np.mean(accuracies) - 0.5)


def test_claim2_with_five_sets_is_not_testable(tmp_path):
    for k in range(5):
        _evaluation(tmp_path, f"unseen-categories-fold{k}", _decoding(0.9))
    (finding,) = synthetic_findings(tmp_path)
    assert finding.verdict == "not testable" and "2/2^5" in finding.result.note


# --------------------------------------------------------------------------------------------- EEG

def _eeg_results(results, n_subjects, post=0.3, pre=0.0, seed=0):
    """rsa_eeg.parquet with planted curves and the RSA stage's own cluster table of them."""
    from brainalign.rsa.pipeline import _cluster_table

    rng = np.random.default_rng(seed)
    times = np.round(np.linspace(-0.2, 0.6, 41), 3)
    bump = lambda c, w: np.exp(-0.5 * ((times - c) / w) ** 2)  # noqa: E731
    keys = [("alexnet", "conv1"), ("alexnet", "fc7")]
    curves = (post * bump(0.2, 0.05) + pre * bump(-0.12, 0.03))[None, None, :] \
        + 0.03 * rng.normal(size=(n_subjects, len(keys), len(times)))
    rows = [dict(model=m, layer=layer, roi="eeg", subject=f"sub-{i + 1:02d}", relation="across", method="spearman",
                 time=t, value=curves[i, k, j], ci_low=np.nan, ci_high=np.nan, nc_low=np.nan, nc_high=np.nan)
            for i in range(n_subjects) for k, (m, layer) in enumerate(keys) for j, t in enumerate(times)]
    folder = results / "rsa" / "eeg"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "rsa_eeg.parquet")
    _cluster_table(keys, curves, times, "spearman", n_permutations=1000, cluster_alpha=0.05, alpha=0.05,
                   seed=0).to_parquet(folder / "rsa_eeg_clusters.parquet")


def test_eeg_two_subjects_not_testable(tmp_path):
    _eeg_results(tmp_path, 2)
    (finding,) = eeg_findings(tmp_path)
    assert finding.verdict == "not testable" and "2/2^2" in finding.result.note


def test_eeg_six_subjects_strong_effect_is_tested(tmp_path):
    _eeg_results(tmp_path, 6)
    (finding,) = eeg_findings(tmp_path)
    assert finding.verdict == "yes", finding.result
    assert finding.result.p == pytest.approx(2 / 64)  # every subject positive: the exact floor of 6 subjects
    assert "peak after onset at 200 ms" in finding.observed


def test_eeg_cluster_before_onset_is_no(tmp_path):
    _eeg_results(tmp_path, 6, pre=0.3)
    (finding,) = eeg_findings(tmp_path)
    assert finding.verdict == "no" and "before stimulus onset" in finding.result.note


# --------------------------------------------------------------------------------------------- document

def test_report_on_empty_results_is_not_testable_with_reasons(tmp_path):
    table = build_report(tmp_path, tmp_path / "report")
    assert list(table.columns) == FINDING_COLUMNS
    assert (table["verdict"] == "not testable").all() and table["note"].str.len().gt(0).all()
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert summary.startswith("# brainalign results")
    assert "| finding | claim | test | effect [95% CI] | p | n | verdict | note | observed |" in summary
    assert list(pd.read_parquet(tmp_path / "report" / "findings.parquet").columns) == FINDING_COLUMNS


def test_summary_shows_test_effect_ci_p_and_verdict(tmp_path):
    for k in range(10):
        _evaluation(tmp_path, f"unseen-categories-fold{k}", _decoding(0.7))
    table = build_report(tmp_path, tmp_path / "report")
    row = table[table["finding"].str.contains("unseen categories")].iloc[0]
    summary = (tmp_path / "report" / "summary.md").read_text()
    line = next(x for x in summary.splitlines() if x.startswith(f"| {row['finding']} |"))
    assert "exact sign-flip test" in line and "0.2000 [" in line and "**yes**" in line and "10 held-out" in line


def _encoding(best_early, best_late):
    rows = []
    for subject in ("subj01", "subj02"):
        for roi, best in (("prf-visualrois/V1v", best_early), ("floc-faces/FFA-1", best_late)):
            for layer in LAYERS:
                rows.append(dict(subject=subject, model="alexnet", roi=roi, layer=layer,
                                 mean_r=0.5 if layer == best else 0.1, mean_score=0.3))
    return pd.DataFrame(rows)


def test_alignment_table_holds_rsa_and_encoding_scores():
    enc = _encoding("conv1", "fc7").assign(mean_nc=0.6)
    rsa = pd.DataFrame([dict(model="alexnet", layer="conv1", roi="floc-faces", subject=s, relation=rel,
                             method="spearman", value=v, ci_low=v - 0.1, ci_high=v + 0.1, nc_low=0.3, nc_high=0.5)
                        for s, rel, v in (("subj01", "within", 0.2), ("subj02", "across", 0.1))])
    table = alignment_table(enc, rsa)
    assert set(table["measure"]) == {"rsa_spearman", "encoding_r", "encoding_score"}
    assert len(table) == len(rsa) + 2 * len(enc)
    r = table[table["measure"] == "encoding_r"]
    assert r["value"].tolist() == enc["mean_r"].tolist() and (r["nc_high"] == 0.6).all()
    # each subject's encoding rows carry the relation the RSA stage gave that subject
    assert dict(zip(r["subject"], r["relation"])) == {"subj01": "within", "subj02": "across"}
    assert table.loc[table["measure"] == "rsa_spearman", "ci_low"].round(6).tolist() == [0.1, 0.0]


def test_alignment_table_empty_without_results(tmp_path):
    build_report(tmp_path, tmp_path / "report")
    assert pd.read_parquet(tmp_path / "report" / "alignment.parquet").empty
