"""``brainalign rsa --rdm-method crossnobis`` with K >= 3 folds holding unequal numbers of trials: the brain RDMs
equal rsatoolbox's trial-level ``calc_rdm(..., method="crossnobis", cv_descriptor=fold)`` (fold = repetition rank
modulo K, docs/rsa.md), for fMRI and EEG stores."""

import warnings

import numpy as np
import pandas as pd
import pytest
from rsatoolbox.data import Dataset
from rsatoolbox.rdm import calc_rdm
from rsa_inputs import trial_table, write_feature_cache, write_two_roi_store

from brainalign.cli import main
from brainalign.store import write_eeg_store


def _order(rng, stim, reps):
    """Trial order: stimulus s shown reps[s] times, shuffled."""
    order = np.concatenate([[s] * r for s, r in zip(stim, reps)])
    return order[rng.permutation(len(order))]


def _reference(data, order, n_folds):
    """rsatoolbox's trial-level crossnobis, folds = repetition rank modulo n_folds (data: float32 as stored)."""
    rank = pd.Series(order).groupby(order).cumcount().to_numpy()
    ds = Dataset(data.astype(np.float32).astype(float), obs_descriptors={"stim": order, "fold": rank % n_folds})
    with warnings.catch_warnings():  # rsatoolbox fills an int descriptor with NaN internally
        warnings.simplefilter("ignore", RuntimeWarning)
        return calc_rdm(ds, method="crossnobis", descriptor="stim", cv_descriptor="fold").get_vectors()[0]


@pytest.mark.parametrize("cv_folds", [None, 3])
def test_fmri_crossnobis_with_unequal_trials_per_fold_matches_rsatoolbox(tmp_path, cv_folds):
    """4 or 5 repetitions per stimulus: default K = 4 (folds of 2, 1, 1, 1 trials for the 5-repetition stimuli),
    --cv-folds 3 (2, 1, 1 or 2, 2, 1)."""
    rng = np.random.default_rng(11)
    n_stim, n_vox = 10, 24
    stim = np.arange(n_stim) * 7
    latent = rng.standard_normal((n_stim, 4))
    latent[:3] = latent[0]  # identical true patterns: distances scatter around 0
    paths, data = [], []
    for k in range(2):
        order = _order(rng, stim, np.where(np.arange(n_stim) % 2 == k, 5, 4))
        betas = (latent @ rng.standard_normal((4, n_vox)))[order // 7] + rng.standard_normal((len(order), n_vox)) + 3
        path = tmp_path / f"sub{k + 1}.zarr"
        labels = write_two_roi_store(path, betas, trial_table(order), (4, 3, 2), {"subject": f"subj0{k + 1}"})
        paths.append(str(path))
        data.append((order, betas, labels))
    cache = write_feature_cache(tmp_path / "net.zarr", stim, {"conv": latent @ rng.standard_normal((4, 9))})
    out = tmp_path / "out"
    args = ["rsa", "--features", str(cache), "--stores", *paths, "--rois", "atlas/V1", "atlas/LO",
            "--rdm-method", "crossnobis", "--n-boot", "0", "--out", str(out)]
    assert main(args + (["--cv-folds", str(cv_folds)] if cv_folds else [])) == 0
    n_folds = cv_folds or 4
    with np.load(out / "rdms_fmri.npz") as z:
        assert list(z["cv_folds"]) == [n_folds, n_folds]
        assert list(z["stimulus_ids"]) == [str(s) for s in stim]
        for k, (order, betas, labels) in enumerate(data):
            for roi, lab in (("atlas/V1", 1), ("atlas/LO", 2)):
                ref = _reference(betas[:, labels == lab], order, n_folds)
                np.testing.assert_allclose(z[f"brain/subj0{k + 1}/{roi}"], ref, rtol=1e-4,
                                           atol=1e-5 * np.abs(ref).max())


def test_eeg_crossnobis_with_unequal_trials_per_fold_matches_rsatoolbox(tmp_path):
    rng = np.random.default_rng(12)
    n_stim, n_chan, n_t = 8, 5, 3
    stim = np.arange(n_stim)
    latent = rng.standard_normal((n_stim, n_chan, n_t))
    paths, data = [], []
    for k in range(2):
        order = _order(rng, stim, np.full(n_stim, 5))  # 5 repetitions in 3 folds: 2, 2, 1 trials
        eeg = latent[order] + rng.standard_normal((len(order), n_chan, n_t))
        path = tmp_path / f"sub-{k + 1:02d}.zarr"
        write_eeg_store(path, eeg, trial_table(order), [f"ch{c}" for c in range(n_chan)], np.linspace(0, 0.2, n_t),
                        attrs={"subject": f"sub-{k + 1:02d}"})
        paths.append(str(path))
        data.append((order, eeg))
    cache = write_feature_cache(tmp_path / "net.zarr", stim, {"IT": rng.standard_normal((n_stim, 6))})
    out = tmp_path / "out"
    assert main(["rsa", "--features", str(cache), "--eeg-stores", *paths, "--rdm-method", "crossnobis",
                 "--cv-folds", "3", "--n-permutations", "8", "--n-boot", "0", "--out", str(out)]) == 0
    with np.load(out / "rdms_eeg.npz") as z:
        for k, (order, eeg) in enumerate(data):
            for t in range(n_t):
                ref = _reference(eeg[..., t], order, 3)
                np.testing.assert_allclose(z["eeg"][k, t], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
