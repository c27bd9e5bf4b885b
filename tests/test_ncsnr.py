"""NSD ncsnr and the noise ceiling derived from it, against closed forms (datasets.md §1.4, methods.md §4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.ncsnr import ncsnr_from_betas, noise_ceiling_from_ncsnr


def _triplets(d, n_images=40, seed=0):
    """Each image: 3 trials mu + d*(-1, 0, 1): unbiased variance across its trials is exactly d**2."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n_images, len(d)))
    offsets = np.array([-1.0, 0.0, 1.0])[:, None]
    betas = np.concatenate([m + offsets * d for m in mu])
    stim = np.repeat(np.arange(n_images), 3)
    return betas, stim


def test_ncsnr_closed_form():
    d = np.array([0.1, 0.5, 0.9, 1.2])
    betas, stim = _triplets(d)
    # stimuli with 2 trials and one with 4 must be ignored
    extra = np.array([[100.0] * 4, [-100.0] * 4, [50.0] * 4, [0.0] * 4, [9.0] * 4, [-9.0] * 4])
    betas = np.concatenate([betas, extra])
    stim = np.concatenate([stim, [1000, 1000, 1001, 1001, 1001, 1001]])
    got = ncsnr_from_betas(betas, stim, zscore=False)
    expected = np.sqrt(np.maximum(0, 1 - d ** 2)) / d
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got[-1] == 0  # v > 1 -> ncsnr 0


def test_ncsnr_splits_odd_even_images():
    d = np.array([0.3])
    betas, stim = _triplets(d, n_images=10)
    betas[stim % 2 == 1] *= 2.0  # odd image ids (2nd, 4th, ... in sorted order): noise sd 0.6
    s1 = ncsnr_from_betas(betas, stim, zscore=False, split=1)
    s2 = ncsnr_from_betas(betas, stim, zscore=False, split=2)
    np.testing.assert_allclose(s1, np.sqrt(1 - 0.09) / 0.3, rtol=1e-5)
    np.testing.assert_allclose(s2, np.sqrt(1 - 0.36) / 0.6, rtol=1e-5)


def test_ncsnr_zscored_recovers_snr():
    rng = np.random.default_rng(3)
    n_img, sig, noise = 3000, 0.8, 0.6  # sig^2 + noise^2 = 1 -> ncsnr = sig / noise
    signal = rng.normal(scale=sig, size=(n_img, 2))
    stim = np.tile(np.arange(n_img), 3)
    betas = signal[stim] + rng.normal(scale=noise, size=(3 * n_img, 2))
    sessions = np.repeat([1, 2, 3], n_img)
    betas[sessions == 2] = betas[sessions == 2] * 5 + 3  # per-session scale/offset removed by z-scoring
    got = ncsnr_from_betas(betas, stim, sessions=sessions)
    np.testing.assert_allclose(got, sig / noise, rtol=0.05)


def test_noise_ceiling_formulas():
    ncsnr = np.array([0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(noise_ceiling_from_ncsnr(ncsnr, 3, percent=True), 100 * ncsnr ** 2 / (ncsnr ** 2 + 1 / 3))
    np.testing.assert_allclose(noise_ceiling_from_ncsnr(ncsnr, 1), ncsnr ** 2 / (ncsnr ** 2 + 1))
    counts = np.array([3] * 5 + [2] * 3 + [1] * 2)  # Algonauts mixed repetitions
    n3, n2, n1 = 5, 3, 2
    a = (n3 / 3 + n2 / 2 + n1 / 1) / (n3 + n2 + n1)
    np.testing.assert_allclose(noise_ceiling_from_ncsnr(ncsnr, counts), ncsnr ** 2 / (ncsnr ** 2 + a))
    with pytest.raises(ValueError):
        noise_ceiling_from_ncsnr(ncsnr, [3, 0])
    with pytest.raises(ValueError):
        noise_ceiling_from_ncsnr(ncsnr, [3, 0.5])  # a repetition count is a whole number >= 1


def test_dead_voxel_ncsnr_is_nan_without_warnings():
    """A dead voxel (constant in every session, or over all trials) has neither signal nor noise: 0 / 0 -> NaN,
    and so its noise ceiling is NaN, silently (no RuntimeWarning); a noise-free voxel (repetitions identical,
    values varying over images) keeps a huge or infinite ncsnr, whose noise ceiling is 1 (the limit for inf)."""
    d = np.array([0.3, 0.0, 0.0, 0.0])
    betas, stim = _triplets(d, n_images=12)
    betas[:, 1] = 7.0  # dead everywhere
    sessions = np.repeat([1, 2, 3], len(stim) // 3)
    betas[:, 2] = np.where(sessions == 2, 5.0, -1.0)  # constant within each session: z-scored to 0 everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = ncsnr_from_betas(betas, stim, sessions=sessions)
        raw = ncsnr_from_betas(betas, stim, zscore=False)
        nc = noise_ceiling_from_ncsnr(z, 3)
        nc_raw = noise_ceiling_from_ncsnr(raw, 3, percent=True)
    assert np.isnan(z[[1, 2]]).all() and np.isnan(nc[[1, 2]]).all()
    assert np.isnan(raw[1]) and np.isnan(nc_raw[1])
    assert raw[3] > 1e6 and nc_raw[3] == pytest.approx(100.0)  # noise-free (up to rounding), not dead
    np.testing.assert_allclose(raw[0], np.sqrt(1 - 0.09) / 0.3, rtol=1e-5)
    assert noise_ceiling_from_ncsnr(np.inf, 3) == 1.0 and np.isnan(noise_ceiling_from_ncsnr(np.nan, 3))
