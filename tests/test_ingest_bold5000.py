"""BOLD5000 ingestion against a hand-built Release 2.0 tree (datasets.md §2)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from brainalign.errors import InputError
from brainalign.ingest import ingest_bold5000
from brainalign.store import open_voxel_store
from fixtures_layouts import B5K_ROIS, b5k_beta, write_bold5000_tree

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_bold5000_tree(tmp_path_factory.mktemp("b5k"), subject=2)


@pytest.fixture(scope="module")
def raw_store(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "raw.zarr"
    return open_voxel_store(ingest_bold5000(tree.root, "CSI2", out, zscore=False))


def test_values_and_voxels(tree, raw_store):
    s = raw_store
    union = np.zeros(tree.grid, bool)
    for m in tree.masks.values():
        union |= m
    assert {tuple(v) for v in s.voxel_ijk} == {tuple(v) for v in np.argwhere(union)}
    assert s.betas.shape == (sum(tree.trials_per_session), union.sum())
    i, j, k = s.voxel_ijk.T
    betas = s.betas[:]
    row = 0
    for session, n in enumerate(tree.trials_per_session, 1):
        exp = b5k_beta(session, np.arange(1, n + 1)[:, None], i[None], j[None], k[None])
        np.testing.assert_array_equal(betas[row:row + n], exp)
        row += n
    assert s.grid_shape == tree.grid and s.ncsnr is None
    np.testing.assert_allclose(s.affine, tree.affine)


def test_trial_table(tree, raw_store):
    t = raw_store.trials
    sessions = [s for s, n in enumerate(tree.trials_per_session, 1) for _ in range(n)]
    trials = [k for n in tree.trials_per_session for k in range(1, n + 1)]
    assert t["session"].tolist() == sessions and t["trial"].tolist() == trials
    assert t["stimulus"].tolist() == tree.names  # rep_ prefix stripped, line order
    reps, seen = [], {}
    for name in tree.names:
        reps.append(seen.get(name, 0))
        seen[name] = reps[-1] + 1
    assert t["repetition"].tolist() == reps
    assert t["shared"].tolist() == [n in tree.repeated for n in tree.names]
    ids, means, n = raw_store.mean_by_stimulus(stimuli=[tree.names[0]])
    assert n.tolist() == [3]


def test_overlapping_rois_and_remapped_names(tree, raw_store):
    s = raw_store
    assert sorted(s.roi_names()) == sorted(B5K_ROIS)
    i, j, k = s.voxel_ijk.T
    for roi, vol in tree.masks.items():
        np.testing.assert_array_equal(s.roi_mask(roi), vol[i, j, k])
    assert (s.roi_mask("LHEarlyVis") & s.roi_mask("RHEarlyVis")).any()  # overlap kept
    with pytest.raises(InputError):
        s.roi_mask("LHFFA")


def test_zscore_sessions_subset_brainmask(tree, tmp_path):
    s = open_voxel_store(ingest_bold5000(tree.root, 2, tmp_path / "z.zarr", sessions="2-3", mask="brainmask",
                                         rois=["LHLOC", "RHRSC"]))
    assert s.attrs["zscored"] is True
    n1, n2, n3 = tree.trials_per_session
    assert s.trials["stimulus"].tolist() == tree.names[n1:]
    assert s.betas.shape[1] == int(nib.load(str(tree.glm_dir / "CSI2_brainmask.nii.gz")).get_fdata().sum())
    i, j, k = s.voxel_ijk.T
    np.testing.assert_array_equal(s.roi_mask("RHRSC"), tree.masks["RHRSC"][i, j, k])
    z = s.betas[:]
    row = 0
    for session, n in ((2, n2), (3, n3)):
        x = b5k_beta(session, np.arange(1, n + 1)[:, None], i[None], j[None], k[None]).astype(np.float64)
        np.testing.assert_allclose(z[row:row + n], (x - x.mean(0)) / x.std(0), atol=1e-4)
        row += n


def test_csi3_remap(tmp_path):
    t = write_bold5000_tree(tmp_path / "b", subject=3)
    s = open_voxel_store(ingest_bold5000(t.root, "sub-CSI3", tmp_path / "o.zarr", zscore=False))
    i, j, k = s.voxel_ijk.T
    np.testing.assert_array_equal(s.roi_mask("LHLOC"), t.masks["LHLOC"][i, j, k])


@pytest.fixture
def fresh(tmp_path):
    return write_bold5000_tree(tmp_path / "b5k", subject=2)


def _expect_error(tree, out, match, **kw):
    with pytest.raises(InputError, match=match):
        ingest_bold5000(tree.root, tree.subject, out, **kw)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_bad_imgnames_count(fresh, tmp_path):
    p = fresh.glm_dir / "CSI2_imgnames.txt"
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")
    _expect_error(fresh, tmp_path / "o.zarr", r"CSI2_imgnames\.txt: 23 image names .* 24 trials")


def test_bad_roi_grid_unknown_roi_missing(fresh, tmp_path):
    out = tmp_path / "o.zarr"
    _expect_error(fresh, out, "unknown BOLD5000 ROI names", rois=["LHFFA"])
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 3), np.uint8), np.eye(4)),
             str(fresh.spm_dir / "sub-CSI2_mask-LHPPA.nii.gz"))
    _expect_error(fresh, out, r"sub-CSI2_mask-LHPPA\.nii\.gz: grid .* differs")
    (fresh.spm_dir / "sub-CSI2_mask-LHPPA.nii.gz").unlink()
    _expect_error(fresh, out, r"ROI masks \['LHPPA'\] of CSI2 not found")
    _expect_error(fresh, out, "no CSI2_GLMbetas-TYPEA", beta_version="TYPEA-ASSUMEHRF")
    with pytest.raises(InputError, match="root not found"):
        ingest_bold5000(tmp_path / "none", 2, out)


def test_bad_session_file(fresh, tmp_path):
    p = fresh.glm_dir / "CSI2_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-03.nii.gz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    _expect_error(fresh, tmp_path / "o.zarr", r"ses-03\.nii\.gz.*(truncated|ends early|corrupt)")
    (fresh.glm_dir / "CSI2_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-02.nii.gz").unlink()
    _expect_error(fresh, tmp_path / "o.zarr", r"sessions found \[1, 3\]")
