"""Format facts of the simulated trees, read with plain nibabel / h5py / scipy.io / numpy / pandas.

Every expectation here is written from docs/datasets.md (§1.11 NSD minimal copy, §2 BOLD5000,
§3 THINGS-EEG2), not from the simulator's code.
"""

from __future__ import annotations

import re

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from fixtures_layouts import NSD_ATLAS_LABELS as NSD_LABELS  # written from datasets.md, not the simulator
CH_NAMES = ["Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8", "P6", "P2"]

BETAS = "nsddata_betas/ppdata/{s}/func1pt8mm/betas_fithrf_GLMdenoise_RR"


@pytest.fixture(scope="module")
def nsd(simulated_root):
    return simulated_root / "nsd"


@pytest.fixture(scope="module")
def design(nsd):
    return scipy.io.loadmat(nsd / "nsddata/experiments/nsd/nsd_expdesign.mat")


def _subjects(nsd):
    return sorted(p.name for p in (nsd / "nsddata_betas/ppdata").glob("subj*"))


def test_top_level_tree(simulated_root):
    for d in ("nsd", "bold5000", "things_eeg2", "unseen_images", "ground_truth"):
        assert (simulated_root / d).is_dir(), d
    for d in ("nsddata", "nsddata_betas", "nsddata_stimuli"):
        assert (simulated_root / "nsd" / d).is_dir()
    assert not list(simulated_root.parent.glob(".*tmp-*")), "temporary folder left behind"


def test_nsd_betas_nifti_and_hdf5(nsd):
    subjects = _subjects(nsd)
    assert subjects[0] == "subj01" and len(subjects) >= 2
    for s in subjects:
        d = nsd / BETAS.format(s=s)
        sessions = sorted(p.name for p in d.glob("betas_session*.nii.gz"))
        assert sessions == [f"betas_session{k:02d}.nii.gz" for k in range(1, len(sessions) + 1)]
        img = nib.load(d / "betas_session01.nii.gz")
        X, Y, Z, T = img.shape
        assert T == 750
        assert img.get_data_dtype() == np.int16
        hdr = img.header
        slope, inter = hdr["scl_slope"], hdr["scl_inter"]
        assert (np.isnan(slope) or slope in (0, 1)) and (np.isnan(inter) or inter == 0), "header scaling present"
        assert np.allclose(hdr.get_zooms()[:3], 1.8)
        expected_affine = np.diag([1.8, 1.8, 1.8, 1.0])
        expected_affine[:3, 3] = -1.8 * (np.array([X, Y, Z]) - 1) / 2
        assert np.allclose(img.affine, expected_affine)
        raw = np.asarray(img.dataobj)
        assert raw.dtype == np.int16
        with h5py.File(d / "betas_session01.hdf5", "r") as f:
            assert list(f.keys()) == ["betas"]
            b = f["betas"]
            assert b.dtype == np.int16 and b.shape == (750, Z, Y, X)
            assert b.chunks == (750, 1, 1, 1) and b.compression is None
            h5 = b[()]
        np.testing.assert_array_equal(h5.transpose(3, 2, 1, 0), raw)
        mask = np.asarray(nib.load(nsd / f"nsddata/ppdata/{s}/func1pt8mm/brainmask.nii.gz").dataobj)
        assert mask.shape == (X, Y, Z) and set(np.unique(mask)) == {0, 1}
        assert not raw[mask == 0].any(), "non-brain voxels must be 0"
        assert np.abs(raw[mask > 0]).std() > 100, "brain betas should be int16 x300 percent signal change"
        nc = nib.load(d / "ncsnr.nii.gz")
        assert nc.shape == (X, Y, Z) and nc.get_data_dtype() == np.float32


