"""The mean image a voxel store carries (the background of the report's brain maps): the release's mean image
when there is one (NSD ``mean.nii.gz``), else the mean beta before z-scoring, and the reader's fallback for
stores without one. Expected values come from the fixtures' closed-form betas (fixtures_layouts.py) and from
nibabel reading the files, not from brainalign."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from fixtures_layouts import (NSD_TRIALS, b5k_beta, nsd_affine, nsd_raw_beta, write_bold5000_tree,
                              write_nsd_tree)

from brainalign.errors import InputError
from brainalign.ingest import ingest_bold5000, ingest_nsd
from brainalign.store import open_voxel_store, write_voxel_store


def grid_index(grid):
    return np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")


def nsd_mean_beta(grid, sessions):
    """Mean over every trial of the given sessions of the released int16 betas / 300, per voxel (X, Y, Z)."""
    i, j, k = grid_index(grid)
    t = np.arange(1, NSD_TRIALS + 1)[:, None, None, None]
    total = sum(nsd_raw_beta(s, t, i, j, k).astype(np.float64).sum(0) for s in sessions)
    return total / (NSD_TRIALS * len(sessions)) / 300.0


def test_nsd_mean_image_from_the_release(tmp_path):
    tree = write_nsd_tree(tmp_path / "nsd", n_sessions=1, formats=("nii.gz",))
    epi = np.random.default_rng(1).uniform(200, 1200, tree.grid).astype(np.float32)
    nib.save(nib.Nifti1Image(epi, tree.affine), str(tree.func_dir / "mean.nii.gz"))
    store = open_voxel_store(ingest_nsd(tree.root, 1, tmp_path / "s.zarr"))
    img = store.mean_volume()
    np.testing.assert_allclose(np.asarray(img.dataobj), epi, rtol=1e-6)
    np.testing.assert_allclose(img.affine, tree.affine)
    assert b"mean.nii.gz" in img.header["descrip"].item()
    assert "mean.nii.gz" in json.dumps(store.attrs["provenance"])


def test_nsd_mean_image_on_another_grid_is_refused(tmp_path):
    tree = write_nsd_tree(tmp_path / "nsd", n_sessions=1, formats=("nii.gz",))
    bad = tuple(n + 1 for n in tree.grid)
    nib.save(nib.Nifti1Image(np.ones(bad, np.float32), nsd_affine(bad)), str(tree.func_dir / "mean.nii.gz"))
    with pytest.raises(InputError, match="mean.nii.gz"):
        ingest_nsd(tree.root, 1, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_nsd_without_mean_image_takes_the_mean_beta(tmp_path):
    tree = write_nsd_tree(tmp_path / "nsd", n_sessions=2, formats=("nii.gz", "hdf5"))
    expected = nsd_mean_beta(tree.grid, [1, 2])
    # NIfTI betas are read as whole volumes: the whole grid's mean, before z-scoring
    store = open_voxel_store(ingest_nsd(tree.root, 1, tmp_path / "n.zarr", input_format="nii.gz"))
    img = store.mean_volume()
    np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-5, atol=1e-4)
    assert b"mean beta" in img.header["descrip"].item()
    # HDF5 betas are read voxel by voxel: the mean in the stored voxels, 0 elsewhere
    store = open_voxel_store(ingest_nsd(tree.root, 1, tmp_path / "h.zarr", input_format="hdf5"))
    stored = np.zeros(tree.grid, bool)
    stored[tuple(store.voxel_ijk.T)] = True
    assert 0 < stored.sum() < stored.size
    np.testing.assert_allclose(np.asarray(store.mean_volume().dataobj), np.where(stored, expected, 0.0),
                               rtol=1e-5, atol=1e-4)


def test_bold5000_mean_beta_over_the_whole_grid(tmp_path):
    tree = write_bold5000_tree(tmp_path / "b5k", subject=2)
    store = open_voxel_store(ingest_bold5000(tree.root, 2, tmp_path / "b.zarr"))
    i, j, k = grid_index(tree.grid)
    total = sum(b5k_beta(s, np.arange(1, n + 1)[:, None, None, None], i, j, k).astype(np.float64).sum(0)
                for s, n in enumerate(tree.trials_per_session, 1))
    expected = total / sum(tree.trials_per_session)
    img = store.mean_volume()
    np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-6)
    np.testing.assert_allclose(img.affine, tree.affine)
    assert len(store.voxel_ijk) < expected.size  # the mean covers more than the stored (ROI) voxels


def _trials(n):
    return pd.DataFrame({"session": 1, "trial": np.arange(1, n + 1), "stimulus": np.arange(n) % 3,
                         "repetition": np.arange(n) // 3, "shared": False})


def test_reader_fallback_for_stores_without_a_mean_image(tmp_path):
    ijk = np.array([[0, 0, 0], [1, 2, 0], [2, 1, 1]])
    betas = np.random.default_rng(0).normal(5, 1, (6, 3)).astype(np.float32)
    store = open_voxel_store(write_voxel_store(tmp_path / "raw.zarr", betas, _trials(6), ijk, (3, 3, 2), np.eye(4)))
    expected = np.zeros((3, 3, 2))
    expected[tuple(ijk.T)] = betas.mean(0)
    np.testing.assert_allclose(np.asarray(store.mean_volume().dataobj), expected, rtol=1e-5)
    # z-scored betas average to 0 everywhere: the stored voxels themselves are the background
    z = (betas - betas.mean(0)) / betas.std(0)
    store = open_voxel_store(write_voxel_store(tmp_path / "z.zarr", z, _trials(6), ijk, (3, 3, 2), np.eye(4)))
    np.testing.assert_array_equal(np.asarray(store.mean_volume().dataobj), (expected != 0).astype(np.float32))


def test_simulated_mean_epi_shows_the_planted_brain():
    from brainalign.simulate.brain import build_layout, mean_epi

    layout = build_layout((16, 20, 16))
    epi = mean_epi(layout)
    assert epi.shape == (16, 20, 16) and epi.dtype == np.float32
    assert (epi[~layout.brain] == 0).all() and (epi[layout.brain] > 0).all()
    white = layout.brain & ~layout.cortex
    assert epi[layout.cortex].mean() > epi[white].mean()  # grey matter brighter than white matter in an EPI
