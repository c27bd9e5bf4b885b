"""The broad sweep: every input file an ingest reads, of every dataset, corrupted in each way that applies to it
(truncated, NaN-filled, constant, on another grid, another dtype, deleted). Each run must end in one of:

- refused cleanly: one InputError of one line naming the file (or a path of the tree), the earlier output at the
  output path intact, no temporaries left;
- done with a warning logged (the store says what was left out or assumed);
- done with a store identical to the uncorrupted one (the corruption did not change what is read, e.g. a mask
  stored as float instead of uint8);

and never "done silently with different data". The input trees are never modified by an ingest. Trees come from
tests/fixtures_layouts.py (written from datasets.md, not from the simulator)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from brainalign._io import atomic_output
from brainalign.errors import InputError
from brainalign.ingest import ingest_bold5000, ingest_nsd, ingest_things_eeg2
from brainalign.store import open_eeg_store, open_voxel_store
from fixtures_layouts import write_bold5000_tree, write_nsd_tree, write_things_eeg2_tree

os.environ.setdefault("BRAINALIGN_PROGRESS", "0")

B5K_BETAS = "GLMsingle/CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-01.nii.gz"
NSD_BETAS = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01"
DATASETS = {
    # name: (tree writer, ingest call, input files read (relative to the root), store opener)
    "nsd": (lambda r: write_nsd_tree(r, subject=1, n_sessions=1, formats=("nii.gz",)),
            lambda root, out: ingest_nsd(root, 1, out, atlases=["streams"]),
            [f"{NSD_BETAS}.nii.gz", "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/ncsnr.nii.gz",
             "nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz",
             "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz",
             "nsddata/freesurfer/subj01/label/streams.mgz.ctab", "nsddata/experiments/nsd/nsd_expdesign.mat"],
            open_voxel_store),
    "nsd-hdf5": (lambda r: write_nsd_tree(r, subject=1, n_sessions=1, formats=("hdf5",)),
                 lambda root, out: ingest_nsd(root, 1, out, atlases=["streams"]),
                 [f"{NSD_BETAS}.hdf5"], open_voxel_store),
    "bold5000": (lambda r: write_bold5000_tree(r, subject=1),
                 lambda root, out: ingest_bold5000(root, 1, out, rois=["LHEarlyVis", "RHPPA"]),
                 [B5K_BETAS, "GLMsingle/CSI1_imgnames.txt",
                  "BOLD5000_Stimuli/Scene_Stimuli/repeated_stimuli_113_list.txt",
                  "derivatives/spm/sub-CSI1/sub-CSI1_mask-LHEarlyVis.nii.gz"],
                 open_voxel_store),
    "things-eeg2": (lambda r: write_things_eeg2_tree(r),
                    lambda root, out: ingest_things_eeg2(root, 1, out),
                    ["eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_training.npy",
                     "eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_test.npy", "image_set/image_metadata.npy"],
                    open_eeg_store),
}


def _kind(path: Path) -> str:
    name = path.name
    return next(k for suffix, k in ((".nii.gz", "nifti"), (".hdf5", "hdf5"), (".npy", "npy"), (".mat", "mat"),
                                    (".txt", "text"), (".ctab", "text")) if name.endswith(suffix))


# ------------------------------------------------------------------------------------------ corruptions

def _nifti(path, data=None, affine=None, dtype=None):
    img = nib.load(str(path))
    data = np.asarray(img.dataobj) if data is None else data
    data = data.astype(dtype) if dtype is not None else data
    out = nib.Nifti1Image(data, img.affine if affine is None else affine)
    out.header.set_data_dtype(data.dtype)
    out.header["scl_slope"], out.header["scl_inter"] = np.nan, np.nan
    nib.save(out, str(path))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def delete(path):
    path.unlink()


def nan_fill(path):
    kind = _kind(path)
    if kind == "nifti":
        shape = nib.load(str(path)).shape
        _nifti(path, np.full(shape, np.nan, np.float32))
    elif kind == "hdf5":
        with h5py.File(path, "r+") as f:
            shape = f["betas"].shape
            del f["betas"]
            f.create_dataset("betas", data=np.full(shape, np.nan, np.float32))
    elif kind == "npy":
        d = np.load(path, allow_pickle=True).item()
        key = "preprocessed_eeg_data" if "preprocessed_eeg_data" in d else "train_img_files"
        d[key] = np.full(np.shape(d[key]), np.nan)
        np.save(path, d, allow_pickle=True)
    elif kind == "mat":
        mat = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
        mat["masterordering"] = np.full(mat["masterordering"].shape, np.nan)
        scipy.io.savemat(str(path), mat)
    else:
        n = len(path.read_text().splitlines())
        path.write_text("nan\n" * n)


def constant(path):
    kind = _kind(path)
    if kind == "nifti":
        data = np.asarray(nib.load(str(path)).dataobj)
        _nifti(path, np.full_like(data, data.max()))
    elif kind == "hdf5":
        with h5py.File(path, "r+") as f:
            data = f["betas"][...]
            del f["betas"]
            f.create_dataset("betas", data=np.full_like(data, data.max()))
    elif kind == "npy":
        d = np.load(path, allow_pickle=True).item()
        if "preprocessed_eeg_data" in d:
            d["preprocessed_eeg_data"] = np.full_like(d["preprocessed_eeg_data"], 3.0)
        else:
            d = {k: [v[0]] * len(v) for k, v in d.items()}
        np.save(path, d, allow_pickle=True)
    elif kind == "mat":
        mat = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
        scipy.io.savemat(str(path), {k: np.ones_like(v) for k, v in mat.items()})
    else:
        lines = path.read_text().splitlines()
        path.write_text((lines[0] + "\n") * len(lines))


def other_grid(path):
    img = nib.load(str(path))
    affine = img.affine.copy()
    affine[:3, 3] += np.diag(affine)[:3]  # origin moved by one voxel: same shape, another grid
    _nifti(path, affine=affine)


def other_dtype(path):
    kind = _kind(path)
    if kind == "nifti":
        dtype = np.asarray(nib.load(str(path)).dataobj).dtype
        _nifti(path, dtype=np.float64 if dtype.kind in "iu" else np.int16)
    elif kind == "hdf5":
        with h5py.File(path, "r+") as f:
            data = f["betas"][...]
            del f["betas"]
            f.create_dataset("betas", data=data.astype(np.float32))
    elif kind == "npy":
        d = np.load(path, allow_pickle=True).item()
        if "preprocessed_eeg_data" in d:
            d["preprocessed_eeg_data"] = d["preprocessed_eeg_data"].astype(np.complex64)
        else:
            d["test_img_files"] = np.arange(len(d["test_img_files"]))
        np.save(path, d, allow_pickle=True)
    elif kind == "mat":
        mat = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
        mat["subjectim"] = np.char.mod("img%d", mat["subjectim"][:, :50])
        scipy.io.savemat(str(path), mat)
    else:
        path.write_bytes(b"\xff\xfe\x00\x81" * 64)  # not text


CORRUPTIONS = {"truncate": truncate, "nan": nan_fill, "constant": constant, "other-grid": other_grid,
               "other-dtype": other_dtype, "delete": delete}
APPLIES = {"nifti": set(CORRUPTIONS), "hdf5": set(CORRUPTIONS) - {"other-grid"},
           "npy": set(CORRUPTIONS) - {"other-grid"}, "mat": set(CORRUPTIONS) - {"other-grid"},
           "text": set(CORRUPTIONS) - {"other-grid"}}
CASES = [(ds, rel, c) for ds, (_, _, files, _) in DATASETS.items() for rel in files
         for c in CORRUPTIONS if c in APPLIES[_kind(Path(rel))]]


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Per dataset: an uncorrupted tree and what its store holds (built once)."""
    out = {}
    for name, (write, ingest, _, opener) in DATASETS.items():
        base = tmp_path_factory.mktemp(name)
        write(base / "tree")
        ingest(base / "tree", base / "baseline.zarr")
        out[name] = (base / "tree", _contents(opener(base / "baseline.zarr")))
    return out


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _contents(store) -> dict:
    """What a store holds, minus the provenance (paths of the tree copy differ between cases)."""
    data = store.betas[:] if hasattr(store, "betas") else store.eeg[:]
    out = {"data": data, "trials": store.trials,
           "attrs": {k: v for k, v in store.attrs.items() if k != "provenance"}}
    if hasattr(store, "voxel_ijk"):
        out.update(ijk=store.voxel_ijk, ncsnr=store.ncsnr,
                   rois={n: store.roi_mask(n) for n in store.roi_names()})
    return out


