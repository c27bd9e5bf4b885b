"""Simulated BOLD5000 Release 2.0 tree (datasets.md §2; layout in docs/DEVELOPING.md), plus ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .._io import progress
from ._fmri import make_subject, session_betas
from ._nifti import centred_affine, stream_nifti, write_nifti
from .brain import NSD_ATLASES, ROLES, bold5000_masks, build_layout
from .config import SimConfig
from .image_sets import category_index, latents, make_image_params_for, params_table, render_all
from .images import CATEGORIES
from .seeds import rng_for

VOXEL_MM = 2.0
TR = 2.0
TRIALS_PER_RUN = 37
RUNS_PER_SESSION = [10, 10, 10, 9, 10, 9, 10, 9, 9, 10, 9, 9, 9, 9, 10]  # CSI1 (datasets.md §2.1)
GLM = "GLMbetas-TYPED-FITHRF-GLMDENOISE-RR"
ROI_NAMES = ("EarlyVis", "LOC", "OPA", "PPA", "RSC")
#: misnamed files of the release (datasets.md §2.5): subject -> {true name: file name}
MISNAMED = {2: {"LHLOC": "LHLO", "RHLOC": "RHLO", "RHRSC": "RHRRSC"}, 3: {"LHLOC": "LHLO", "RHLOC": "RHLO"}}
_GRID_DELTA = [(0, 0, 0), (1, 3, -2), (1, -1, -5), (-1, 0, -2)]  # CSI2-4 relative to CSI1 (71, 89, 72)
SCENE_WORDS = ["ATM", "airplanecabin", "airport", "alley", "amusementpark", "aquarium", "auditorium", "bakery",
               "ballroom", "barn", "bathroom", "beach", "bedroom", "bookstore", "bridge", "canyon", "castle",
               "chapel", "church", "classroom", "concert", "corridor", "desert", "diner", "forest", "garage",
               "gasstation", "greenhouse", "gym", "harbor", "highway", "kitchen", "library", "lighthouse",
               "livingroom", "market", "mountain", "museum", "office", "playground", "restaurant", "stadium",
               "street", "subway", "tower", "valley", "warehouse"]


def _stimulus_names(n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique presented-stimulus names with their source and planted category (release naming)."""
    source = rng.choice(np.array(["COCO", "ImageNet", "Scene"]), n, p=np.array([2000, 1916, 1000]) / 4916)
    coco_ids = iter(rng.choice(np.arange(1, 581_930), n, replace=False))
    synsets = rng.choice(np.arange(1_440_764, 4_600_000), max(1, n // 4), replace=False)
    used, names, cats, scene_count = set(), [], [], {}
    for src in source:
        while True:
            if src == "COCO":
                name = f"COCO_train2014_{next(coco_ids):012d}.jpg"
                cat = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
            elif src == "ImageNet":
                name = f"n{int(rng.choice(synsets)):08d}_{int(rng.integers(1, 60000))}.JPEG"
                cat = str(rng.choice(["objects", "bodies", "faces", "words"], p=[0.55, 0.2, 0.15, 0.1]))
            else:
                w = str(rng.choice(SCENE_WORDS))
                scene_count[w] = scene_count.get(w, 0) + 1
                name = f"{w}{scene_count[w]}." + ("jpeg" if rng.uniform() < 0.1 else "jpg")
                cat = "places"
            if name not in used:
                break
        used.add(name)
        names.append(name)
        cats.append(cat)
    return np.array(names), source, np.array(cats)


def write_bold5000(root, cfg: SimConfig, seed: int, gt_dir, unseen=None) -> dict:
    """Write the BOLD5000 tree under ``root`` (= DIR/bold5000) and ground truth under ``gt_dir``.

    All subjects see the same image set (as CSI1-3 do), in their own random trial order; the repeated
    images are shown 4 times, all others once.
    """
    root, gt_dir = Path(root), Path(gt_dir)
    rng = rng_for(seed, "b5k")
    runs = RUNS_PER_SESSION[: cfg.b5k_sessions]
    n_trials = TRIALS_PER_RUN * sum(runs)
    n_rep = max(3, round(n_trials * 113 / 5254))
    n_once = n_trials - 4 * n_rep
    n_unique = n_once + n_rep
    names, source, cats = _stimulus_names(n_unique, rng)
    repeated = np.zeros(n_unique, bool)
    repeated[rng.choice(n_unique, n_rep, replace=False)] = True

    stim_root = root / "BOLD5000_Stimuli" / "Scene_Stimuli"
    pres = stim_root / "Presented_Stimuli"
    for src in ("COCO", "ImageNet", "Scene"):
        (pres / src).mkdir(parents=True)
    (stim_root / "repeated_stimuli_113_list.txt").write_text("".join(f"{n}\n" for n in names[repeated]))
    params = make_image_params_for(cats, seed, "b5k_images")

    def sink(k, img):
        Image.fromarray(img).save(pres / source[k] / names[k], format="JPEG", quality=90)

    feats = render_all(params, 375, sink, desc="BOLD5000 images")
    table = params_table(params, feats)
    table.insert(0, "source", source)
    table.insert(0, "path", [f"BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli/{s}/{n}" for s, n in zip(source, names)])
    table.insert(0, "stimulus", names)
    table["repeated"] = repeated
    table.to_parquet(gt_dir / "bold5000_images.parquet", index=False)
    cat_idx, lat = category_index(params), latents(params)

    glm = root / "GLMsingle"
    glm.mkdir(parents=True)
    grids = {}
    for s_i in progress(range(cfg.b5k_subjects), desc="BOLD5000 subjects", leave=False):
        N = s_i + 1
        shape = tuple(int(g + round(d * g / b)) for g, d, b in zip(cfg.b5k_grid, _GRID_DELTA[s_i], (71, 89, 72)))
        grids[f"CSI{N}"] = shape
        affine = centred_affine(shape, VOXEL_MM)
        srng = rng_for(seed, "b5k_subject", N)
        order = srng.permutation(np.concatenate([np.flatnonzero(~repeated), np.repeat(np.flatnonzero(repeated), 4)]))
        (glm / f"CSI{N}_imgnames.txt").write_text("".join(f"{names[k]}\n" for k in order))
        layout = build_layout(shape)
        subject = make_subject(layout, srng, feats, cat_idx, lat, unseen)
        write_nifti(glm / f"CSI{N}_brainmask.nii.gz", layout.brain.astype(np.uint8), affine)
        masks = bold5000_masks(layout)
        mdir = root / "derivatives" / "spm" / f"sub-CSI{N}"
        mdir.mkdir(parents=True)
        for name, m in masks.items():
            fname = MISNAMED.get(N, {}).get(name, name)
            write_nifti(mdir / f"sub-CSI{N}_mask-{fname}.nii.gz", m.astype(np.uint8), affine)
        n_brain = len(subject.brain_noise_sd)
        ii, jj, kk = np.argwhere(layout.brain).T
        offsets_gt, trial_session, start = [], [], 0
        for ses, n_runs in enumerate(runs, start=1):
            n = TRIALS_PER_RUN * n_runs
            rows = order[start:start + n]
            start += n
            trial_session += [ses] * n
            offset = rng_for(seed, "b5k_noise", N, ses, 10**6).normal(0, 0.5, n_brain).astype(np.float32)
            offsets_gt.append(offset[subject.brain_index])
            betas = session_betas(subject, rows, offset, lambda b, ses=ses: rng_for(seed, "b5k_noise", N, ses, b))

            def volumes(betas=betas):
                vol = np.zeros(shape, np.float32)
                for t in range(betas.shape[0]):
                    vol[ii, jj, kk] = betas[t]
                    yield vol

            stream_nifti(glm / f"CSI{N}_{GLM}_ses-{ses:02d}.nii.gz", (*shape, n), np.float32, affine, volumes(), tr=TR)
        m = subject.model
        sel = tuple(m.ijk.T)
        np.savez_compressed(
            gt_dir / f"bold5000_CSI{N}.npz",
            voxel_ijk=m.ijk, role=m.role, roles=np.array(ROLES), ncsnr=m.ncsnr, noise_sd=m.noise_sd,
            baseline=m.baseline, prf_x=m.prf_x, prf_y=m.prf_y, prf_sigma=m.prf_sigma, orientation=m.orientation,
            feature_weights=m.weights, category_tuning=m.category_tuning,
            **{f"mask_{name}": masks[name][sel] for name in masks},
            **{f"roi_{stem}": layout.atlases[stem][sel] for stem in NSD_ATLASES},
            response=subject.response, image_names=names, trial_image_names=names[order],
            trial_session=np.array(trial_session, np.int64), session_offset=np.stack(offsets_gt),
            unseen_response=subject.unseen_response if subject.unseen_response is not None else np.zeros((0, len(m.role)), np.float32),
            grid_shape=np.array(shape), affine=affine,
        )
    return {"subjects": cfg.b5k_subjects, "sessions": len(runs), "n_trials": n_trials, "n_images": n_unique,
            "n_repeated": n_rep, "grids": grids}
