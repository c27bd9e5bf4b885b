"""Stores of the simulated trees against the simulator's planted ground truth (docs/simulator.md)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from brainalign.ingest import ingest_bold5000, ingest_nsd, ingest_things_eeg2
from brainalign.ncsnr import ncsnr_from_betas
from brainalign.store import open_eeg_store, open_voxel_store

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")
ATLASES = ("nsdgeneral", "prf-visualrois", "floc-faces", "floc-bodies", "floc-places", "floc-words", "streams")


def _columns(store, ijk):
    """Store column of every ground-truth voxel (-1 if not stored)."""
    index = {tuple(v): m for m, v in enumerate(store.voxel_ijk.tolist())}
    return np.array([index.get(tuple(v), -1) for v in np.asarray(ijk).tolist()])


@pytest.fixture(scope="module")
def nsd(simulated_root, tmp_path_factory):
    gt = np.load(simulated_root / "ground_truth" / "nsd_subj01.npz")
    out = tmp_path_factory.mktemp("sim_nsd") / "subj01.zarr"
    ingest_nsd(simulated_root / "nsd", 1, out, mask="brainmask", zscore=False, input_format="hdf5")
    return open_voxel_store(out), gt


def test_nsd_trials_rois_values(nsd):
    s, gt = nsd
    n = len(s.trials)
    np.testing.assert_array_equal(s.trials["stimulus"].to_numpy(), gt["trial_image_ids"][:n])
    assert s.grid_shape == tuple(int(v) for v in gt["grid_shape"])
    np.testing.assert_allclose(s.affine, gt["affine"])
    cols = _columns(s, gt["voxel_ijk"])
    assert (cols >= 0).all(), "every ground-truth voxel lies in the brain mask"
    for atlas in ATLASES:
        labels, _ = s.roi_labels(atlas)
        np.testing.assert_array_equal(labels[cols], gt[f"roi_{atlas}"])
    np.testing.assert_allclose(s.ncsnr[cols], gt["ncsnr"], rtol=1e-6)
    # betas = response[image] + session offset + noise(noise_sd), stored as round(300 beta)/300
    row_of = {int(i): r for r, i in enumerate(gt["image_ids"])}
    rows = np.array([row_of[int(i)] for i in s.trials["stimulus"]])
    sess = s.trials["session"].to_numpy() - 1
    betas = s.betas[:, :][:, cols]
    resid = betas - gt["response"][rows] - gt["session_offset"][sess]
    noise = gt["noise_sd"]
    assert np.all(np.abs(resid.mean(axis=0)) < 5 * noise / np.sqrt(n) + 0.01)
    np.testing.assert_allclose(resid.std(axis=0), noise, rtol=0.2)


def test_nsd_ncsnr_recipe_recovers_planted(nsd, simulated_root, tmp_path):
    s, gt = nsd
    cols = _columns(s, gt["voxel_ijk"])
    est = ncsnr_from_betas(s.betas[:, :][:, cols], s.trials["stimulus"], sessions=s.trials["session"])
    signal = gt["ncsnr"] > 0
    assert np.corrcoef(est[signal], gt["ncsnr"][signal])[0, 1] > 0.85
    # nii.gz route gives the same store
    z = open_voxel_store(ingest_nsd(simulated_root / "nsd", 1, tmp_path / "n.zarr", mask="brainmask", zscore=False,
                                    input_format="nii.gz", atlases=["streams"]))
    np.testing.assert_array_equal(z.betas[:, :], s.betas[:, :])


def test_bold5000_trials_rois_values(simulated_root, tmp_path):
    gt = np.load(simulated_root / "ground_truth" / "bold5000_CSI2.npz")
    s = open_voxel_store(ingest_bold5000(simulated_root / "bold5000", "CSI2", tmp_path / "b.zarr", mask="brainmask",
                                         zscore=False))
    assert s.trials["stimulus"].tolist() == [str(x) for x in gt["trial_image_names"]]
    np.testing.assert_array_equal(s.trials["session"].to_numpy(), gt["trial_session"])
    cols = _columns(s, gt["voxel_ijk"])
    assert (cols >= 0).all()
    for roi in (f"{h}{r}" for h in ("LH", "RH") for r in ("EarlyVis", "LOC", "OPA", "PPA", "RSC")):
        np.testing.assert_array_equal(s.roi_mask(roi)[cols], gt[f"mask_{roi}"])
    row_of = {str(x): r for r, x in enumerate(gt["image_names"])}
    rows = np.array([row_of[x] for x in s.trials["stimulus"]])
    resid = s.betas[:, :][:, cols] - gt["response"][rows] - gt["session_offset"][s.trials["session"].to_numpy() - 1]
    np.testing.assert_allclose(resid.std(axis=0), gt["noise_sd"], rtol=0.25)
    # repeated images: shared flag and 0-based repetitions
    rep = s.trials[s.trials["shared"]]
    assert len(rep) and rep.groupby("stimulus")["repetition"].max().eq(3).all()
    # default voxel selection is the union of the ten masks
    u = open_voxel_store(ingest_bold5000(simulated_root / "bold5000", 2, tmp_path / "u.zarr", sessions="1"))
    assert u.n_voxels == int(np.any([u.roi_mask(r) for r in u.roi_names()], axis=0).sum())


def test_things_eeg2_values(simulated_root, tmp_path):
    gt = np.load(simulated_root / "ground_truth" / "things_eeg2_sub-01.npz")
    s = open_eeg_store(ingest_things_eeg2(simulated_root / "things_eeg2", 1, tmp_path / "e.zarr"))
    assert s.ch_names == [str(c) for c in gt["ch_names"]]
    np.testing.assert_allclose(s.times, gt["times"], atol=1e-9)
    test = s.trials[s.trials["part"] == "test"]
    order = test.drop_duplicates("condition").sort_values("condition")["stimulus"].tolist()
    ids, means, n = s.mean_by_stimulus(stimuli=order)
    erp = gt["erp_test"]
    # trial = ERP + unit-variance noise: the mean over n repetitions deviates by about 1/sqrt(n)
    resid = means - erp
    assert abs(resid.mean()) < 0.02
    np.testing.assert_allclose(resid.std(), 1 / np.sqrt(n[0]), rtol=0.2)
    post = s.times >= 0.05
    right = np.corrcoef(means[..., post].ravel(), erp[..., post].ravel())[0, 1]
    wrong = np.corrcoef(means[..., post].ravel(), np.roll(erp, 1, axis=0)[..., post].ravel())[0, 1]
    assert right > 0.6 and right > wrong + 0.3