def test_nsd_design_mat(nsd, design):
    raw = open(nsd / "nsddata/experiments/nsd/nsd_expdesign.mat", "rb").read(128)
    assert not raw.startswith(b"\x89HDF"), "must be a non-HDF5 MAT file"
    n_sessions = len(list((nsd / BETAS.format(s="subj01")).glob("betas_session*.nii.gz")))
    mo = design["masterordering"]
    assert mo.shape == (1, 750 * n_sessions)
    subjectim, sharedix = design["subjectim"], design["sharedix"]
    K = subjectim.shape[1]
    assert subjectim.shape[0] == 8
    assert mo.min() == 1 and mo.max() == K, "masterordering holds 1-based 10k indices"
    assert np.all(np.bincount(mo.ravel())[1:] == 3), "3 repetitions per image"
    assert subjectim.min() >= 1, "subjectim is 1-based"
    n_shared = sharedix.shape[1]
    assert sharedix.shape == (1, n_shared) and np.all(np.diff(sharedix.ravel()) > 0)
    for p in range(8):
        np.testing.assert_array_equal(subjectim[p, :n_shared], sharedix.ravel())
    for p in range(len(_subjects(nsd))):
        assert len(np.unique(subjectim[p])) == K
    simulated = [subjectim[p, n_shared:] for p in range(len(_subjects(nsd)))]
    assert len(np.unique(np.concatenate(simulated))) == sum(len(x) for x in simulated), "subject images overlap"
    assert design["basiccnt"].shape == (3, n_sessions)
    sp = design["stimpattern"]
    assert sp.shape == (n_sessions, 12, 75)
    np.testing.assert_array_equal(sp.sum(2)[0], [63, 62] * 6)
    assert sp.sum() == 750 * n_sessions


def test_nsd_stim_info_csv(nsd, design):
    path = nsd / "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
    header = open(path).readline().rstrip("\n").split(",")
    expected = ["", "cocoId", "cocoSplit", "cropBox", "loss", "nsdId", "flagged", "BOLD5000", "shared1000"]
    expected += [f"subject{p}" for p in range(1, 9)]
    expected += [f"subject{p}_rep{r}" for p in range(1, 9) for r in range(3)]
    assert len(expected) == 41
    assert header[:9] == expected[:9] and header[9:] == expected[9:]
    df = pd.read_csv(path, index_col=0)
    N = len(df)
    np.testing.assert_array_equal(df["nsdId"], np.arange(N))
    np.testing.assert_array_equal(df.index, np.arange(N))
    assert set(df["cocoSplit"]) <= {"train2017", "val2017"}
    assert df["shared1000"].dtype == bool and df["flagged"].dtype == bool
    assert re.fullmatch(r"\(.*, .*, .*, .*\)", df["cropBox"].iloc[0])
    mo = design["masterordering"].ravel()
    subjectim = design["subjectim"]
    assert subjectim.max() <= N, "an ID beyond imgBrick/CSV is referenced"
    np.testing.assert_array_equal(np.flatnonzero(df["shared1000"]) + 1, design["sharedix"].ravel())
    n_sim = len(_subjects(nsd))
    for p in range(1, 9):
        reps = df[[f"subject{p}_rep{r}" for r in range(3)]].to_numpy()
        if p > n_sim:
            assert not reps.any() and not df[f"subject{p}"].any()
            continue
        assert set(df[f"subject{p}"]) == {0, 1}
        for t in (1, 2, 750, len(mo)):  # spot checks: global trial t shows 73k ID subjectim[p-1, mo[t-1]-1]
            nsd_id = subjectim[p - 1, mo[t - 1] - 1] - 1
            assert t in reps[nsd_id]
        shown = np.flatnonzero(df[f"subject{p}"])
        assert np.all(reps[shown] > 0) and not reps[df[f"subject{p}"] == 0].any()
        # every trial appears exactly once, with rep0 < rep1 < rep2
        assert np.array_equal(np.sort(reps[shown].ravel()), np.arange(1, len(mo) + 1))
        assert np.all(np.diff(reps[shown], axis=1) > 0)


def test_nsd_imgbrick(nsd, design):
    df = pd.read_csv(nsd / "nsddata/experiments/nsd/nsd_stim_info_merged.csv", index_col=0)
    with h5py.File(nsd / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "r") as f:
        brick = f["imgBrick"]
        assert brick.dtype == np.uint8 and brick.shape == (len(df), 425, 425, 3)
        assert brick[0].std() > 5
    assert len(np.unique(design["subjectim"][: len(_subjects(nsd))])) == len(df), "N = number of distinct images"


