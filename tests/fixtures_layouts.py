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


# ================================================================ whole-DAG copies with a planted signal
# Trees a whole workflow run can read (tests/real_data_run.py): NSD subjects sharing images, with ROI atlases and
# the stimulus brick; a BOLD5000 subject with its repeated list, ROI masks and images; THINGS-EEG2 subjects with
# their images; a folder of unseen images in category subfolders. Every image carries a planted 2-D latent, drawn
# around its category's centre and visible as the image's brightness and red/blue balance; signal voxels and the
# EEG after onset respond linearly to it, noise voxels and the EEG before onset are noise only.

PLANTED_CATEGORIES = ("animals", "food", "vehicles", "places")
CATEGORY_CENTRES = {"animals": (1.0, 1.0), "food": (1.0, -1.0), "vehicles": (-1.0, 1.0), "places": (-1.0, -1.0)}
#: the 17 channels of the preprocessed files, in their order (datasets.md §3.2)
EEG_CHANNELS = ("Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8",
                "P6", "P2")
EEG_TIMES = np.round(np.arange(100) * 0.01 - 0.2, 2)  # -0.20 .. 0.79 s in 10 ms steps (datasets.md §3.2)
EEG_ONSET = 0.08  # the planted evoked response is exactly 0 before this time
EEG_PEAK, EEG_WIDTH = 0.2, 0.04


def planted_latents(categories, rng, jitter=0.35):
    """(n, 2) latents: each image's category centre plus N(0, jitter) per coordinate."""
    centres = np.array([CATEGORY_CENTRES[c] for c in categories], dtype=np.float64)
    return centres + rng.normal(0.0, jitter, size=centres.shape)


