"""RSA on the device against rsatoolbox on the CPU (RDMs, comparisons, EEG time courses) and the cluster
permutation test on the device against the same test on the CPU (identical sign flips, float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
from rsatoolbox.data import Dataset, TemporalDataset
from rsatoolbox.rdm import RDMs, calc_rdm, calc_rdm_movie, compare

from brainalign import rsa
from gpu_data import DEVICE, MARKS, ON_CUDA

pytestmark = MARKS

N_CONDITIONS, N_CHANNELS = (600, 2000) if ON_CUDA else (60, 200)


def patterns(seed, n=N_CONDITIONS, p=N_CHANNELS):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 10))
    return (latent @ rng.standard_normal((10, p)) + 2 * rng.standard_normal((n, p)) + 3).astype(np.float32)


@pytest.mark.parametrize("method", ["correlation", "euclidean"])
def test_device_rdm_matches_rsatoolbox(method):
    x = patterns(1)
    got = rsa.compute_rdm(torch.as_tensor(x, device=DEVICE), method)
    assert got.device.type == DEVICE.type and got.dtype == torch.float32
    ref = calc_rdm(Dataset(x.astype(np.float64)), method=method).get_vectors()[0]
    np.testing.assert_allclose(got.cpu().numpy(), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["spearman", "corr"])
def test_device_comparison_matches_rsatoolbox(method):
    brain = calc_rdm(Dataset(patterns(2).astype(np.float64)), method="correlation").get_vectors()
    models = np.stack([calc_rdm(Dataset(patterns(s).astype(np.float64)), method="correlation").get_vectors()[0]
                       for s in (3, 4, 5)])
    models[2] = np.round(models[2] * 8) / 8  # heavy ties, as in categorical model RDMs
    got = rsa.compare_rdms(torch.as_tensor(models, device=DEVICE, dtype=torch.float32),
                           torch.as_tensor(brain, device=DEVICE, dtype=torch.float32), method)
    ref = compare(RDMs(models.astype(np.float32).astype(np.float64)),
                  RDMs(brain.astype(np.float32).astype(np.float64)), method=method)
    np.testing.assert_allclose(np.asarray(torch.as_tensor(got).cpu()).reshape(ref.shape), ref, atol=2e-5)


def test_device_eeg_timecourses_match_rsatoolbox():
    rng = np.random.default_rng(6)
    n_cond, n_reps, n_chan, n_t = (100, 2, 17, 40) if ON_CUDA else (20, 2, 8, 10)
    eeg = rng.standard_normal((n_cond, n_reps, n_chan, n_t)).astype(np.float32)
    rdms, _ = rsa.eeg_rdms(torch.as_tensor(eeg, device=DEVICE))
    assert rdms.device.type == DEVICE.type
    meas = eeg.transpose(1, 0, 2, 3).reshape(-1, n_chan, n_t).astype(np.float64)
    tds = TemporalDataset(meas, obs_descriptors={"conds": np.tile(np.arange(n_cond), n_reps)},
                          time_descriptors={"time": np.arange(n_t)})
    ref = calc_rdm_movie(tds, method="correlation", descriptor="conds").get_vectors()
    np.testing.assert_allclose(rdms.cpu().numpy(), ref, atol=2e-6)
    model = rng.random((3, rdms.shape[1]))
    curves = rsa.rsa_timecourses(torch.as_tensor(model, device=DEVICE, dtype=torch.float32), rdms[None],
                                 device=DEVICE)
    expected = compare(RDMs(model.astype(np.float32).astype(np.float64)), RDMs(ref), "spearman")
    np.testing.assert_allclose(curves[0], expected, atol=2e-5)


def test_device_cluster_test_equals_cpu_cluster_test():
    rng = np.random.default_rng(7)
    n_sub, n_t = 12, 120
    curves = scipy.ndimage.gaussian_filter1d(rng.standard_normal((n_sub, n_t)), 3, axis=1)
    curves[:, 40:60] += 0.8
    dev = rsa.cluster_permutation_test(curves, n_permutations=1000, seed=3, device=DEVICE)
    cpu = rsa.cluster_permutation_test(curves, n_permutations=1000, seed=3, device="cpu")
    np.testing.assert_allclose(dev.t_values, scipy.stats.ttest_1samp(curves, 0.0, axis=0).statistic, rtol=1e-9)
    np.testing.assert_allclose(dev.null_max_mass, cpu.null_max_mass, rtol=1e-9)
    assert [(c.start, c.stop, c.sign) for c in dev.clusters] == [(c.start, c.stop, c.sign) for c in cpu.clusters]
    assert [c.p_value for c in dev.clusters] == [c.p_value for c in cpu.clusters]
    assert dev.significant, "the planted effect at samples 40-60 must be found"