def test_nsd_rois_and_ctabs(nsd):
    for s in _subjects(nsd):
        roi = nsd / f"nsddata/ppdata/{s}/func1pt8mm/roi"
        shape = nib.load(nsd / BETAS.format(s=s) / "betas_session01.nii.gz").shape[:3]
        for atlas, names in NSD_LABELS.items():
            for ctab_dir in (f"nsddata/freesurfer/{s}/label", "nsddata/freesurfer/fsaverage/label"):
                lines = (nsd / ctab_dir / f"{atlas}.mgz.ctab").read_text().splitlines()
                rows = [re.split(r"\s+", ln.strip()) for ln in lines if ln.strip()]
                assert rows[0] == ["0", "Unknown"]
                assert [r[1] for r in rows[1:]] == names and [int(r[0]) for r in rows[1:]] == list(range(1, len(names) + 1))
            vols = {}
            for prefix in ("", "lh.", "rh."):
                img = nib.load(roi / f"{prefix}{atlas}.nii.gz")
                assert img.shape == shape
                v = np.asarray(img.dataobj)
                assert np.all(v == np.round(v))
                vols[prefix] = v.astype(int)
                assert set(np.unique(v)) <= set(range(-1, len(names) + 1))
                assert (v == -1).any() and (v == 0).any()
            assert set(np.unique(vols[""])) >= set(range(1, len(names) + 1)) - ({5} if atlas == "floc-words" else set()), atlas
            combined = np.where(vols["lh."] != -1, vols["lh."], vols["rh."])
            np.testing.assert_array_equal(combined, vols[""])
            assert not ((vols["lh."] != -1) & (vols["rh."] != -1)).any()


def test_bold5000_tree(simulated_root):
    root = simulated_root / "bold5000"
    glm = root / "GLMsingle"
    subjects = sorted(int(m.group(1)) for p in glm.glob("CSI*_imgnames.txt") if (m := re.match(r"CSI(\d)_", p.name)))
    assert subjects[:2] == [1, 2]
    stim = root / "BOLD5000_Stimuli/Scene_Stimuli"
    repeated = (stim / "repeated_stimuli_113_list.txt").read_text().splitlines()
    patterns = {"COCO": r"COCO_train2014_\d{12}\.jpg", "ImageNet": r"n\d{8}_\d+\.JPEG", "Scene": r"[A-Za-z]+\d+\.(jpg|jpeg)"}
    present = {}
    for src, pat in patterns.items():
        files = [p.name for p in (stim / "Presented_Stimuli" / src).iterdir()]
        assert files, src
        assert all(re.fullmatch(pat, f) for f in files), src
        present.update(dict.fromkeys(files, src))
    for N in subjects:
        names_text = (glm / f"CSI{N}_imgnames.txt").read_text()
        assert names_text.endswith("\n")
        names = names_text.splitlines()
        assert all(n in present for n in names) and not any(n.startswith("rep_") for n in names)
        counts = pd.Series(names).value_counts()
        assert set(counts[counts > 1].index) == set(repeated) and set(counts[counts > 1]) == {4}
        sessions = sorted(glm.glob(f"CSI{N}_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-*.nii.gz"))
        assert [p.name[-9:-7] for p in sessions] == [f"{k:02d}" for k in range(1, len(sessions) + 1)]
        total = 0
        for p in sessions:
            img = nib.load(p)
            assert img.get_data_dtype() == np.float32 and img.ndim == 4
            assert img.shape[3] in (333, 370) and img.shape[3] % 37 == 0
            assert np.allclose(img.header.get_zooms()[:3], 2.0)
            total += img.shape[3]
            shape = img.shape[:3]
        assert total == len(names)
        mask = nib.load(glm / f"CSI{N}_brainmask.nii.gz")
        assert mask.shape == shape
        mdir = root / f"derivatives/spm/sub-CSI{N}"
        files = sorted(p.name for p in mdir.glob("*.nii.gz"))
        assert len(files) == 10
        masks = {}
        for f in files:
            img = nib.load(mdir / f)
            assert img.shape == shape and img.get_data_dtype() == np.uint8
            v = np.asarray(img.dataobj)
            assert set(np.unique(v)) == {0, 1}
            masks[re.search(r"mask-(\w+)\.nii", f).group(1)] = v.astype(bool)
        true_names = {f"{h}{r}" for h in ("LH", "RH") for r in ("EarlyVis", "LOC", "OPA", "PPA", "RSC")}
        misnamed = {2: {"LHLOC": "LHLO", "RHLOC": "RHLO", "RHRSC": "RHRRSC"}, 3: {"LHLOC": "LHLO", "RHLOC": "RHLO"}}
        assert set(masks) == {misnamed.get(N, {}).get(n, n) for n in true_names}
        names_m = sorted(masks)
        overlaps = [(a, b) for i, a in enumerate(names_m) for b in names_m[i + 1:] if (masks[a] & masks[b]).any()]
        assert overlaps, "masks must overlap somewhere"


