"""THINGS-EEG2 ingestion against a hand-built tree (datasets.md §3)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from brainalign.cli import main as cli_main
from brainalign.errors import InputError
from brainalign.ingest import ingest_things_eeg2
from brainalign.store import open_eeg_store
from fixtures_layouts import eeg_value, write_things_eeg2_tree

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")


@pytest.fixture
def tree(tmp_path):
    return write_things_eeg2_tree(tmp_path / "eeg", subject=1)


def test_store_contents(tree, tmp_path):
    out = tmp_path / "e.zarr"
    assert cli_main(["ingest", "things-eeg2", "--root", str(tree.root), "--subject", "sub-01", "--out", str(out)]) == 0
    s = open_eeg_store(out)
    n_tr, r_tr = tree.data["training"].shape[:2]
    n_te, r_te = tree.data["test"].shape[:2]
    assert s.eeg.dtype == np.float32
    assert s.eeg.shape == (n_tr * r_tr + n_te * r_te, 3, 5)
    assert s.ch_names == tree.ch_names
    np.testing.assert_allclose(s.times, tree.times)
    t = s.trials
    eeg = s.eeg[:]
    for row in (0, 5, n_tr * r_tr - 1, n_tr * r_tr, len(t) - 1):
        r = t.iloc[row]
        sign = 1.0 if r["part"] == "training" else -1.0
        c, rep = int(r["condition"]), int(r["repetition"])
        ch, tt = np.meshgrid(np.arange(3), np.arange(5), indexing="ij")
        np.testing.assert_array_equal(eeg[row], eeg_value(sign, c, rep, ch, tt))
        files = tree.train_files if r["part"] == "training" else tree.test_files
        assert r["stimulus"] == files[c]
        assert bool(r["shared"]) == (r["part"] == "test")
    assert t["condition"].tolist()[: r_tr * 2] == [0] * r_tr + [1] * r_tr
    assert t["repetition"].tolist()[:r_tr] == list(range(r_tr))
    assert t["trial"].tolist() == list(range(1, len(t) + 1))
    ids, means, n = s.mean_by_stimulus(stimuli=[tree.test_files[1]])
    assert n.tolist() == [r_te]
    np.testing.assert_allclose(means[0], tree.data["test"][1].mean(axis=0), rtol=1e-6)


def test_test_part_only(tree, tmp_path):
    s = open_eeg_store(ingest_things_eeg2(tree.root, 1, tmp_path / "t.zarr", parts=["test"]))
    assert s.trials["shared"].all() and len(s.trials) == 10


def _expect_error(tree, out, match, **kw):
    with pytest.raises(InputError, match=match):
        ingest_things_eeg2(tree.root, tree.subject, out, **kw)
    assert not out.exists()


def test_bad_inputs(tree, tmp_path):
    out = tmp_path / "o.zarr"
    with pytest.raises(InputError, match="subject folder not found"):
        ingest_things_eeg2(tree.root, 2, out)
    meta_path = tree.root / "image_set" / "image_metadata.npy"
    meta = np.load(meta_path, allow_pickle=True).item()
    meta["test_img_files"] = meta["test_img_files"][:1]
    np.save(meta_path, meta, allow_pickle=True)
    _expect_error(tree, out, r"preprocessed_eeg_test\.npy: 2 image conditions but image_metadata lists 1")
    p = tree.subj_dir / "preprocessed_eeg_training.npy"
    p.write_bytes(p.read_bytes()[:200])
    _expect_error(tree, out, r"preprocessed_eeg_training\.npy: cannot load")
    _expect_error(tree, out, "--parts", parts=["validation"])
