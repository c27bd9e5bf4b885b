"""Simulated NSD tree (datasets.md §1): betas (.nii.gz + .hdf5), ncsnr, design .mat, stimulus CSV,
imgBrick, brainmask, ROI volumes and ctabs, plus ground truth."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io

from .._io import progress
from ._fmri import make_subject, session_betas
from ._nifti import centred_affine, stream_nifti, write_nifti
from .brain import NSD_ATLASES, ROLES, build_layout, mean_epi, roi_volume
from .config import NSD_REPS, NSD_TRIALS_PER_SESSION, SimConfig
from .image_sets import (balanced_categories, category_index, latents, make_image_params_for, params_table, render_all,
                         subset_features)
from .seeds import rng_for

VOXEL_MM = 1.8
TR = 4 / 3
RUN_TRIALS = [63, 62] * 6  # 12 runs, odd runs (1-based) 63 stimulus trials, even runs 62
RUN_SLOTS = 75
BETAVER = "betas_fithrf_GLMdenoise_RR"
#: real grid differences of subj02..08 relative to subj01 (datasets.md §1.2), scaled to the chosen grid
_GRID_DELTA = [(0, 0, 0), (1, 2, 1), (0, 2, -1), (4, -5, -3), (-2, -7, -5), (4, 9, 0), (-3, -9, -2), (-1, -1, -5)]


def subject_grid(grid, p: int) -> tuple:
    """Grid of subject index p (0-based): the configured grid for subj01, real-like offsets for others."""
    base = np.array([81, 104, 83], float)
    return tuple(int(g + round(d * g / b)) for g, d, b in zip(grid, _GRID_DELTA[p], base))


def make_design(cfg: SimConfig, seed: int) -> dict:
    """The experimental design: 73k IDs, subjectim, masterordering, sharedix, image categories.

    Returns a dict with ``n_images`` N, ``masterordering`` int (750*S,) 1-based 10k indices, ``subjectim``
    int (8, K) 1-based 73k IDs, ``sharedix`` int (n_shared,) 1-based ascending, ``categories`` str (N,) by
    0-based nsdId, ``basiccnt`` (3, S), ``stimpattern`` (S, 12, 75).
    """
    rng = rng_for(seed, "nsd")
    S, K, n_shared, n_sub = cfg.nsd_sessions, cfg.nsd_images_per_subject, cfg.nsd_shared, cfg.nsd_subjects
    n_unique = K - n_shared
    N = n_shared + n_sub * n_unique
    perm = rng.permutation(N)
    shared = np.sort(perm[:n_shared])
    subjectim = np.zeros((8, K), np.int64)
    for p in range(8):
        q = p % n_sub  # rows of unsimulated subjects reuse a simulated subject's (valid) IDs
        own = perm[n_shared + q * n_unique: n_shared + (q + 1) * n_unique]
        subjectim[p] = np.concatenate([shared, own]) + 1
    masterordering = rng.permutation(np.repeat(np.arange(1, K + 1), NSD_REPS)).astype(np.int64)
    # basiccnt: per session, number of trials that are the 1st / 2nd / 3rd presentation of their image
    seen = np.zeros(K + 1, int)
    basiccnt = np.zeros((3, S), np.int64)
    for t, ix in enumerate(masterordering):
        basiccnt[seen[ix], t // NSD_TRIALS_PER_SESSION] += 1
        seen[ix] += 1
    stimpattern = np.zeros((S, 12, RUN_SLOTS), np.uint8)
    for s in range(S):
        for r, n_stim in enumerate(RUN_TRIALS):
            slots = rng.choice(np.arange(3, RUN_SLOTS - 3), size=n_stim, replace=False)
            stimpattern[s, r, slots] = 1
    return {"n_images": N, "masterordering": masterordering, "subjectim": subjectim, "sharedix": shared + 1,
            "categories": balanced_categories(N, rng), "basiccnt": basiccnt, "stimpattern": stimpattern}


def _stim_info(design: dict, cfg: SimConfig, seed: int) -> pd.DataFrame:
    rng = rng_for(seed, "nsd", 1)
    N = design["n_images"]
    shared = set((design["sharedix"] - 1).tolist())
    crop = ["(0, 0, 0.1671875, 0.1671875)", "(0, 0, 0.125, 0.125)", "(0.1, 0.1, 0, 0)", "(0, 0, 0, 0)"]
    df = pd.DataFrame({
        "cocoId": rng.choice(np.arange(1, 581_930), N, replace=False),
        "cocoSplit": np.where(rng.uniform(size=N) < 0.1, "val2017", "train2017"),
        "cropBox": [crop[k] for k in rng.integers(0, len(crop), N)],
        "loss": np.round(np.where(rng.uniform(size=N) < 0.7, 0.0, rng.uniform(0, 0.2, N)), 6),
        "nsdId": np.arange(N),
        "flagged": rng.uniform(size=N) < 0.01,
        "BOLD5000": np.zeros(N, bool),
        "shared1000": np.array([i in shared for i in range(N)]),
    })
    n_trials = NSD_TRIALS_PER_SESSION * cfg.nsd_sessions
    mo = design["masterordering"]
    reps = np.zeros((8, N, 3), np.int64)
    shown = np.zeros((8, N), np.int64)
    for p in range(cfg.nsd_subjects):
        counts = np.zeros(N, int)
        ids = design["subjectim"][p, mo[:n_trials] - 1] - 1
        for t, i in enumerate(ids, start=1):
            reps[p, i, counts[i]] = t
            counts[i] += 1
        shown[p] = counts > 0
    for p in range(8):
        df[f"subject{p + 1}"] = shown[p]
    for p in range(8):
        for r in range(3):
            df[f"subject{p + 1}_rep{r}"] = reps[p, :, r]
    return df


def write_nsd(root, cfg: SimConfig, seed: int, gt_dir, unseen=None) -> dict:
    """Write the NSD tree under ``root`` (= DIR/nsd) and its ground truth under ``gt_dir``.

    Parameters
    ----------
    unseen : (feats, cats, lat) or None
        Unseen-image features; each subject's noiseless responses to them go into its ground truth.

    Returns
    -------
    dict
        Summary (subjects, sessions, n_images, grids).
    """
    root, gt_dir = Path(root), Path(gt_dir)
    design = make_design(cfg, seed)
    N = design["n_images"]
    S = cfg.nsd_sessions
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True)
    scipy.io.savemat(exp / "nsd_expdesign.mat", {
        "masterordering": design["masterordering"][None, :],
        "subjectim": design["subjectim"],
        "sharedix": design["sharedix"][None, :],
        "basiccnt": design["basiccnt"],
        "stimpattern": design["stimpattern"],
    }, do_compression=False)
    info = _stim_info(design, cfg, seed)
    info.to_csv(exp / "nsd_stim_info_merged.csv")
    info.to_pickle(exp / "nsd_stim_info_merged.pkl")

    # stimuli: imgBrick, one gzip chunk per image
    params = make_image_params_for(design["categories"], seed, "nsd_images")
    stim_dir = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim_dir.mkdir(parents=True)
    with h5py.File(stim_dir / "nsd_stimuli.hdf5", "w") as f:
        brick = f.create_dataset("imgBrick", shape=(N, 425, 425, 3), dtype=np.uint8, chunks=(1, 425, 425, 3),
                                 compression="gzip", compression_opts=1)

        def sink(k, img):
            brick[k] = img

        feats = render_all(params, 425, sink, desc="NSD images")
    table = params_table(params, feats)
    table.insert(0, "nsdId", np.arange(N))
    table.insert(0, "stimulus", np.arange(N))
    table["shared"] = info["shared1000"].to_numpy()
    table["cocoId"] = info["cocoId"].to_numpy()
    table.to_parquet(gt_dir / "nsd_images.parquet", index=False)
    cats_all = category_index(params)
    lat_all = latents(params)

    for stem, names in NSD_ATLASES.items():
        for sub in [f"subj{p + 1:02d}" for p in range(cfg.nsd_subjects)] + ["fsaverage"]:
            d = root / "nsddata" / "freesurfer" / sub / "label"
            d.mkdir(parents=True, exist_ok=True)
            write_ctab(d / f"{stem}.mgz.ctab", names)

    mo = design["masterordering"]
    grids = {}
    for p in progress(range(cfg.nsd_subjects), desc="NSD subjects", leave=False):
        subj = f"subj{p + 1:02d}"
        shape = subject_grid(cfg.nsd_grid, p)
        grids[subj] = shape
        affine = centred_affine(shape, VOXEL_MM)
        layout = build_layout(shape)
        ids = design["subjectim"][p] - 1  # 0-based nsdId per 10k column
        subject = make_subject(layout, rng_for(seed, "nsd_subject", p), subset_features(feats, ids),
                               cats_all[ids], lat_all[ids], unseen)
        ppd = root / "nsddata" / "ppdata" / subj / "func1pt8mm"
        (ppd / "roi").mkdir(parents=True)
        write_nifti(ppd / "brainmask.nii.gz", layout.brain.astype(np.int16), affine)
        write_nifti(ppd / "mean.nii.gz", mean_epi(layout), affine)
        for stem in NSD_ATLASES:
            write_nifti(ppd / "roi" / f"{stem}.nii.gz", roi_volume(layout, stem).astype(np.float32), affine)
            for hemi in ("lh", "rh"):
                write_nifti(ppd / "roi" / f"{hemi}.{stem}.nii.gz", roi_volume(layout, stem, hemi).astype(np.float32), affine)
        bdir = root / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / BETAVER
        bdir.mkdir(parents=True)
        ncsnr = np.zeros(shape, np.float32)
        ncsnr[tuple(subject.model.ijk.T)] = subject.model.ncsnr
        write_nifti(bdir / "ncsnr.nii.gz", ncsnr, affine)

        n_brain = len(subject.brain_noise_sd)
        brain_ijk = np.argwhere(layout.brain)
        offsets_gt = np.zeros((S, len(subject.brain_index)), np.float32)
        for s in range(S):
            rows = mo[s * NSD_TRIALS_PER_SESSION:(s + 1) * NSD_TRIALS_PER_SESSION] - 1
            offset = rng_for(seed, "nsd_noise", p, s, 10**6).normal(0, 0.5, n_brain).astype(np.float32)
            offsets_gt[s] = offset[subject.brain_index]
            betas = session_betas(subject, rows, offset, lambda b, s=s: rng_for(seed, "nsd_noise", p, s, b), scale=300)
            _write_session(bdir, s + 1, betas, brain_ijk, shape, affine)
            del betas
        trial_ids = ids[mo - 1]
        m = subject.model
        np.savez_compressed(
            gt_dir / f"nsd_{subj}.npz",
            voxel_ijk=m.ijk, role=m.role, roles=np.array(ROLES),
            ncsnr=m.ncsnr, noise_sd=m.noise_sd, baseline=m.baseline,
            prf_x=m.prf_x, prf_y=m.prf_y, prf_sigma=m.prf_sigma, orientation=m.orientation,
            feature_weights=m.weights, category_tuning=m.category_tuning,
            **{f"roi_{stem}": layout.atlases[stem][tuple(m.ijk.T)] for stem in NSD_ATLASES},
            response=subject.response, image_ids=ids.astype(np.int64),
            trial_image_ids=trial_ids.astype(np.int64), session_offset=offsets_gt,
            unseen_response=subject.unseen_response if subject.unseen_response is not None else np.zeros((0, len(m.role)), np.float32),
            grid_shape=np.array(shape), affine=affine,
        )
    return {"subjects": cfg.nsd_subjects, "sessions": S, "n_images": N, "grids": grids}


def _write_session(bdir: Path, session: int, betas: np.ndarray, brain_ijk: np.ndarray, shape, affine) -> None:
    """betas int16 (750, n_brain) -> betas_sessionSS.nii.gz (X,Y,Z,750) and .hdf5 /betas (750,Z,Y,X)."""
    X, Y, Z = shape
    n_t = betas.shape[0]
    ii, jj, kk = brain_ijk.T

    def volumes():
        vol = np.zeros(shape, np.int16)
        for t in range(n_t):
            vol[ii, jj, kk] = betas[t]
            yield vol

    stream_nifti(bdir / f"betas_session{session:02d}.nii.gz", (X, Y, Z, n_t), np.int16, affine, volumes(), tr=TR)
    with h5py.File(bdir / f"betas_session{session:02d}.hdf5", "w") as f:
        dset = f.create_dataset("betas", shape=(n_t, Z, Y, X), dtype=np.int16, chunks=(n_t, 1, 1, 1))
        order = np.argsort(kk, kind="stable")
        bounds = np.searchsorted(kk[order], np.arange(Z + 1))
        for z in range(Z):
            sel = order[bounds[z]:bounds[z + 1]]
            slab = np.zeros((n_t, Y, X), np.int16)
            slab[:, jj[sel], ii[sel]] = betas[:, sel]
            dset[:, z] = slab


def write_ctab(path, names) -> None:
    """FreeSurfer-style text label table: '0 Unknown' then 'index name' per line."""
    lines = ["0 Unknown"] + [f"{i} {n}" for i, n in enumerate(names, start=1)]
    path.write_text("\n".join(lines) + "\n")
