"""Hand-built tiny copies of the real NSD / BOLD5000 / THINGS-EEG2 layouts (datasets.md facts only).

These writers do not import brainalign: file names, dtypes, axis orders and index bases follow
docs/datasets.md (§1.3, §1.5, §1.9, §1.11 for NSD; §2 for BOLD5000; §3 for THINGS-EEG2).
Values are closed-form functions of (session, trial, voxel) so any mapping mistake shows.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import nibabel as nib
import numpy as np
import scipy.io

NSD_TRIALS = 750
NSD_ATLAS_LABELS = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
    "nsdgeneral": ["nsdgeneral"],
}


def nsd_raw_beta(session, trial, i, j, k):
    """int16 value stored for (session 1-based, trial 1-based in session, voxel i, j, k); broadcasts."""
    return ((session * 7919 + trial * 131 + i * 37 + j * 11 + k * 5) % 20001 - 10000).astype(np.int16)


def nsd_affine(grid, res=1.8):
    """diag(res) with the origin at the volume centre (nsdcode's writer, datasets.md §1.2)."""
    aff = np.diag([res, res, res, 1.0])
    aff[:3, 3] = -res * (np.asarray(grid) - 1) / 2.0
    return aff


def _save_nifti(data, affine, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header["scl_slope"] = np.nan  # no header scaling (datasets.md §1.3)
    img.header["scl_inter"] = np.nan
    nib.save(img, str(path))
    return path


def write_nsd_betas_session(path, session, grid, fmt, n_trials=NSD_TRIALS, affine=None, hdf5_chunked=True):
    """One ``betas_session{SS}`` file: NIfTI int16 (X,Y,Z,T) or HDF5 ``/betas`` int16 (T,Z,Y,X)."""
    i, j, k, t = np.meshgrid(*(np.arange(n) for n in grid), np.arange(1, n_trials + 1), indexing="ij")
    raw = nsd_raw_beta(session, t, i, j, k)  # (X, Y, Z, T)
    path = Path(path)
    if fmt == "nii.gz":
        _save_nifti(raw, nsd_affine(grid) if affine is None else affine, path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            f.create_dataset("betas", data=raw.transpose(3, 2, 1, 0),
                             chunks=(n_trials, 1, 1, 1) if hdf5_chunked else None)
    return path


def write_nsd_tree(root, subject=1, n_sessions=2, grid=(6, 5, 4), formats=("nii.gz", "hdf5"),
                   beta_version="betas_fithrf_GLMdenoise_RR", seed=0, hdf5_chunked=True):
    """Write a tiny NSD root; return the facts needed to compute expected stores by hand."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    sid = f"subj{subject:02d}"
    X, Y, Z = grid
    affine = nsd_affine(grid)
    betas_dir = root / "nsddata_betas" / "ppdata" / sid / "func1pt8mm" / beta_version
    for s in range(1, n_sessions + 1):
        for fmt in formats:
            ext = ".nii.gz" if fmt == "nii.gz" else ".hdf5"
            write_nsd_betas_session(betas_dir / f"betas_session{s:02d}{ext}", s, grid, fmt,
                                    hdf5_chunked=hdf5_chunked)
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    ncsnr = (0.1 + i * 0.01 + j * 0.001 + k * 0.0001).astype(np.float32)
    _save_nifti(ncsnr, affine, betas_dir / "ncsnr.nii.gz")

    # ROI volumes (float, -1 = not cortical / 0 = unlabelled / 1..N), datasets.md §1.9
    func = root / "nsddata" / "ppdata" / sid / "func1pt8mm"
    cortical = i > 0
    nsdgeneral = np.where(cortical, ((i + j + k) % 3 != 0).astype(np.float32), -1.0).astype(np.float32)
    atlases = {"nsdgeneral": nsdgeneral}
    for n, (atlas, labels) in enumerate(NSD_ATLAS_LABELS.items()):
        if atlas == "nsdgeneral":
            continue
        vol = ((i * 3 + j * 2 + k + n) % (len(labels) + 1)).astype(np.float32)
        atlases[atlas] = np.where(cortical, vol, -1.0).astype(np.float32)
    for atlas, vol in atlases.items():
        _save_nifti(vol, affine, func / "roi" / f"{atlas}.nii.gz")
    brainmask = (j < Y - 1).astype(np.int16)
    _save_nifti(brainmask, affine, func / "brainmask.nii.gz")
    label_dir = root / "nsddata" / "freesurfer" / sid / "label"
    label_dir.mkdir(parents=True, exist_ok=True)
    for atlas, labels in NSD_ATLAS_LABELS.items():
        lines = ["0 Unknown\t"] + [f"{n} {name}\t " for n, name in enumerate(labels, 1)]
        (label_dir / f"{atlas}.mgz.ctab").write_text("\n".join(lines) + "\n")

    # design (datasets.md §1.5): 1-based values; masterordering 1x30000 (10k index), subjectim 8x10000 (73k ID)
    sharedix = np.sort(rng.choice(np.arange(1, 73001), size=1000, replace=False))
    subjectim = np.zeros((8, 10000), dtype=np.int64)
    others = np.setdiff1d(np.arange(1, 73001), sharedix)
    for p in range(8):
        subjectim[p, :1000] = sharedix
        subjectim[p, 1000:] = rng.choice(others, size=9000, replace=False)
    n_used = NSD_TRIALS * n_sessions
    # first n_used trials: n_used/5 images x 3 repetitions (a third of them shared), the rest shown once
    n_tri = n_used // 5
    tripled = np.concatenate([rng.choice(np.arange(1, 1001), n_tri // 3, replace=False),
                              rng.choice(np.arange(1001, 10001), n_tri - n_tri // 3, replace=False)])
    singles = rng.choice(np.setdiff1d(np.arange(1, 10001), tripled), n_used - 3 * n_tri, replace=False)
    head = rng.permutation(np.concatenate([np.repeat(tripled, 3), singles]))
    masterordering = np.concatenate([head, rng.integers(1, 10001, 30000 - n_used)]).astype(np.uint16)
    exp_dir = root / "nsddata" / "experiments" / "nsd"
    exp_dir.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(exp_dir / "nsd_expdesign.mat"), {
        "masterordering": masterordering[None, :],
        "subjectim": subjectim.astype(np.int32),
        "sharedix": sharedix[None, :].astype(np.int32),
        "basiccnt": np.zeros((3, 40), dtype=np.int32),
        "stimpattern": np.zeros((40, 12, 75), dtype=np.uint8),
    })
    return SimpleNamespace(root=root, subject=subject, sid=sid, grid=tuple(grid), affine=affine,
                           n_sessions=n_sessions, betas_dir=betas_dir, func_dir=func,
                           masterordering=masterordering.astype(np.int64), subjectim=subjectim,
                           sharedix=sharedix, atlases=atlases, brainmask=brainmask, ncsnr=ncsnr,
                           design_path=exp_dir / "nsd_expdesign.mat")


# --------------------------------------------------------------------------------------- BOLD5000

B5K_ROIS = [f"{h}{r}" for r in ("EarlyVis", "LOC", "OPA", "PPA", "RSC") for h in ("LH", "RH")]
#: file stems as released (datasets.md §2.5): CSI2 misnames three masks, CSI3 two
B5K_FILE_STEMS = {2: {"LHLOC": "LHLO", "RHLOC": "RHLO", "RHRSC": "RHRRSC"}, 3: {"LHLOC": "LHLO", "RHLOC": "RHLO"}}


def b5k_beta(session, trial, i, j, k):
    """float32 beta for (session, trial 1-based in session, voxel); exact in float32."""
    return (session * 1000.0 + trial * 10.0 + (i + 5 * j + 30 * k) / 64.0).astype(np.float32)


def write_bold5000_tree(root, subject=2, trials_per_session=(7, 9, 8), grid=(5, 6, 4)):
    """Tiny BOLD5000 Release 2.0 tree (files spread over sub-folders as users keep them)."""
    root = Path(root)
    sid = f"CSI{subject}"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    X, Y, Z = grid
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    glm = root / "GLMsingle"
    for s, n in enumerate(trials_per_session, 1):
        t = np.arange(1, n + 1)
        data = b5k_beta(s, t[None, None, None, :], i[..., None], j[..., None], k[..., None])
        _save_nifti(data, affine, glm / f"{sid}_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-{s:02d}.nii.gz")
    _save_nifti((k < Z - 1).astype(np.uint8), affine, glm / f"{sid}_brainmask.nii.gz")
    n_total = sum(trials_per_session)
    base = [f"COCO_train2014_{n:012d}.jpg" for n in range(1, 9)] + \
           [f"n0144076{n}_{n * 11}.JPEG" for n in range(8)] + [f"scene{n}.jpg" for n in range(n_total)]
    names = base[:n_total]
    # repeats (0-based line numbers): image 0 at lines 0, 10, 20; image 3 at 3 and 17 (once with a rep_ prefix)
    names[10] = names[0]
    names[20] = names[0]
    names[17] = names[3]
    lines = list(names)
    lines[17] = "rep_" + names[3]
    (glm / f"{sid}_imgnames.txt").write_text("\n".join(lines) + "\n")
    stim = root / "BOLD5000_Stimuli" / "Scene_Stimuli"
    stim.mkdir(parents=True)
    (stim / "repeated_stimuli_113_list.txt").write_text("\n".join([names[0], names[3], "never_shown.jpg"]) + "\n")
    # overlapping ROI masks: ROI m covers voxels whose code falls in a window
    masks = {}
    spm = root / "derivatives" / "spm" / f"sub-{sid}"
    code = i + X * j + X * Y * k
    for m, roi in enumerate(B5K_ROIS):
        vol = ((code >= 8 * m) & (code < 8 * m + 12)).astype(np.uint8)
        masks[roi] = vol.astype(bool)
        stem = B5K_FILE_STEMS.get(subject, {}).get(roi, roi)
        _save_nifti(vol, affine, spm / f"sub-{sid}_mask-{stem}.nii.gz")
    return SimpleNamespace(root=root, subject=subject, sid=sid, grid=tuple(grid), affine=affine,
                           trials_per_session=list(trials_per_session), names=names, masks=masks,
                           repeated={names[0], names[3], "never_shown.jpg"}, glm_dir=glm, spm_dir=spm)


# ------------------------------------------------------------------------------------ THINGS-EEG2

def eeg_value(part_sign, cond, rep, ch, t):
    return part_sign * (cond * 1000.0 + rep * 100.0 + ch * 10.0 + t)


def write_things_eeg2_tree(root, subject=1, n_train=(3, 2), n_test=2, reps=(4, 5), ch_names=("Pz", "P3", "O1"),
                           n_times=5):
    """Tiny THINGS-EEG2 tree: preprocessed dicts (condition, repetition, channel, time) + image_metadata."""
    root = Path(root)
    sid = f"sub-{subject:02d}"
    concepts_tr = [f"{c + 1:05d}_concept{c}" for c in range(n_train[0])]
    train_concepts = [c for c in concepts_tr for _ in range(n_train[1])]
    train_files = [f"{c.split('_', 1)[1]}_{n + 1:02d}{'bs'[n % 2]}.jpg" for c in concepts_tr for n in range(n_train[1])]
    test_concepts = [f"{c + 1:05d}_testconcept{c}" for c in range(n_test)]
    test_files = [f"testconcept{c}_01b.jpg" for c in range(n_test)]
    times = np.round(np.arange(n_times) * 0.01 - 0.2, 2)
    subj = root / "eeg_dataset" / "preprocessed_data" / sid
    subj.mkdir(parents=True)
    data = {}
    for part, n_cond, n_rep, sign in (("training", len(train_files), reps[0], 1.0), ("test", n_test, reps[1], -1.0)):
        c, r, ch, t = np.meshgrid(np.arange(n_cond), np.arange(n_rep), np.arange(len(ch_names)), np.arange(n_times),
                                  indexing="ij")
        arr = eeg_value(sign, c, r, ch, t).astype(np.float64)
        data[part] = arr
        np.save(subj / f"preprocessed_eeg_{part}.npy",
                {"preprocessed_eeg_data": arr, "ch_names": list(ch_names), "times": times}, allow_pickle=True)
    img = root / "image_set"
    img.mkdir(parents=True)
    np.save(img / "image_metadata.npy", {
        "train_img_concepts": train_concepts, "train_img_files": train_files,
        "train_img_concepts_THINGS": train_concepts,
        "test_img_concepts": test_concepts, "test_img_files": test_files, "test_img_concepts_THINGS": test_concepts,
    }, allow_pickle=True)
    return SimpleNamespace(root=root, subject=subject, sid=sid, data=data, train_files=train_files,
                           test_files=test_files, train_concepts=train_concepts, ch_names=list(ch_names),
                           times=times, subj_dir=subj)
