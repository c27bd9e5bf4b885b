"""Values that are not measurements, and grids that only look right: refused with the file named, or left out with
a warning and a record (docs/store.md "Bad values"). Trees from tests/fixtures_layouts.py (datasets.md facts);
expected stores computed here by hand from the fixtures' closed-form values."""

from __future__ import annotations

import logging
import os

import nibabel as nib
import numpy as np
import pytest
import scipy.io

from brainalign.errors import InputError
from brainalign.ingest import ingest_bold5000, ingest_nsd, ingest_things_eeg2
from brainalign.store import open_voxel_store
from fixtures_layouts import (
    b5k_beta,
    nsd_affine,
    nsd_raw_beta,
    write_bold5000_tree,
    write_nsd_tree,
    write_things_eeg2_tree,
)

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")


def zscore(x):
    """Per-column z-score, population sd (what datasets.md §1.3 says ingestion does)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(axis=0)) / x.std(axis=0)


def save(data, affine, path):
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header["scl_slope"] = np.nan
    img.header["scl_inter"] = np.nan
    nib.save(img, str(path))


def nsd_float_session(tree, session, dtype=np.float32):
    """A float betas file holding percent signal change: the int16 release values / 300."""
    i, j, k, t = np.meshgrid(*(np.arange(n) for n in tree.grid), np.arange(1, 751), indexing="ij")
    return (nsd_raw_beta(session, t, i, j, k) / 300.0).astype(dtype)


def nothing_written(out):
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.fixture
def nsd(tmp_path):
    return write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=2, formats=("nii.gz",))


@pytest.fixture
def b5k(tmp_path):
    return write_bold5000_tree(tmp_path / "b5k", subject=1)


# ------------------------------------------------------------------------------------------------- NSD

def test_nsd_float_betas_are_percent_signal_change_and_one_nan_stays_in_its_voxel(nsd, tmp_path, caplog):
    data = {s: nsd_float_session(nsd, s) for s in (1, 2)}
    mask = nsd.atlases["nsdgeneral"] > 0
    bad = tuple(np.argwhere(mask)[5])  # one selected voxel gets one NaN trial
    data[1][bad + (99,)] = np.nan
    for s in (1, 2):
        save(data[s], nsd.affine, nsd.betas_dir / f"betas_session{s:02d}.nii.gz")
    with caplog.at_level(logging.WARNING):
        store = open_voxel_store(ingest_nsd(nsd.root, 1, tmp_path / "o.zarr", atlases=["streams"]))
    assert "float betas, taken as percent signal change" in caplog.text
    assert "1 of" in caplog.text and "non-finite" in caplog.text
    # the NaN voxel is left out and recorded; every other voxel is z-scored exactly as without it
    ijk = [tuple(v) for v in np.argwhere(mask) if tuple(v) != bad]
    assert [tuple(v) for v in store.voxel_ijk] == ijk
    ex_ijk, reasons = store.excluded_voxels()
    assert [tuple(v) for v in ex_ijk] == [bad] and reasons.tolist() == ["non-finite"]
    assert store.attrs["excluded_voxels"]["counts"] == {"non-finite": 1, "constant": 0}
    assert store.attrs["beta_scale"] == 1.0 and store.attrs["units"] == "z"
    i, j, k = np.asarray(ijk).T
    betas = store.betas[:]
    assert np.isfinite(betas).all()
    for s in (1, 2):
        expected = zscore(nsd_raw_beta(s, np.arange(1, 751)[:, None], i[None], j[None], k[None]) / 300.0)
        np.testing.assert_allclose(betas[(s - 1) * 750: s * 750], expected, atol=2e-5)
    # no z-scoring: float values are stored as they are (not / 300)
    raw = open_voxel_store(ingest_nsd(nsd.root, 1, tmp_path / "raw.zarr", atlases=[], zscore=False))
    np.testing.assert_allclose(raw.betas[:750], data[1][i, j, k].T, rtol=1e-6)


def test_nsd_mixed_int_and_float_sessions_are_refused(nsd, tmp_path):
    save(nsd_float_session(nsd, 2), nsd.affine, nsd.betas_dir / "betas_session02.nii.gz")
    out = tmp_path / "o.zarr"
    with pytest.raises(InputError, match=r"betas_session02\.nii\.gz: float betas, but betas_session01\.nii\.gz holds "
                                         r"integer ones"):
        ingest_nsd(nsd.root, 1, out)
    assert nothing_written(out)


def test_nsd_dead_voxel_left_out_and_empty_session_refused(nsd, tmp_path, caplog):
    mask = nsd.atlases["nsdgeneral"] > 0
    dead = tuple(np.argwhere(mask)[0])
    i, j, k, t = np.meshgrid(*(np.arange(n) for n in nsd.grid), np.arange(1, 751), indexing="ij")
    raw = nsd_raw_beta(2, t, i, j, k)
    raw[dead] = 0  # constant across session 2's trials
    save(raw, nsd.affine, nsd.betas_dir / "betas_session02.nii.gz")
    with caplog.at_level(logging.WARNING):
        store = open_voxel_store(ingest_nsd(nsd.root, 1, tmp_path / "o.zarr", atlases=[]))
    assert dead not in {tuple(v) for v in store.voxel_ijk} and store.n_voxels == mask.sum() - 1
    assert store.excluded_voxels()[1].tolist() == ["constant"]
    assert "constant" in caplog.text and "betas_session02.nii.gz" in caplog.text

    save(np.zeros_like(raw), nsd.affine, nsd.betas_dir / "betas_session02.nii.gz")  # an all-zero session
    out = tmp_path / "z.zarr"
    with pytest.raises(InputError, match=r"betas_session02\.nii\.gz: 750 of 750 trials are empty volumes"):
        ingest_nsd(nsd.root, 1, out, atlases=[])
    assert nothing_written(out)

    raw = nsd_raw_beta(2, t, i, j, k)
    raw[..., 316] = 7  # one trial's volume is constant (a zero-filled stretch of a file)
    save(raw, nsd.affine, nsd.betas_dir / "betas_session02.nii.gz")
    with pytest.raises(InputError, match=r"1 of 750 trials are empty volumes \(every selected voxel equal to 7; "
                                         r"trials 317\)"):
        ingest_nsd(nsd.root, 1, out, atlases=[])


def test_nsd_mostly_nan_betas_are_refused(nsd, tmp_path):
    data = nsd_float_session(nsd, 1)
    data[: nsd.grid[0] // 2 + 2] = np.nan  # most of the grid, in every trial
    data[0, 0, 0] = 1.0
    save(data, nsd.affine, nsd.betas_dir / "betas_session01.nii.gz")
    save(nsd_float_session(nsd, 2), nsd.affine, nsd.betas_dir / "betas_session02.nii.gz")
    with pytest.raises(InputError, match=r"betas_session01\.nii\.gz: \d+ of \d+ selected voxels have non-finite or "
                                         r"constant betas"):
        ingest_nsd(nsd.root, 1, tmp_path / "o.zarr", atlases=[])


def test_nsd_roi_and_ncsnr_on_another_grid_are_refused(nsd, tmp_path, caplog):
    out = tmp_path / "o.zarr"
    shifted = nsd_affine(nsd.grid)
    shifted[:3, 3] += [1.8, 0, 0]  # same shape, origin one voxel off
    save(nsd.atlases["floc-faces"], shifted, nsd.func_dir / "roi" / "floc-faces.nii.gz")
    with pytest.raises(InputError, match=r"floc-faces\.nii\.gz: affine differs from that of the mask "
                                         r"nsdgeneral\.nii\.gz by up to 1\.8 mm"):
        ingest_nsd(nsd.root, 1, out)
    assert nothing_written(out)
    save(nsd.atlases["floc-faces"], nsd.affine, nsd.func_dir / "roi" / "floc-faces.nii.gz")
    save(nsd.ncsnr, np.diag([2.0, 2.0, 2.0, 1.0]), nsd.betas_dir / "ncsnr.nii.gz")  # another voxel size
    with pytest.raises(InputError, match=r"ncsnr\.nii\.gz: affine differs"):
        ingest_nsd(nsd.root, 1, out)
    save(nsd.ncsnr, nsd.affine, nsd.betas_dir / "ncsnr.nii.gz")
    # the betas' own affine is unverified in the release (datasets.md §1.2): a warning, the mask's affine kept
    i, j, k, t = np.meshgrid(*(np.arange(n) for n in nsd.grid), np.arange(1, 751), indexing="ij")
    save(nsd_raw_beta(1, t, i, j, k), shifted, nsd.betas_dir / "betas_session01.nii.gz")
    with caplog.at_level(logging.WARNING):
        store = open_voxel_store(ingest_nsd(nsd.root, 1, out, atlases=[]))
    assert "betas_session01.nii.gz: affine differs" in caplog.text
    np.testing.assert_allclose(store.affine, nsd.affine)


def test_nsd_design_that_cannot_be_the_design_is_refused(nsd, tmp_path):
    out = tmp_path / "o.zarr"
    design = scipy.io.loadmat(str(nsd.design_path))
    bad = dict(design, masterordering=np.ones_like(design["masterordering"]))  # one image, 30000 times
    scipy.io.savemat(str(nsd.design_path), {k: v for k, v in bad.items() if not k.startswith("__")})
    with pytest.raises(InputError, match=r"nsd_expdesign\.mat: masterordering shows 10k index 1 1500 times"):
        ingest_nsd(nsd.root, 1, out)
    subjectim = design["subjectim"].copy()
    subjectim[0, 5000] = subjectim[0, 4000]
    scipy.io.savemat(str(nsd.design_path), {"masterordering": design["masterordering"], "subjectim": subjectim,
                                            "sharedix": design["sharedix"]})
    with pytest.raises(InputError, match=r"subjectim row 1 lists the same 73k ID more than once"):
        ingest_nsd(nsd.root, 1, out)
    scipy.io.savemat(str(nsd.design_path), {"masterordering": design["masterordering"] + 0.5,
                                            "subjectim": design["subjectim"], "sharedix": design["sharedix"]})
    with pytest.raises(InputError, match=r"masterordering holds fractional values"):
        ingest_nsd(nsd.root, 1, out)
    assert nothing_written(out)


# -------------------------------------------------------------------------------------------- BOLD5000

def test_bold5000_nan_voxel_left_out_others_exact(b5k, tmp_path, caplog):
    union = np.any(list(b5k.masks.values()), axis=0)
    bad = tuple(np.argwhere(union)[10])
    path = b5k.glm_dir / "CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-02.nii.gz"
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    data[bad + (3,)] = np.inf
    save(data, img.affine, path)
    with caplog.at_level(logging.WARNING):
        store = open_voxel_store(ingest_bold5000(b5k.root, 1, tmp_path / "o.zarr"))
    assert "non-finite" in caplog.text and "ses-02" in caplog.text
    assert [tuple(v) for v in store.excluded_voxels()[0]] == [bad]
    ijk = np.array([v for v in np.argwhere(union) if tuple(v) != bad])
    np.testing.assert_array_equal(store.voxel_ijk, ijk)
    i, j, k = ijk.T
    betas, row = store.betas[:], 0
    for s, n in enumerate(b5k.trials_per_session, 1):
        x = b5k_beta(s, np.arange(1, n + 1)[:, None], i[None], j[None], k[None])
        np.testing.assert_allclose(betas[row:row + n], zscore(x), atol=2e-5)
        row += n
    for roi, member in b5k.masks.items():  # ROI memberships follow the kept voxels
        np.testing.assert_array_equal(store.roi_mask(roi), member[i, j, k])


def test_bold5000_masks_and_sessions_on_another_grid_are_refused(b5k, tmp_path):
    out = tmp_path / "o.zarr"
    roi = b5k.spm_dir / "sub-CSI1_mask-LHPPA.nii.gz"
    moved = b5k.affine.copy()
    moved[:3, 3] = [0, -2.0, 0]
    save(b5k.masks["LHPPA"].astype(np.uint8), moved, roi)
    with pytest.raises(InputError, match=r"sub-CSI1_mask-LHPPA\.nii\.gz: affine differs from that of the betas "
                                         r"CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-01\.nii\.gz by up to 2 mm"):
        ingest_bold5000(b5k.root, 1, out)
    save(b5k.masks["LHPPA"].astype(np.uint8), b5k.affine, roi)
    brainmask = b5k.glm_dir / "CSI1_brainmask.nii.gz"
    save(np.ones(b5k.grid, np.uint8), np.diag([2.5, 2.5, 2.5, 1.0]), brainmask)
    with pytest.raises(InputError, match=r"CSI1_brainmask\.nii\.gz: affine differs"):
        ingest_bold5000(b5k.root, 1, out, mask="brainmask")
    session = b5k.glm_dir / "CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-03.nii.gz"
    img = nib.load(str(session))
    save(np.asarray(img.dataobj), moved, session)
    with pytest.raises(InputError, match=r"ses-03\.nii\.gz: affine differs"):
        ingest_bold5000(b5k.root, 1, out)
    assert nothing_written(out)


def test_bold5000_image_lists_that_cannot_be_the_design_are_refused(b5k, tmp_path):
    out = tmp_path / "o.zarr"
    names = b5k.glm_dir / "CSI1_imgnames.txt"
    original = names.read_text()
    lines = original.splitlines()
    for n in (1, 2, 4, 5):
        lines[n] = lines[0]  # image 0 now shown 3 + 4 = 7 times
    names.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"CSI1_imgnames\.txt: .* listed 7 times; BOLD5000 shows an image at most 4"):
        ingest_bold5000(b5k.root, 1, out)
    repeated = b5k.root / "BOLD5000_Stimuli" / "Scene_Stimuli" / "repeated_stimuli_113_list.txt"
    names.write_text(original)
    repeated.write_text("a.jpg\nb.jpg\na.jpg\n")
    with pytest.raises(InputError, match=r"repeated_stimuli_113_list\.txt: 'a\.jpg' listed 2 times"):
        ingest_bold5000(b5k.root, 1, out)
    assert nothing_written(out)


# ----------------------------------------------------------------------------------------- THINGS-EEG2

@pytest.mark.parametrize("corrupt, match", [
    (lambda a: a.__setitem__((1, 2, 0, 3), np.nan), r"1 non-finite EEG values \(first at condition 1, repetition 2\)"),
    (lambda a: a.__setitem__((4, 1), 0.0), r"1 of 24 trials are constant .* condition 4, repetition 1"),
    (lambda a: a.__setitem__((slice(None), slice(None), 2), 5.0), r"channel\(s\) \[2\] constant over every trial"),
])
def test_eeg_values_that_are_not_measurements_are_refused(tmp_path, corrupt, match):
    tree = write_things_eeg2_tree(tmp_path / "eeg")
    path = tree.subj_dir / "preprocessed_eeg_training.npy"
    d = np.load(path, allow_pickle=True).item()
    corrupt(d["preprocessed_eeg_data"])
    np.save(path, d, allow_pickle=True)
    out = tmp_path / "o.zarr"
    with pytest.raises(InputError, match=rf"preprocessed_eeg_training\.npy: {match}"):
        ingest_things_eeg2(tree.root, 1, out)
    assert nothing_written(out)


def test_eeg_metadata_and_types_are_checked(tmp_path):
    tree = write_things_eeg2_tree(tmp_path / "eeg")
    meta_path = tree.root / "image_set" / "image_metadata.npy"
    meta = np.load(meta_path, allow_pickle=True).item()
    out = tmp_path / "o.zarr"
    np.save(meta_path, dict(meta, train_img_files=[meta["train_img_files"][0]] * len(meta["train_img_files"])),
            allow_pickle=True)
    with pytest.raises(InputError, match=r"image_metadata\.npy: train_img_files lists 'concept0_01b\.jpg' 6 times"):
        ingest_things_eeg2(tree.root, 1, out)
    np.save(meta_path, dict(meta, test_img_files=[1.0, 2.0]), allow_pickle=True)
    with pytest.raises(InputError, match=r"test_img_files holds 2 entries that are not names"):
        ingest_things_eeg2(tree.root, 1, out)
    np.save(meta_path, meta, allow_pickle=True)
    path = tree.subj_dir / "preprocessed_eeg_test.npy"
    d = np.load(path, allow_pickle=True).item()
    np.save(path, dict(d, preprocessed_eeg_data=d["preprocessed_eeg_data"].astype(str)), allow_pickle=True)
    with pytest.raises(InputError, match=r"preprocessed_eeg_test\.npy: preprocessed_eeg_data holds <U\d+ values"):
        ingest_things_eeg2(tree.root, 1, out)
    with pytest.raises(InputError, match=r"--subject: 11 is not a THINGS-EEG2 subject"):
        ingest_things_eeg2(tree.root, 11, out)
    assert nothing_written(out)
