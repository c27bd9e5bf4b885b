"""Acceptance (issue #18): a lab's first real-data run, from the README alone, recovers what its data hold.

Small NSD, BOLD5000 and THINGS-EEG2 copies in their released layouts are written by this suite's own writers
(``fixtures_layouts``, from docs/datasets.md; a planted 2-D image latent drives signal voxels and the EEG after
onset), with a folder of unseen images and a category table as CSV. ``real_data_run`` then runs the command
block of the README's real-data section (``init-config``, ``check-config``, dry run, run) with
``simulate.enabled: false`` to the report. Each test compares one stage's outputs with what was planted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_layouts import PLANTED_CATEGORIES

from brainalign.layout import ResultsLayout, category_fold_split
from brainalign.store import open_eeg_store, open_voxel_store

pytestmark = pytest.mark.slow

TRIAL_COLUMNS = ["session", "trial", "stimulus", "repetition", "shared"]


@pytest.fixture(scope="module")
def layout(real_data_run):
    return ResultsLayout(str(real_data_run.results))


def test_config_written_from_the_roots(real_data_run):
    """init-config found every subject written and the formats present, and the run used that config."""
    config = real_data_run.config
    assert config["simulate"]["enabled"] is False
    assert config["datasets"]["nsd"]["subjects"] == real_data_run.nsd.subjects
    assert config["datasets"]["nsd"]["input_format"] == "nii.gz"  # both formats written; nii.gz preferred
    assert config["datasets"]["bold5000"]["subjects"] == [real_data_run.bold5000.subject]
    assert config["datasets"]["things_eeg2"]["subjects"] == real_data_run.things.subjects
    assert config["synthetic"]["categories"].endswith(".csv")
    init = real_data_run.outputs[0].stdout
    assert "ROI atlases for every subject: prf-visualrois" in init and "16 repeated" in init


def test_trial_tables_are_the_planted_designs(real_data_run, layout):
    for p in real_data_run.nsd.subjects:
        store = open_voxel_store(layout.store("nsd", f"subj{p:02d}"))
        expected = real_data_run.nsd.per_subject[p].trials
        pd.testing.assert_frame_equal(store.trials[TRIAL_COLUMNS].reset_index(drop=True), expected,
                                      check_dtype=False)
        planted = real_data_run.nsd.per_subject[p].nsdgeneral
        assert {tuple(v) for v in store.voxel_ijk} == {tuple(v) for v in np.argwhere(planted)}
    b5k = real_data_run.bold5000
    store = open_voxel_store(layout.store("bold5000", b5k.sid))
    pd.testing.assert_frame_equal(store.trials[TRIAL_COLUMNS].reset_index(drop=True), b5k.trials, check_dtype=False)
    things = real_data_run.things
    for p in things.subjects:
        trials = open_eeg_store(layout.store("things_eeg2", f"sub-{p:02d}")).trials
        expected = ([(f, r, False) for f in things.train_files for r in range(things.train_reps)]
                    + [(f, r, True) for f in things.test_files for r in range(things.test_reps)])
        assert list(zip(trials["stimulus"], trials["repetition"], trials["shared"])) == expected


def _voxel_r(layout, dataset, subject, split, model="alexnet"):
    """Test r of each voxel's selected layer, with the voxel's grid index."""
    encoder = layout.encoder(dataset, subject, model, split)
    voxels = pd.read_parquet(f"{encoder}/voxels.parquet")
    selected = voxels[voxels["layer"] == "selected"]
    ijk = open_voxel_store(layout.store(dataset, subject)).voxel_ijk[selected["voxel"].to_numpy()]
    return selected["r"].to_numpy(), ijk


def test_encoding_recovers_the_signal_voxels(real_data_run, layout):
    for p in real_data_run.nsd.subjects:
        planted = real_data_run.nsd.per_subject[p]
        r, ijk = _voxel_r(layout, "nsd", f"subj{p:02d}", "nsd-shared")
        signal = planted.signal[tuple(ijk.T)]
        assert signal.sum() > 50 and (~signal).sum() > 50
        assert np.median(r[signal]) > 0.5, np.median(r[signal])
        assert abs(np.median(r[~signal])) < 0.15, np.median(r[~signal])
    b5k = real_data_run.bold5000
    r, ijk = _voxel_r(layout, "bold5000", b5k.sid, "repeated")
    signal = b5k.signal[tuple(ijk.T)]
    assert np.median(r[signal]) > 0.4 and abs(np.median(r[~signal])) < 0.2, (np.median(r[signal]),
                                                                              np.median(r[~signal]))


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def test_category_table_from_csv_reaches_both_synthetic_jobs(real_data_run, layout):
    table = pd.read_parquet(layout.category_table())
    written = pd.read_csv(real_data_run.table, dtype=str)
    assert dict(zip(table["stimulus"], table["category"])) == dict(zip(written["stimulus"], written["category"]))
    b5k = real_data_run.bold5000
    splits = {"repeated": {b5k.categories[name] for name in b5k.repeated}}
    for fold in range(real_data_run.config["synthetic"]["category_folds"]):
        split = category_fold_split(fold)
        held_out = _json(Path(layout.encoder("bold5000", b5k.sid, "alexnet", split)) / "summary.json")[
            "split_info"]["test_categories"]
        assert len(held_out) == 2 and set(held_out) <= set(PLANTED_CATEGORIES)
        splits[split] = set(held_out)
    # decoding ran on the categories of the held-out real images, which the unseen images share (their ids:
    # paths relative to the unseen-image folder, as the table lists them)
    for split, classes in splits.items():
        summary = _json(Path(layout.synthetic_evaluation("bold5000", b5k.sid, split)) / "summary.json")
        assert summary["decoding_classes"] == sorted(classes), split
    decoding = pd.read_parquet(layout.synthetic_evaluation_table("bold5000", b5k.sid, "repeated", "decoding"))
    synthetic = decoding[(decoding["roi"] == "all") & (decoding["train"] == "synthetic")]
    assert len(synthetic) and (synthetic["balanced_accuracy"] > 0.6).all(), synthetic


def test_eeg_rsa_effect_in_the_planted_window_only(real_data_run, layout):
    things = real_data_run.things
    clusters = pd.read_parquet(layout.rsa_table("eeg", "rsa_eeg_clusters"))
    clusters = clusters[(clusters["model"] == "alexnet") & (clusters["versus"] == "zero") & clusters["significant"]]
    assert len(clusters), "no significant cluster"
    assert (clusters["start_time"] >= things.onset).all(), clusters  # nothing before the response starts
    assert ((clusters["start_time"] <= things.peak) & (clusters["stop_time"] >= things.peak)).any(), clusters
    curves = pd.read_parquet(layout.rsa_table("eeg", "rsa_eeg"))
    mean = curves[(curves["model"] == "alexnet") & (curves["subject"] == "mean")]
    by_time = mean.groupby("time")["value"].mean()
    assert things.onset <= by_time.idxmax() <= things.peak + 3 * things.width
    assert by_time[by_time.index < 0].abs().max() < 0.5 * by_time.max()


def test_fmri_rsa_and_report(real_data_run, layout):
    rsa = pd.read_parquet(layout.rsa_table("fmri", "rsa_fmri"))
    alexnet = rsa[(rsa["model"] == "alexnet") & (rsa["roi"] == "nsdgeneral") & (rsa["subject"] != "mean")]
    assert set(alexnet["subject"]) == {f"subj{p:02d}" for p in real_data_run.nsd.subjects}
    assert alexnet.groupby("subject")["value"].max().min() > 0.5, alexnet  # the shared images' latents
    findings = pd.read_parquet(real_data_run.results / "report" / "findings.parquet").set_index("finding")
    verdicts = findings["verdict"]
    planted = [f for f in findings.index if f.startswith(("claim 1", "EEG RSA"))
               or (f.startswith("claim 2") and "repeated split" in f)]
    assert len(planted) == 3 and (verdicts[planted] == "yes").all(), verdicts  # (6 EEG subjects: testable)
    realnet = [f for f in findings.index if f.startswith("encoding: ReAlnet(subj01)")]
    assert realnet and verdicts[realnet].isin(["yes", "no", "inconclusive"]).all()  # trained, encoded and tested
    neurofusion = [f for f in findings.index if f.startswith("NeuroFusionNet")]  # turned off for the quick run
    assert neurofusion and verdicts[neurofusion].eq("not testable").all()
    assert findings.loc[neurofusion, "note"].str.contains("not trained").all()
    assert (real_data_run.results / "report" / "summary.md").is_file()
    assert (real_data_run.results / "manifest.json").is_file()
