"""NSD ingestion against a hand-built tree (tests/fixtures_layouts.py, facts from datasets.md §1)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from brainalign.cli import main as cli_main
from brainalign.errors import InputError
from brainalign.ingest import ingest_nsd
from brainalign.store import open_voxel_store
from fixtures_layouts import NSD_ATLAS_LABELS, nsd_raw_beta, write_nsd_betas_session, write_nsd_tree

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_nsd_tree(tmp_path_factory.mktemp("nsd"), subject=2, n_sessions=2)


@pytest.fixture(scope="module")
def raw_store(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "raw.zarr"
    ingest_nsd(tree.root, "subj02", out, input_format="nii.gz", zscore=False)
    return open_voxel_store(out)


def expected_trials(tree, sessions):
    """Trial table by hand from the design rule of datasets.md §1.5."""
    rows, seen = [], {}
    for s in range(1, max(sessions) + 1):
        for k in range(1, 751):
            t = (s - 1) * 750 + k
            ten_k = tree.masterordering[t - 1]          # 1-based 10k index
            id73k = tree.subjectim[tree.subject - 1, ten_k - 1]  # 1-based 73k ID
            nsd_id = int(id73k) - 1
            rep = seen.get(nsd_id, 0)
            seen[nsd_id] = rep + 1
            if s in sessions:
                rows.append((s, k, nsd_id, rep, id73k in set(tree.sharedix.tolist())))
    return rows


def test_values_voxels_and_grid(tree, raw_store):
    s = raw_store
    mask = tree.atlases["nsdgeneral"] > 0
    assert s.betas.dtype == np.float32
    assert s.betas.shape == (1500, mask.sum())
    assert {tuple(v) for v in s.voxel_ijk} == {tuple(v) for v in np.argwhere(mask)}
    assert s.grid_shape == tree.grid
    np.testing.assert_allclose(s.affine, tree.affine)
    betas = s.betas[:]
    i, j, k = s.voxel_ijk.T
    for session in (1, 2):
        trial = np.arange(1, 751)[:, None]
        expected = nsd_raw_beta(session, trial, i[None], j[None], k[None]).astype(np.float32) / np.float32(300)
        np.testing.assert_array_equal(betas[(session - 1) * 750: session * 750], expected)
    assert s.attrs["dataset"] == "nsd" and s.attrs["subject"] == "subj02" and s.attrs["zscored"] is False
    prov = s.attrs["provenance"]
    assert prov["package_version"] and prov["options"]["sessions"] == [1, 2]
    assert any(f["path"].endswith("betas_session01.nii.gz") and f["size"] > 0 for f in prov["source_files"])


def test_trial_table(tree, raw_store):
    t = raw_store.trials
    exp = expected_trials(tree, [1, 2])
    assert list(t.columns[:5]) == ["session", "trial", "stimulus", "repetition", "shared"]
    assert t["stimulus"].dtype == np.int64
    assert list(map(tuple, t[["session", "trial", "stimulus", "repetition"]].to_numpy().tolist())) == \
        [r[:4] for r in exp]
    assert t["shared"].tolist() == [r[4] for r in exp]
    assert t["repetition"].max() == 2 and t["shared"].any()


def test_rois_and_ncsnr(tree, raw_store):
    s = raw_store
    i, j, k = s.voxel_ijk.T
    for atlas, labels in NSD_ATLAS_LABELS.items():
        vol = tree.atlases[atlas][i, j, k]
        lab, names = s.roi_labels(atlas)
        np.testing.assert_array_equal(lab, np.where(vol < 0, 0, vol).astype(np.int16))
        assert names == {n: name for n, name in enumerate(labels, 1)}
        for n, name in enumerate(labels, 1):
            assert f"{atlas}/{name}" in s.roi_names()
            np.testing.assert_array_equal(s.roi_mask(f"{atlas}/{name}"), vol == n)
        np.testing.assert_array_equal(s.roi_mask(atlas), vol > 0)
    with pytest.raises(InputError, match="unknown ROI"):
        s.roi_mask("floc-faces/NOPE")
    np.testing.assert_array_equal(s.ncsnr, tree.ncsnr[i, j, k])
    img = s.to_nifti(s.ncsnr)
    np.testing.assert_allclose(img.affine, tree.affine)
    vol = np.asarray(img.dataobj)
    np.testing.assert_array_equal(vol[i, j, k], tree.ncsnr[i, j, k])
    assert np.all(vol[tree.atlases["nsdgeneral"] <= 0] == 0)


def test_mean_by_stimulus(tree, raw_store):
    s = raw_store
    betas = s.betas[:]
    stim = s.trials["stimulus"].to_numpy()
    tripled = [x for x in np.unique(stim) if (stim == x).sum() == 3][:5]
    ids, means, n = s.mean_by_stimulus(stimuli=tripled, voxels="prf-visualrois/V1v")
    cols = s.roi_mask("prf-visualrois/V1v")
    assert list(ids) == tripled and list(n) == [3] * 5
    for row, x in enumerate(tripled):
        np.testing.assert_allclose(means[row], betas[stim == x][:, cols].mean(axis=0), rtol=1e-6)


def test_zscore_per_session_and_formats_identical(tree, tmp_path):
    a = open_voxel_store(ingest_nsd(tree.root, 2, tmp_path / "nii.zarr", input_format="nii.gz"))
    b = open_voxel_store(ingest_nsd(tree.root, 2, tmp_path / "h5.zarr", input_format="hdf5"))
    assert a.attrs["zscored"] is True
    za = a.betas[:]
    np.testing.assert_array_equal(za, b.betas[:])
    np.testing.assert_array_equal(a.voxel_ijk, b.voxel_ijk)
    np.testing.assert_array_equal(a.ncsnr, b.ncsnr)
    assert a.trials.equals(b.trials)
    for atlas in NSD_ATLAS_LABELS:
        np.testing.assert_array_equal(a.roi_labels(atlas)[0], b.roi_labels(atlas)[0])
    i, j, k = a.voxel_ijk.T
    for session in (1, 2):
        x = nsd_raw_beta(session, np.arange(1, 751)[:, None], i[None], j[None], k[None]) / 300.0
        z = (x - x.mean(axis=0)) / x.std(axis=0)
        np.testing.assert_allclose(za[(session - 1) * 750: session * 750], z, atol=2e-5)


def test_hdf5_contiguous_fallback(tmp_path):
    t = write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=1, formats=("hdf5",), hdf5_chunked=False)
    s = open_voxel_store(ingest_nsd(t.root, 1, tmp_path / "o.zarr", zscore=False))
    i, j, k = s.voxel_ijk.T
    exp = nsd_raw_beta(1, np.arange(1, 751)[:, None], i[None], j[None], k[None]).astype(np.float32) / np.float32(300)
    np.testing.assert_array_equal(s.betas[:], exp)


def test_session_subset_and_brainmask(tree, tmp_path):
    s = open_voxel_store(ingest_nsd(tree.root, 2, tmp_path / "s2.zarr", sessions="2", mask="brainmask",
                                    atlases=["floc-faces"], zscore=False))
    assert s.trials["session"].unique().tolist() == [2]
    exp = expected_trials(tree, [2])
    assert s.trials["stimulus"].tolist() == [r[2] for r in exp]
    assert s.trials["repetition"].tolist() == [r[3] for r in exp]
    assert s.betas.shape == (750, int(tree.brainmask.sum()))
    assert s.roi_names() == [f"floc-faces/{n}" for n in NSD_ATLAS_LABELS["floc-faces"]]
    i, j, k = s.voxel_ijk.T
    exp_b = nsd_raw_beta(2, np.arange(1, 751)[:, None], i[None], j[None], k[None]).astype(np.float32) / np.float32(300)
    np.testing.assert_array_equal(s.betas[:], exp_b)


def test_cli(tree, tmp_path):
    out = tmp_path / "cli.zarr"
    rc = cli_main(["ingest", "nsd", "--root", str(tree.root), "--subject", "2", "--out", str(out),
                   "--sessions", "1", "--format", "hdf5", "--rois", "streams,nsdgeneral", "--no-zscore"])
    assert rc == 0
    s = open_voxel_store(out)
    assert s.betas.shape[0] == 750 and s.attrs["zscored"] is False
    assert sorted(s.roi_atlases()) == ["nsdgeneral", "streams"]
    assert cli_main(["ingest", "nsd", "--root", str(tree.root / "nope"), "--subject", "2",
                     "--out", str(tmp_path / "x.zarr")]) == 2


# ------------------------------------------------------------------------------------ bad input

@pytest.fixture
def fresh(tmp_path):
    return write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=2)


def _assert_nothing_written(out: Path):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def _expect_error(tree, out, match, **kw):
    with pytest.raises(InputError, match=match):
        ingest_nsd(tree.root, tree.subject, out, **kw)
    _assert_nothing_written(out)


def test_bad_root_and_sessions(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    with pytest.raises(InputError, match="root not found"):
        ingest_nsd(tmp_path / "missing", 1, out)
    _assert_nothing_written(out)
    _expect_error(fresh, out, r"sessions \[5\] not found", sessions=[5])
    with pytest.raises(InputError, match="betas directory not found"):
        ingest_nsd(fresh.root, 3, out)
    with pytest.raises(InputError, match="not an NSD subject"):
        ingest_nsd(fresh.root, "subj09", out)
    for p in fresh.betas_dir.glob("betas_session*"):
        p.unlink()
    _expect_error(fresh, out, "no betas_session")
    _assert_nothing_written(out)


def test_bad_grid(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    write_nsd_betas_session(fresh.betas_dir / "betas_session02.nii.gz", 2, (6, 5, 3), "nii.gz")
    _expect_error(fresh, out, r"betas_session02\.nii\.gz.*does not match the mask grid", input_format="nii.gz")
    write_nsd_betas_session(fresh.betas_dir / "betas_session02.hdf5", 2, (5, 5, 4), "hdf5")
    _expect_error(fresh, out, r"betas_session02\.hdf5.*does not match", input_format="hdf5")


def test_bad_roi_grid_and_unknown_atlas(fresh, tmp_path):
    import nibabel as nib

    out = tmp_path / "o.zarr"
    _expect_error(fresh, out, "unknown ROI atlas 'floc-nope'", atlases=["floc-nope"])
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 5), np.float32), np.eye(4)), str(fresh.func_dir / "roi" / "streams.nii.gz"))
    _expect_error(fresh, out, r"streams\.nii\.gz.*differs from the betas grid")


def test_bad_trial_count(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    write_nsd_betas_session(fresh.betas_dir / "betas_session01.nii.gz", 1, fresh.grid, "nii.gz", n_trials=749)
    _expect_error(fresh, out, r"betas_session01\.nii\.gz: 749 trials", input_format="nii.gz")


def test_bad_design(fresh, tmp_path):
    import scipy.io

    out = tmp_path / "o.zarr"
    scipy.io.savemat(str(fresh.design_path), {"masterordering": np.arange(1, 1001)[None, :],
                                              "subjectim": fresh.subjectim, "sharedix": fresh.sharedix[None]})
    _expect_error(fresh, out, r"nsd_expdesign\.mat: masterordering has 1000 entries")
    fresh.design_path.write_bytes(b"garbage, not a MAT file" * 10)
    _expect_error(fresh, out, r"nsd_expdesign\.mat: cannot read MAT file")


def test_truncated_gzip_leaves_nothing(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    p = fresh.betas_dir / "betas_session02.nii.gz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _expect_error(fresh, out, r"betas_session02\.nii\.gz.*(truncated|ends early)", input_format="nii.gz")
    # corrupt bytes in the middle of the stream
    raw = gzip.decompress(data)
    bad = bytearray(gzip.compress(raw))
    bad[len(bad) // 2: len(bad) // 2 + 64] = b"\x00" * 64
    p.write_bytes(bytes(bad))
    _expect_error(fresh, out, r"betas_session02\.nii\.gz", input_format="nii.gz")


def test_bad_hdf5(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    p = fresh.betas_dir / "betas_session01.hdf5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    _expect_error(fresh, out, r"betas_session01\.hdf5: cannot open HDF5", input_format="hdf5")
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    _expect_error(fresh, out, r"betas_session01\.hdf5: no dataset '/betas'", input_format="hdf5")


def test_existing_store_replaced_atomically(tree, tmp_path):
    out = tmp_path / "o.zarr"
    ingest_nsd(tree.root, 2, out, sessions=[1], atlases=[])
    ingest_nsd(tree.root, 2, out, sessions=[2], atlases=[])
    assert open_voxel_store(out).trials["session"].unique().tolist() == [2]