def _same(a: dict, b: dict) -> bool:
    def eq(x, y):
        if isinstance(x, pd.DataFrame):
            return x.equals(y)
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(eq(x[k], y[k]) for k in x)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return x is not None and y is not None and np.array_equal(x, y, equal_nan=True)
        return x == y
    return eq(a, b)


@pytest.mark.parametrize("dataset, rel, corruption", CASES, ids=[f"{d}:{Path(r).name}:{c}" for d, r, c in CASES])
def test_corrupt_input_is_refused_or_flagged_and_nothing_is_lost(pristine, tmp_path, caplog, dataset, rel,
                                                                 corruption):
    _, ingest, _, opener = DATASETS[dataset]
    tree, expected = pristine[dataset]
    root = tmp_path / "tree"
    shutil.copytree(tree, root)
    CORRUPTIONS[corruption](root / rel)
    out = tmp_path / "store.zarr"
    with atomic_output(out) as tmp:  # an earlier output of ours: a refused run must leave it as it was
        tmp.mkdir()
        (tmp / "earlier.txt").write_text("the earlier store")
    before = _snapshot(root)
    with caplog.at_level(logging.WARNING, logger="brainalign"):
        try:
            ingest(root, out)
            refused = None
        except InputError as exc:
            refused = str(exc)
    warned = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING and r.name.startswith("brainalign")]
    assert _snapshot(root) == before, "an ingest modified its input tree"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".store.zarr.")], "temporaries left behind"
    if refused is not None:
        assert "\n" not in refused and (Path(rel).name in refused or str(root) in refused), refused
        assert (out / "earlier.txt").read_text() == "the earlier store", "a refused run changed the earlier output"
    elif not warned:
        assert _same(_contents(opener(out)), expected), (
            f"{rel} {corruption}: accepted silently with different data")