def test_things_eeg2_tree(simulated_root):
    root = simulated_root / "things_eeg2"
    meta = np.load(root / "image_set/image_metadata.npy", allow_pickle=True).item()
    assert set(meta) == {"train_img_concepts", "train_img_files", "train_img_concepts_THINGS",
                         "test_img_concepts", "test_img_files", "test_img_concepts_THINGS"}
    n_train, n_test = len(meta["train_img_files"]), len(meta["test_img_files"])
    assert n_train % 10 == 0 and len(meta["train_img_concepts"]) == len(meta["train_img_concepts_THINGS"]) == n_train
    assert len(meta["test_img_concepts"]) == len(meta["test_img_concepts_THINGS"]) == n_test
    concept_of = lambda folder: folder.split("_", 1)[1]  # noqa: E731
    train_concepts = {concept_of(c) for c in meta["train_img_concepts"]}
    test_concepts = {concept_of(c) for c in meta["test_img_concepts"]}
    assert not train_concepts & test_concepts
    assert list(meta["train_img_concepts"][:10]) == [meta["train_img_concepts"][0]] * 10
    assert meta["train_img_concepts"][0].startswith("00001_") and meta["test_img_concepts"][0].startswith("00001_")
    for split, key in (("training", "train"), ("test", "test")):
        for folder, fname, things in zip(meta[f"{key}_img_concepts"], meta[f"{key}_img_files"], meta[f"{key}_img_concepts_THINGS"]):
            assert re.fullmatch(r"\d{5}_[a-z_]+", folder)
            c = concept_of(folder)
            assert re.fullmatch(re.escape(c) + r"_\d{2}[bs]\.jpg", fname)
            assert re.fullmatch(r"\d{5}_" + re.escape(c), things)
            assert (root / "image_set" / f"{split}_images" / folder / fname).is_file()
    times = np.round(np.arange(-0.2, 0.8, 0.01), 2)
    subs = sorted((root / "eeg_dataset/preprocessed_data").glob("sub-*"))
    assert subs and subs[0].name == "sub-01"
    for sub in subs:
        for split, n in (("training", n_train), ("test", n_test)):
            d = np.load(sub / f"preprocessed_eeg_{split}.npy", allow_pickle=True).item()
            assert set(d) == {"preprocessed_eeg_data", "ch_names", "times"}
            x = d["preprocessed_eeg_data"]
            assert x.dtype == np.float64 and x.shape[0] == n and x.shape[2:] == (17, 100)
            assert x.shape[1] == 4 if split == "training" else x.shape[1] >= 2
            assert list(d["ch_names"]) == CH_NAMES
            np.testing.assert_allclose(d["times"], times, atol=1e-9)
            assert len(d["times"]) == 100


def test_unseen_and_ground_truth_files(simulated_root):
    gt = simulated_root / "ground_truth"
    unseen = pd.read_parquet(gt / "unseen_images.parquet")
    assert set(unseen["category"]) == {"faces", "bodies", "places", "words", "objects"}
    for path in unseen["path"]:
        assert (simulated_root / "unseen_images" / path).is_file()
    nsd_imgs = pd.read_parquet(gt / "nsd_images.parquet")
    assert set(nsd_imgs["category"]) == set(unseen["category"])
    for name in ("nsd_subj01.npz", "nsd_subj02.npz", "bold5000_CSI1.npz", "bold5000_CSI2.npz", "things_eeg2_sub-01.npz",
                 "bold5000_images.parquet", "things_eeg2_images.parquet", "params.json"):
        assert (gt / name).is_file(), name
    g = np.load(gt / "nsd_subj01.npz")
    n = len(g["voxel_ijk"])
    assert g["response"].shape == (len(g["image_ids"]), n)
    assert g["unseen_response"].shape == (len(unseen), n)
    assert g["trial_image_ids"].shape == (750 * g["session_offset"].shape[0],)


def test_cli_rejects_bad_options_before_writing(tmp_path):
    import argparse

    from brainalign.errors import InputError
    from brainalign.simulate import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "out"
    for argv in (["--datasets", "nsd,fmri"], ["--preset", "tiny", "--nsd-shared", "999"], ["--nsd-grid", "5,5,5"]):
        with pytest.raises(InputError):
            cli.run(parser.parse_args(["--out", str(out), *argv]))
        assert not out.exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", str(out), "--nsd-grid", "1,2"])