def planted_image(latent, size, seed):
    """uint8 (size, size, 3): brightness 128 + 45·a, red/blue balance ±35·b, and a grating unrelated to the
    latent (random frequency and phase per image) so that images differ in more than the latent."""
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(0.5, 3.0, 2)
    phase_x = 2 * np.pi * fx * np.arange(size, dtype=np.float32) / size + np.float32(rng.uniform(0, 2 * np.pi))
    phase_y = 2 * np.pi * fy * np.arange(size, dtype=np.float32) / size
    # sin(u + v) = sin u cos v + cos u sin v: two outer products instead of a full-size sine
    grating = 18.0 * (np.outer(np.cos(phase_y), np.sin(phase_x)) + np.outer(np.sin(phase_y), np.cos(phase_x)))
    a, b = latent
    lum = np.float32(128.0 + 45.0 * a) + grating
    rgb = np.empty((size, size, 3), dtype=np.float32)
    rgb[..., 0] = lum + np.float32(35.0 * b)
    rgb[..., 1] = lum
    rgb[..., 2] = lum - np.float32(35.0 * b)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _save_image(pixels, path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else \
        Image.fromarray(pixels).save(path, compress_level=1)


def _expected_trials(sessions, stimuli, shared_set):
    """The trial table a store must have: session, trial (1-based in session), stimulus, repetition (earlier
    presentations, counted from the first trial), shared."""
    seen, reps = {}, []
    for s in stimuli:
        reps.append(seen.get(s, 0))
        seen[s] = seen.get(s, 0) + 1
    import pandas as pd

    session = np.concatenate([np.full(n, k) for k, n in sessions])
    trial = np.concatenate([np.arange(1, n + 1) for _, n in sessions])
    return pd.DataFrame({"session": session.astype(np.int64), "trial": trial.astype(np.int64),
                         "stimulus": list(stimuli), "repetition": np.asarray(reps, dtype=np.int64),
                         "shared": [s in shared_set for s in stimuli]})


def _voxel_responses(latents, signal, rng, noise_sd, baseline_sd=0.5):
    """(n_trials, n_voxels) percent signal change: baseline + signal voxels' w_v · latent + N(0, noise_sd)."""
    n_vox = signal.size
    angle = rng.uniform(0, 2 * np.pi, n_vox)
    weights = np.stack([np.cos(angle), np.sin(angle)]) * signal[None, :]  # (2, n_voxels), 0 for noise voxels
    baseline = rng.normal(0.0, baseline_sd, n_vox)
    return baseline + latents @ weights + rng.normal(0.0, noise_sd, (len(latents), n_vox)), weights


def write_nsd_dag_tree(root, subjects=(1, 2), n_shared=100, grid=(8, 9, 7), noise_sd=1.0, image_size=425, seed=0):
    """An NSD root with one 750-trial session per subject (datasets.md §1): ``n_shared`` images every subject saw and
    ``250 - n_shared`` of its own, each shown 3 times; betas (.nii.gz and .hdf5), ncsnr, brain mask, ROI atlases and
    label tables, the design file and the stimulus brick (rows up to the largest nsdId used)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    per_subject = NSD_TRIALS // 3
    n_own = per_subject - n_shared
    n_images = n_shared + n_own * len(subjects)
    ids73k = rng.permutation(np.arange(1, n_images + 1))  # 1-based 73k IDs; nsdId = ID - 1
    sharedix = np.sort(ids73k[:n_shared])
    own = {p: ids73k[n_shared + m * n_own: n_shared + (m + 1) * n_own] for m, p in enumerate(subjects)}
    subjectim = np.stack([np.concatenate([sharedix, own[p if p in own else subjects[0]]]) for p in range(1, 9)])
    masterordering = rng.permutation(np.repeat(np.arange(1, per_subject + 1), 3))  # 10k index per trial, 1-based
    exp_dir = root / "nsddata" / "experiments" / "nsd"
    exp_dir.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(exp_dir / "nsd_expdesign.mat"), {
        "masterordering": masterordering[None, :].astype(np.float64), "subjectim": subjectim.astype(np.float64),
        "sharedix": sharedix[None, :].astype(np.float64)})
    categories = [PLANTED_CATEGORIES[c] for c in rng.integers(0, len(PLANTED_CATEGORIES), n_images)]
    latents = planted_latents(categories, rng)  # row = nsdId
    brick = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    brick.parent.mkdir(parents=True)
    with h5py.File(brick, "w") as f:
        d = f.create_dataset("imgBrick", (n_images, image_size, image_size, 3), dtype=np.uint8,
                             chunks=(1, image_size, image_size, 3), compression="gzip", compression_opts=1)
        for n in range(n_images):
            d[n] = planted_image(latents[n], image_size, seed=1000 + n)
    facts = SimpleNamespace(root=root, subjects=list(subjects), sharedix=sharedix, subjectim=subjectim,
                            masterordering=masterordering, latents=latents, categories=categories, per_subject={})
    for m, p in enumerate(subjects):
        sid = f"subj{p:02d}"
        g = tuple(int(v) + m for v in grid)  # grids differ between subjects, as in the release
        affine = nsd_affine(g)
        i, j, k = np.meshgrid(*(np.arange(n) for n in g), indexing="ij")
        func = root / "nsddata" / "ppdata" / sid / "func1pt8mm"
        brainmask = (j < g[1] - 1).astype(np.int16)
        _save_nifti(brainmask, affine, func / "brainmask.nii.gz")
        cortical = (i > 0) & (brainmask > 0)
        nsdgeneral = np.where(cortical, ((i + j + k) % 3 != 0).astype(np.float32), -1.0).astype(np.float32)
        atlases = {"nsdgeneral": nsdgeneral}
        for n, (atlas, labels) in enumerate(NSD_ATLAS_LABELS.items()):
            if atlas != "nsdgeneral":
                vol = ((i * 3 + j * 2 + k + n) % (len(labels) + 1)).astype(np.float32)
                atlases[atlas] = np.where(cortical, vol, -1.0).astype(np.float32)
        for atlas, vol in atlases.items():
            _save_nifti(vol, affine, func / "roi" / f"{atlas}.nii.gz")
        label_dir = root / "nsddata" / "freesurfer" / sid / "label"
        label_dir.mkdir(parents=True, exist_ok=True)
        for atlas, labels in NSD_ATLAS_LABELS.items():
            lines = ["0 Unknown\t"] + [f"{n} {name}\t " for n, name in enumerate(labels, 1)]
            (label_dir / f"{atlas}.mgz.ctab").write_text("\n".join(lines) + "\n")
        signal = (nsdgeneral > 0) & ((i + 2 * j + k) % 2 == 0)
        image_of_trial = subjectim[p - 1, masterordering - 1] - 1  # nsdId per trial (datasets.md §1.5)
        pct, weights = _voxel_responses(latents[image_of_trial], signal.ravel(order="F"), rng, noise_sd)
        pct *= brainmask.ravel(order="F")[None, :]  # 0 outside the brain mask (datasets.md §1.3)
        raw = np.rint(pct * 300).astype(np.int16).T.reshape(g + (NSD_TRIALS,), order="F")  # (X, Y, Z, T)
        betas = root / "nsddata_betas" / "ppdata" / sid / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
        _save_nifti(raw, affine, betas / "betas_session01.nii.gz")
        with h5py.File(betas / "betas_session01.hdf5", "w") as f:
            f.create_dataset("betas", data=raw.transpose(3, 2, 1, 0), chunks=(NSD_TRIALS, 1, 1, 1))
        sd = (latents[image_of_trial] @ weights).std(axis=0).reshape(g, order="F")
        _save_nifti((sd / noise_sd).astype(np.float32), affine, betas / "ncsnr.nii.gz")
        facts.per_subject[p] = SimpleNamespace(
            grid=g, affine=affine, signal=signal, noise=(nsdgeneral > 0) & ~signal, nsdgeneral=nsdgeneral > 0,
            trials=_expected_trials([(1, NSD_TRIALS)], image_of_trial.tolist(), set((sharedix - 1).tolist())))
    return facts


#: BOLD5000 image names by category (datasets.md §2.4: COCO, ImageNet synset, SUN-style scene names)
B5K_NAMES = {"food": ("COCO", lambda n: f"COCO_train2014_{100000 + n:012d}.jpg"),
             "animals": ("ImageNet", lambda n: f"n02084071_{n + 1}.JPEG"),
             "vehicles": ("ImageNet", lambda n: f"n03791053_{n + 1}.JPEG"),
             "places": ("Scene", lambda n: f"street{n + 1}.jpg")}


def write_bold5000_dag_tree(root, subject=1, n_repeated=16, reps=4, n_single=158, trials_per_session=(111, 111),
                            grid=(7, 8, 6), noise_sd=1.0, image_size=375, seed=1):
    """A BOLD5000 Release 2.0 tree (datasets.md §2) for one subject: ``n_repeated`` images shown ``reps`` times and
    ``n_single`` once, in sessions of 37-trial runs; GLMsingle betas, imgnames, brain mask, the ten overlapping ROI
    masks, the repeated list and the presented images (categories balanced)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    assert n_repeated * reps + n_single == sum(trials_per_session)
    n_images = n_repeated + n_single
    categories = [PLANTED_CATEGORIES[n % len(PLANTED_CATEGORIES)] for n in rng.permutation(n_images)]
    counters = dict.fromkeys(PLANTED_CATEGORIES, 0)
    names = []
    for c in categories:
        names.append(B5K_NAMES[c][1](counters[c]))
        counters[c] += 1
    latents = planted_latents(categories, rng)
    presented = root / "BOLD5000_Stimuli" / "Scene_Stimuli" / "Presented_Stimuli"
    for n, (name, c) in enumerate(zip(names, categories)):
        _save_image(planted_image(latents[n], image_size, seed=5000 + n), presented / B5K_NAMES[c][0] / name)
    repeated = list(range(n_repeated))  # image indices
    order = rng.permutation(np.concatenate([np.repeat(repeated, reps), np.arange(n_repeated, n_images)]))
    shown = [names[n] for n in order]
    sid = f"CSI{subject}"
    glm = root / "GLMsingle"
    glm.mkdir(parents=True)
    (glm / f"{sid}_imgnames.txt").write_text("\n".join(shown) + "\n")
    (presented.parent / "repeated_stimuli_113_list.txt").write_text("\n".join(names[n] for n in repeated) + "\n")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    i, j, k = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")
    code = (i + grid[0] * j + grid[0] * grid[1] * k).ravel(order="F")
    n_vox = code.size
    step = n_vox // 12
    masks = {roi: ((code >= step * m) & (code < step * m + 2 * step)) for m, roi in enumerate(B5K_ROIS)}
    union = np.any(list(masks.values()), axis=0)
    spm = root / "derivatives" / "spm" / f"sub-{sid}"
    for roi, member in masks.items():
        _save_nifti(member.reshape(grid, order="F").astype(np.uint8), affine, spm / f"sub-{sid}_mask-{roi}.nii.gz")
    _save_nifti(np.ones(grid, np.uint8), affine, glm / f"{sid}_brainmask.nii.gz")
    signal = union & (code % 2 == 0)
    pct, _ = _voxel_responses(latents[order], signal, rng, noise_sd)
    start = 0
    for s, n in enumerate(trials_per_session, 1):
        block = pct[start:start + n].T.reshape(grid + (n,), order="F").astype(np.float32)
        _save_nifti(block, affine, glm / f"{sid}_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-{s:02d}.nii.gz")
        start += n
    sessions = list(enumerate(trials_per_session, 1))
    return SimpleNamespace(root=root, subject=subject, sid=sid, names=names, categories=dict(zip(names, categories)),
                           latents=dict(zip(names, latents)), repeated={names[n] for n in repeated}, grid=grid,
                           signal=signal.reshape(grid, order="F"), union=union.reshape(grid, order="F"),
                           noise=(union & ~signal).reshape(grid, order="F"),
                           trials=_expected_trials(sessions, shown, {names[n] for n in repeated}))


def write_things_eeg2_dag_tree(root, subjects=(1, 2, 3, 4, 5, 6), n_test=16, test_reps=20, n_train_concepts=4,
                               train_per_concept=2, train_reps=4, image_size=500, seed=2):
    """A THINGS-EEG2 root (datasets.md §3): preprocessed EEG of each subject (17 channels, 100 times, training and
    test parts), the image folders and ``image_metadata.npy``. Evoked response = Gaussian envelope (peak
    ``EEG_PEAK``, exactly 0 before ``EEG_ONSET``) x a subject's channel weights applied to the image's latent;
    noise N(0, 1) on every sample."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    parts = {}
    for part, n_concepts, per_concept, first in (("training", n_train_concepts, train_per_concept, 1),
                                                 ("test", n_test, 1, n_train_concepts + 1)):
        concepts = [f"{first + c:05d}_{part}concept{c}" for c in range(n_concepts)]
        folders = [c for c in concepts for _ in range(per_concept)]
        files = [f"{c.split('_', 1)[1]}_{n + 1:02d}{'bs'[n % 2]}.jpg" for c in concepts for n in range(per_concept)]
        cats = [PLANTED_CATEGORIES[n % len(PLANTED_CATEGORIES)] for n in range(len(files))]
        latents = planted_latents(cats, rng)
        for n, (folder, name) in enumerate(zip(folders, files)):
            _save_image(planted_image(latents[n], image_size, seed=9000 + 100 * first + n),
                        root / "image_set" / f"{part}_images" / folder / name)
        parts[part] = SimpleNamespace(concepts=folders, files=files, latents=latents)
    np.save(root / "image_set" / "image_metadata.npy", {
        "train_img_concepts": parts["training"].concepts, "train_img_files": parts["training"].files,
        "train_img_concepts_THINGS": parts["training"].concepts,
        "test_img_concepts": parts["test"].concepts, "test_img_files": parts["test"].files,
        "test_img_concepts_THINGS": parts["test"].concepts}, allow_pickle=True)
    envelope = np.where(EEG_TIMES >= EEG_ONSET, np.exp(-0.5 * ((EEG_TIMES - EEG_PEAK) / EEG_WIDTH) ** 2), 0.0)
    shared_weights = rng.normal(size=(len(EEG_CHANNELS), 2))
    for p in subjects:
        weights = 0.8 * shared_weights + 0.6 * rng.normal(size=shared_weights.shape)
        folder = root / "eeg_dataset" / "preprocessed_data" / f"sub-{p:02d}"
        folder.mkdir(parents=True)
        for part, n_rep in (("training", train_reps), ("test", test_reps)):
            evoked = (parts[part].latents @ weights.T)[:, :, None] * envelope[None, None, :]  # (cond, ch, t)
            data = evoked[:, None] + rng.normal(size=(len(evoked), n_rep, len(EEG_CHANNELS), len(EEG_TIMES)))
            np.save(folder / f"preprocessed_eeg_{part}.npy", {"preprocessed_eeg_data": data,
                                                               "ch_names": list(EEG_CHANNELS), "times": EEG_TIMES},
                    allow_pickle=True)
    return SimpleNamespace(root=root, subjects=list(subjects), train_files=parts["training"].files,
                           test_files=parts["test"].files, test_reps=test_reps, train_reps=train_reps,
                           onset=EEG_ONSET, peak=EEG_PEAK, width=EEG_WIDTH)


def write_unseen_images(folder, per_category=12, image_size=425, seed=3):
    """Images never shown in any tree: ``folder/<category>/unseen_<category>_NN.png``; returns
    {path relative to folder: category}."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    categories = [c for c in PLANTED_CATEGORIES for _ in range(per_category)]
    latents = planted_latents(categories, rng)
    paths = {}
    for n, c in enumerate(categories):
        rel = f"{c}/unseen_{c}_{n % per_category + 1:02d}.png"
        _save_image(planted_image(latents[n], image_size, seed=20000 + n), folder / rel)
        paths[rel] = c
    return paths


def write_category_csv(path, categories: dict):
    """A stimulus -> category table as a user writes it: CSV with a header line, one image per row."""
    path = Path(path)
    path.write_text("stimulus,category\n" + "".join(f"{s},{c}\n" for s, c in categories.items()))
    return path
