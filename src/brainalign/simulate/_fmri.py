"""Planted fMRI subject: voxel model, noiseless responses and trial-by-trial betas (block-wise, bounded memory)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .brain import Layout, VoxelModel, calibrate, make_voxel_model, raw_drive


@dataclass
class FmriSubject:
    layout: Layout
    model: VoxelModel
    response: np.ndarray  # float32 (n_images, n_gt) percent signal change (baseline included)
    unseen_response: np.ndarray | None  # float32 (n_unseen, n_gt)
    brain_index: np.ndarray  # int64 (n_gt,): position of each ground-truth voxel in the brain vector
    brain_noise_sd: np.ndarray  # float32 (n_brain,)
    brain_baseline: np.ndarray  # float32 (n_brain,) mean of non-ground-truth voxels (0 for ground-truth ones)
    drive_norm: dict
    calibration: tuple  # (offset, gain)


def make_subject(layout: Layout, rng: np.random.Generator, feats: dict, cats: np.ndarray, lat: np.ndarray,
                 unseen: tuple | None = None) -> FmriSubject:
    """Draw a subject's planted voxels and compute noiseless responses to its images (and unseen ones).

    Parameters
    ----------
    feats, cats, lat
        Features, category indices (n_images,) and latents (n_images, 2) of the subject's images; these
        are the reference set on which each voxel's signal sd equals ``ncsnr * noise_sd``.
    unseen : (feats, cats, lat) or None
    """
    model = make_voxel_model(layout, rng)
    drive, norm = raw_drive(model, feats, cats, lat)
    offset, gain = calibrate(model, drive)
    response = (offset + gain * drive).astype(np.float32)
    unseen_response = None
    if unseen is not None:
        ud, _ = raw_drive(model, *unseen, norm=norm)
        unseen_response = (offset + gain * ud).astype(np.float32)
    brain = layout.brain
    lookup = np.full(brain.shape, -1, np.int64)
    lookup[brain] = np.arange(int(brain.sum()))
    brain_index = lookup[tuple(model.ijk.T)]
    n_brain = int(brain.sum())
    noise_sd = rng.uniform(1.5, 4.0, n_brain).astype(np.float32)
    baseline = rng.uniform(-0.5, 0.5, n_brain).astype(np.float32)
    noise_sd[brain_index] = model.noise_sd
    baseline[brain_index] = 0.0
    return FmriSubject(layout, model, response, unseen_response, brain_index, noise_sd, baseline, norm, (offset, gain))


def session_betas(subject: FmriSubject, image_rows: np.ndarray, session_offset: np.ndarray, rng_factory,
                  scale: float | None = None, block: int = 32768) -> np.ndarray:
    """Single-trial betas of one session for every brain voxel.

    Parameters
    ----------
    image_rows : numpy.ndarray
        int (n_trials,): row of ``subject.response`` shown on each trial.
    session_offset : numpy.ndarray
        float32 (n_brain,): this session's additive offset per voxel (percent signal change).
    rng_factory : callable
        ``rng_factory(block_index) -> Generator`` for the noise of each voxel block (determinism).
    scale : float or None
        None: float32 percent signal change; a number: round(x * scale) stored as int16 (NSD: 300).

    Returns
    -------
    numpy.ndarray
        (n_trials, n_brain) float32 or int16.
    """
    n_trials = len(image_rows)
    n_brain = len(subject.brain_noise_sd)
    out = np.empty((n_trials, n_brain), np.float32 if scale is None else np.int16)
    order = np.argsort(subject.brain_index)
    gt_sorted = subject.brain_index[order]
    for bi, b0 in enumerate(range(0, n_brain, block)):
        b1 = min(b0 + block, n_brain)
        rng = rng_factory(bi)
        x = rng.standard_normal((n_trials, b1 - b0), dtype=np.float32)
        x *= subject.brain_noise_sd[b0:b1]
        x += subject.brain_baseline[b0:b1] + session_offset[b0:b1]
        lo, hi = np.searchsorted(gt_sorted, [b0, b1])
        if hi > lo:
            cols = order[lo:hi]
            x[:, gt_sorted[lo:hi] - b0] += subject.response[image_rows][:, cols]
        if scale is None:
            out[:, b0:b1] = x
        else:
            out[:, b0:b1] = np.clip(np.rint(x * scale), -32768, 32767).astype(np.int16)
    return out
