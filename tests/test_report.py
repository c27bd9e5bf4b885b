"""Report findings: each check says 'yes' exactly when the tables show the paper's pattern."""

import json

import pandas as pd
import pytest

from brainalign.report import WHOLE_ROI, alignment_table, build_report, dimension_findings, layer_hierarchy, \
    neurofusion_findings, realnet_encoding

LAYERS = ["conv1", "conv3", "fc7"]


def _encoding(best_early, best_late):
    rows = []
    for subject in ("subj01", "subj02"):
        for roi, best in (("prf-visualrois/V1v", best_early), ("floc-faces/FFA-1", best_late)):
            for layer in LAYERS:
                rows.append(dict(subject=subject, model="alexnet", roi=roi, layer=layer,
                                 mean_r=0.5 if layer == best else 0.1, mean_score=0.3))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("early, late, expected", [("conv1", "fc7", "yes"), ("fc7", "conv1", "no"),
                                                   ("conv3", "conv3", "no")])
def test_layer_hierarchy(early, late, expected):
    assert layer_hierarchy(_encoding(early, late)).holds == expected


def test_layer_hierarchy_ignores_combined_fits():
    """'selected' and 'banded' rows are not layers: a high score there must not count as the best layer."""
    enc = _encoding("conv1", "fc7")
    combined = enc[enc["layer"] == "conv1"].assign(mean_r=0.9)
    enc = pd.concat([enc, combined.assign(layer="banded"), combined.assign(layer="selected")], ignore_index=True)
    assert layer_hierarchy(enc).holds == "yes"


def test_realnet_encoding_within_and_across():
    scores = {"realnet-subj01-aligned": 0.40, "cornet_s-initial": 0.30, "realnet-subj01-beta0": 0.35,
              "realnet-subj01-shuffled": 0.20}
    rows = [dict(subject=s, model=m, roi=WHOLE_ROI, layer="selected", mean_r=v - (0.3 if s == "subj02" and
                 m == "realnet-subj01-aligned" else 0.0))
            for s in ("subj01", "subj02") for m, v in scores.items()]
    findings = realnet_encoding(pd.DataFrame(rows), ["subj01"])
    assert [f.holds for f in findings] == ["yes", "no"]  # within subj01 better; across (subj02) worse
    assert "within" in findings[0].finding and "across" in findings[1].finding


def test_report_on_empty_results_says_not_run(tmp_path):
    table = build_report(tmp_path, tmp_path / "report")
    assert (table["holds"] == "not run").all()
    assert (tmp_path / "report" / "summary.md").read_text().startswith("# brainalign results")


def _dimensions(diff):
    rows = []
    for model in ("cornet_s-initial", "realnet-subj01-aligned"):
        d = diff if model != "cornet_s-initial" else float("nan")
        for layer, dim in (("V1", "faces"), ("IT", "faces"), ("all", "all")):
            rows.append(dict(model=model, layer=layer, dimension=dim, method="spearman", n_stimuli=100, value=0.1,
                             ci_low=0.0, ci_high=0.2, baseline="cornet_s-initial", diff=d, diff_ci_low=d - 0.05,
                             diff_ci_high=d + 0.05))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diff, expected", [(0.08, "yes"), (-0.02, "no"), (float("nan"), "not run")])
def test_dimension_finding(diff, expected):
    (finding,) = dimension_findings(_dimensions(diff), ["subj01"])
    assert finding.holds == expected
    if expected != "not run":
        assert f"{diff:+.3f}" in finding.observed and "faces" in finding.observed


def test_dimension_finding_not_run_without_table():
    (finding,) = dimension_findings(pd.DataFrame(), ["subj01"])
    assert finding.holds == "not run" and "not run" in finding.observed


def _neurofusion_run(results, after, before):
    run = results / "training" / "neurofusion"
    run.mkdir(parents=True)
    rois = {"prf-visualrois": 0.2, "floc-faces": 0.1}
    score = lambda m: dict(subject="subj02", mean_pcc=m, roi_pcc={k: v * m for k, v in rois.items()}, n_voxels=50,
                           n_test=100)
    (run / "summary.json").write_text(json.dumps(dict(subjects=["subj01"], heldout=score(after),
                                                      heldout_initial=score(before))))


@pytest.mark.parametrize("after, before, expected", [(0.2, 0.1, "yes"), (0.1, 0.2, "no")])
def test_neurofusion_heldout_finding_and_figure(tmp_path, after, before, expected):
    _neurofusion_run(tmp_path, after, before)
    (finding,) = neurofusion_findings(tmp_path)
    assert finding.holds == expected
    assert f"{after:.3f} after vs {before:.3f} initial" in finding.observed and "subj02" in finding.observed
    table = build_report(tmp_path, tmp_path / "report")
    assert expected in set(table.loc[table["finding"] == finding.finding, "holds"])
    assert (tmp_path / "report" / "figures" / "neurofusion_heldout.png").stat().st_size > 1000


def test_neurofusion_finding_not_run_without_training(tmp_path):
    (finding,) = neurofusion_findings(tmp_path)
    assert finding.holds == "not run"


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
