"""Voxel / EEG store round trips and reader API (values computed by hand / pandas)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainalign._io import atomic_output
from brainalign.errors import InputError
from brainalign.store import (
    EEGStoreWriter,
    VoxelStoreWriter,
    open_eeg_store,
    open_voxel_store,
    repetition_index,
    write_eeg_store,
    write_voxel_store,
)


def _toy(n_trials=10, n_vox=7, stim_int=True):
    rng = np.random.default_rng(1)
    betas = rng.normal(size=(n_trials, n_vox)).astype(np.float32)
    stim = np.array([3, 1, 3, 2, 1, 3, 0, 2, 5, 1])[:n_trials]
    if not stim_int:
        stim = np.array([f"img{s}.jpg" for s in stim])
    trials = pd.DataFrame({"session": [1] * 5 + [2] * 5, "trial": list(range(1, 6)) * 2, "stimulus": stim,
                           "repetition": repetition_index(stim), "shared": stim == stim[0]})
    grid = (4, 3, 2)
    ijk = np.array([[0, 0, 0], [1, 0, 0], [3, 2, 1], [2, 1, 0], [0, 2, 1], [1, 1, 1], [3, 0, 1]])[:n_vox]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-3, -2, -1]
    return betas, trials, ijk, grid, affine


def test_round_trip_and_rois(tmp_path):
    betas, trials, ijk, grid, affine = _toy()
    labels = np.array([0, 1, 2, 2, 0, 1, 3], dtype=np.int16)
    rois = {"atlasA": (labels, {0: "Unknown", 1: "V1v", 2: "V2d", 3: "hV4"}),
            "LHPPA": np.array([1, 1, 0, 0, 0, 1, 0], bool), "RHPPA": np.array([0, 1, 1, 0, 0, 0, 0], bool)}
    ncsnr = np.linspace(0, 1, 7).astype(np.float32)
    path = write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine, rois=rois, ncsnr=ncsnr,
                             attrs={"dataset": "toy", "subject": "x", "zscored": True}, chunks=(3, 2))
    s = open_voxel_store(path)
    np.testing.assert_array_equal(s.betas[:], betas)
    assert s.betas.chunks == (3, 2)
    np.testing.assert_array_equal(s.voxel_ijk, ijk)
    np.testing.assert_array_equal(s.ncsnr, ncsnr)
    assert s.grid_shape == grid and np.allclose(s.affine, affine)
    assert s.attrs["dataset"] == "toy" and s.attrs["zscored"] is True and s.attrs["synthetic"] is False
    assert s.trials["repetition"].tolist() == [0, 0, 1, 0, 1, 2, 0, 1, 0, 2]
    pd.testing.assert_frame_equal(s.trials, trials.astype({"stimulus": np.int64}), check_dtype=False)
    assert s.roi_names() == ["LHPPA", "RHPPA", "atlasA/V1v", "atlasA/V2d", "atlasA/hV4"]
    np.testing.assert_array_equal(s.roi_mask("atlasA/V2d"), labels == 2)
    np.testing.assert_array_equal(s.roi_mask("atlasA"), labels > 0)
    np.testing.assert_array_equal(s.roi_mask("RHPPA"), rois["RHPPA"])
    with pytest.raises(InputError, match="unknown ROI 'atlasA/V9'"):
        s.roi_mask("atlasA/V9")
    img = s.to_nifti(np.arange(7, dtype=np.float32) + 1)
    vol = np.asarray(img.dataobj)
    assert vol.shape == grid and np.allclose(img.affine, affine)
    for m, (i, j, k) in enumerate(ijk):
        assert vol[i, j, k] == m + 1
    assert (vol > 0).sum() == 7


@pytest.mark.parametrize("stim_int", [True, False])
def test_mean_by_stimulus(tmp_path, stim_int):
    betas, trials, ijk, grid, affine = _toy(stim_int=stim_int)
    s = open_voxel_store(write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine, chunks=(4, 3)))
    ref = pd.DataFrame(betas.astype(np.float64)).groupby(trials["stimulus"].to_numpy()).mean()
    ids, means, n = s.mean_by_stimulus()
    assert list(ids) == list(ref.index)
    np.testing.assert_allclose(means, ref.to_numpy(), rtol=1e-6)
    assert n.tolist() == trials["stimulus"].value_counts().reindex(ref.index).tolist()
    want = list(ref.index[[2, 0]])
    ids, means, n = s.mean_by_stimulus(stimuli=want, voxels=np.array([True, False, True, False, False, False, True]))
    assert list(ids) == want
    np.testing.assert_allclose(means, ref.loc[want].to_numpy()[:, [0, 2, 6]], rtol=1e-6)
    with pytest.raises(InputError, match="not in the store"):
        s.mean_by_stimulus(stimuli=[ref.index[0], "nope" if not stim_int else 999])


def test_streaming_writer_uneven_blocks(tmp_path):
    rng = np.random.default_rng(0)
    betas = rng.normal(size=(23, 5)).astype(np.float32)
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, 24), "stimulus": np.arange(23), "repetition": 0,
                           "shared": False})
    w = VoxelStoreWriter(tmp_path / "w.zarr", 23, 5, chunks=(4, 2))
    for a, b in ((0, 3), (3, 12), (12, 13), (13, 23)):
        w.append(betas[a:b])
    w.finish(trials, np.argwhere(np.ones((5, 1, 1))), (5, 1, 1), np.eye(4))
    np.testing.assert_array_equal(open_voxel_store(tmp_path / "w.zarr").betas[:], betas)


def test_open_errors(tmp_path):
    with pytest.raises(InputError, match="not a store"):
        open_voxel_store(tmp_path / "missing.zarr")
    # a killed write: arrays present but no final attrs/trial table
    betas, trials, ijk, grid, affine = _toy()
    w = VoxelStoreWriter(tmp_path / "partial.zarr", 10, 7)
    w.append(betas)
    with pytest.raises(InputError, match="incomplete"):
        open_voxel_store(tmp_path / "partial.zarr")
    path = write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine)
    with pytest.raises(InputError, match="eeg_store"):
        open_eeg_store(path)
    (path / "trials.parquet").unlink()
    with pytest.raises(InputError, match="trial table missing"):
        open_voxel_store(path)
    with pytest.raises(InputError, match="trial table has 9 rows"):
        write_voxel_store(tmp_path / "t.zarr", betas, trials.iloc[:9], ijk, grid, affine)
    assert not (tmp_path / "t.zarr").exists()


def test_eeg_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    eeg = rng.normal(size=(6, 3, 4)).astype(np.float32)
    stim = ["a.jpg", "a.jpg", "b.jpg", "b.jpg", "c.jpg", "c.jpg"]
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, 7), "stimulus": stim, "repetition": [0, 1] * 3,
                           "shared": False})
    s = open_eeg_store(write_eeg_store(tmp_path / "e.zarr", eeg, trials, ["Pz", "Oz", "O1"], [-0.1, 0.0, 0.1, 0.2]))
    np.testing.assert_array_equal(s.eeg[:], eeg)
    assert s.ch_names == ["Pz", "Oz", "O1"] and np.allclose(s.times, [-0.1, 0, 0.1, 0.2])
    ids, means, n = s.mean_by_stimulus()
    assert list(ids) == ["a.jpg", "b.jpg", "c.jpg"] and n.tolist() == [2, 2, 2]
    np.testing.assert_allclose(means, eeg.reshape(3, 2, 3, 4).mean(axis=1), rtol=1e-6)
    with pytest.raises(InputError, match="voxel_store"):
        open_voxel_store(tmp_path / "e.zarr")


def _fold_reference(values, stim, rank, wanted, n_folds):
    """Per-fold group means by hand: mean of the rows of stimulus s whose repetition rank % n_folds == f."""
    return np.stack([np.stack([values[(stim == s) & (rank % n_folds == f)].astype(np.float64).mean(axis=0)
                               for s in wanted]) for f in range(n_folds)])


@pytest.mark.parametrize("stim_int", [True, False])
def test_mean_by_fold(tmp_path, stim_int):
    betas, trials, ijk, grid, affine = _toy(stim_int=stim_int)
    # stimulus 3's repetitions recorded out of row order: folds follow the `repetition` column, not the rows
    stim = trials["stimulus"].to_numpy()
    three = np.flatnonzero(stim == stim[0])
    trials.loc[three, "repetition"] = [2, 0, 1]
    s = open_voxel_store(write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine, chunks=(3, 2)))
    rank = trials["repetition"].to_numpy()  # here a permutation of 0..n-1 within each stimulus
    wanted = [stim[3], stim[0], stim[1]]  # seen 2, 3, 3 times
    voxels = np.array([True, False, True, False, False, True, True])
    ids, means, counts = s.mean_by_fold(wanted, 2, voxels=voxels)
    assert list(ids) == wanted and means.dtype == np.float32 and means.shape == (2, 3, 4)
    np.testing.assert_allclose(means, _fold_reference(betas[:, voxels], stim, rank, wanted, 2), rtol=1e-6)
    assert counts.tolist() == [[1, 2, 2], [1, 1, 1]]
    # stimulus 3: fold 0 = repetitions 0 and 2 = rows three[1] and three[0]
    np.testing.assert_allclose(means[0, 1], betas[three[:2]][:, voxels].mean(axis=0), rtol=1e-6)
    # one fold = the repetition average
    _, one, _ = s.mean_by_fold(wanted, 1)
    np.testing.assert_allclose(one[0], s.mean_by_stimulus(stimuli=wanted)[1], rtol=1e-6)
    with pytest.raises(InputError, match="fewer than 3 repetitions"):
        s.mean_by_fold(wanted, 3)
    with pytest.raises(InputError, match="not in the store"):
        s.mean_by_fold([stim[0], 999 if stim_int else "nope"], 2)


def test_eeg_mean_by_fold(tmp_path):
    rng = np.random.default_rng(4)
    stim = np.array(["b.jpg", "a.jpg", "b.jpg", "c.jpg", "a.jpg", "b.jpg", "c.jpg", "a.jpg", "b.jpg"])
    eeg = rng.normal(size=(len(stim), 3, 5)).astype(np.float32)
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, len(stim) + 1), "stimulus": stim,
                           "repetition": repetition_index(stim), "shared": False})
    path = tmp_path / "e.zarr"
    with atomic_output(path) as tmp:  # 2 trials per chunk: folds are summed across chunk rows
        w = EEGStoreWriter(tmp, len(stim), 3, 5, trial_chunk=2)
        w.append(eeg)
        w.finish(trials, ["Pz", "Oz", "O1"], np.linspace(0, 0.4, 5))
    s = open_eeg_store(path)
    ids, means, counts = s.mean_by_fold(None, 2)
    assert list(ids) == ["a.jpg", "b.jpg", "c.jpg"] and means.shape == (2, 3, 3, 5)
    ref = _fold_reference(eeg, stim, trials["repetition"].to_numpy(), ids, 2)
    np.testing.assert_allclose(means, ref, rtol=1e-6)
    assert counts.tolist() == [[2, 2, 1], [1, 2, 1]]


def test_repetitions_by_stimulus(tmp_path):
    betas, trials, ijk, grid, affine = _toy()
    s = open_voxel_store(write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine, chunks=(4, 3)))
    stim = trials["stimulus"].to_numpy()
    wanted = [2, 3, 0]
    voxels = np.array([6, 0, 3])
    ids, reps, n = s.repetitions_by_stimulus(wanted, voxels=voxels)
    assert list(ids) == wanted and n.tolist() == [2, 3, 1] and reps.shape == (3, 3, 3)
    for i, sid in enumerate(wanted):
        rows = np.flatnonzero(stim == sid)  # rows in presentation order = repetitions 0, 1, ...
        np.testing.assert_array_equal(reps[i, :len(rows)], betas[rows][:, voxels])
        assert np.isnan(reps[i, len(rows):]).all()
    _, all_vox, _ = s.repetitions_by_stimulus([5], voxels=None)
    np.testing.assert_array_equal(all_vox, betas[stim == 5][None])


def test_a_store_with_a_chunk_file_missing_is_refused(tmp_path):
    """zarr reads a missing chunk as its fill value (NaN): the store's file list must catch it on open."""
    import shutil

    betas, trials, ijk, grid, affine = _toy()
    path = write_voxel_store(tmp_path / "s.zarr", betas, trials, ijk, grid, affine, chunks=(4, 3))
    listed = json.loads((path / "chunks.json").read_text())["files"]
    chunks = sorted(p.relative_to(path).as_posix() for p in (path / "betas").rglob("*") if p.is_file()
                    and p.name != "zarr.json")
    assert len(chunks) == 9 and set(chunks) <= set(listed)  # 3 x 3 chunks of (10, 7) betas, all listed
    assert open_voxel_store(path).betas.shape == (10, 7)

    copy = tmp_path / "copy.zarr"  # an interrupted copy: one chunk file missing
    shutil.copytree(path, copy)
    (copy / chunks[4]).unlink()
    with pytest.raises(InputError, match=rf"{chunks[4]}: missing from the store"):
        open_voxel_store(copy)
    shutil.rmtree(copy)
    shutil.copytree(path, copy)  # a chunk cut short
    data = (copy / chunks[0]).read_bytes()
    (copy / chunks[0]).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"{chunks[0]}: has {len(data) // 2} bytes, the store recorded {len(data)}"):
        open_voxel_store(copy)
    shutil.rmtree(copy)
    shutil.copytree(path, copy)
    (copy / "chunks.json").unlink()
    with pytest.raises(InputError, match="chunks.json: missing"):
        open_voxel_store(copy)

    eeg_path = write_eeg_store(tmp_path / "e.zarr", np.ones((4, 2, 3), np.float32) * np.arange(3),
                               trials.iloc[:4].assign(session=1), ["Pz", "Oz"], [0.0, 0.1, 0.2])
    chunk = next(p for p in (eeg_path / "eeg").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    with pytest.raises(InputError, match="missing from the store"):
        open_eeg_store(eeg_path)


def test_excluded_voxels_are_dropped_and_recorded(tmp_path):
    betas, trials, ijk, grid, affine = _toy()
    labels = np.array([0, 1, 2, 2, 0, 1, 3], dtype=np.int16)
    rois = {"atlasA": (labels, {1: "V1v", 2: "V2d", 3: "hV4"}), "LHPPA": np.array([1, 1, 0, 0, 0, 1, 0], bool)}
    ncsnr = np.linspace(0, 1, 7).astype(np.float32)
    non_finite = np.array([0, 0, 1, 0, 0, 0, 0], bool)
    constant = np.array([0, 0, 1, 0, 0, 1, 0], bool)  # voxel 2 is both: counted as non-finite (listed first)
    path = tmp_path / "s.zarr"
    with atomic_output(path) as tmp:
        w = VoxelStoreWriter(tmp, 10, 7, chunks=(3, 2))
        w.append(betas[:4])
        w.append(betas[4:])
        w.finish(trials, ijk, grid, affine, rois=rois, ncsnr=ncsnr,
                 exclude={"non-finite": non_finite, "constant": constant})
    s = open_voxel_store(path)
    keep = [0, 1, 3, 4, 6]
    np.testing.assert_array_equal(s.betas[:], betas[:, keep])
    assert s.betas.chunks == (3, 2)
    np.testing.assert_array_equal(s.voxel_ijk, ijk[keep])
    np.testing.assert_array_equal(s.ncsnr, ncsnr[keep])
    np.testing.assert_array_equal(s.roi_labels("atlasA")[0], labels[keep])
    np.testing.assert_array_equal(s.roi_mask("LHPPA"), rois["LHPPA"][keep])
    ex_ijk, reasons = s.excluded_voxels()
    np.testing.assert_array_equal(ex_ijk, ijk[[2, 5]])
    assert reasons.tolist() == ["non-finite", "constant"]
    assert s.attrs["excluded_voxels"] == {"reasons": ["non-finite", "constant"],
                                          "counts": {"non-finite": 1, "constant": 1}, "kept": 5, "selected": 7}
    assert s.attrs["format_version"] == 2
    # nothing excluded: an empty record
    s2 = open_voxel_store(write_voxel_store(tmp_path / "t.zarr", betas, trials, ijk, grid, affine))
    assert s2.excluded_voxels()[0].shape == (0, 3) and s2.attrs["excluded_voxels"]["counts"] == {
        "non-finite": 0, "constant": 0}
