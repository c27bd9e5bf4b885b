"""brainalign.rsa core against rsatoolbox / scipy references (independent implementations)."""

import warnings

import numpy as np
import pytest
import rsatoolbox
import scipy.ndimage
import scipy.stats
from rsatoolbox.data import Dataset, TemporalDataset
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs, calc_rdm, calc_rdm_movie, compare
from scipy.spatial.distance import pdist

from brainalign import rsa


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ref_rdm(x, method, **kw):
    ds = Dataset(x, obs_descriptors={"conds": np.arange(len(x))})
    return calc_rdm(ds, method=method, descriptor="conds", **kw).get_vectors()[0]


def _spd(c, rng):
    a = rng.standard_normal((c, c))
    return a @ a.T / c + np.eye(c)


# ---------------------------------------------------------------- RDMs
@pytest.mark.parametrize("method", ["correlation", "euclidean"])
def test_rdm_matches_rsatoolbox(method):
    x = _rng(1).standard_normal((40, 60)) + 3.0
    ours = rsa.compute_rdm(x, method)
    ref = _ref_rdm(x, method)
    assert ours.dtype == np.float32 and ours.shape == (40 * 39 // 2,)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=2e-6 * np.abs(ref).max())


def test_mahalanobis_matches_rsatoolbox():
    rng = _rng(2)
    x = rng.standard_normal((25, 12))
    w = _spd(12, rng)
    ref = _ref_rdm(x, "mahalanobis", noise=w)
    np.testing.assert_allclose(rsa.compute_rdm(x, "euclidean", noise=w), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_matches_rsatoolbox(with_noise):
    rng = _rng(3)
    n_folds, n_cond, n_chan = 4, 20, 15
    signal = rng.standard_normal((n_cond, n_chan))
    signal[:6] = signal[0]  # identical true patterns: expected distance 0, estimates scatter around it
    x = signal[None] + rng.standard_normal((n_folds, n_cond, n_chan))
    w = _spd(n_chan, rng) if with_noise else None
    meas = x.reshape(-1, n_chan)
    ds = Dataset(meas, obs_descriptors={"conds": np.tile(np.arange(n_cond), n_folds),
                                        "runs": np.repeat(np.arange(n_folds), n_cond)})
    ref = calc_rdm(ds, method="crossnobis", descriptor="conds", cv_descriptor="runs", noise=w).get_vectors()[0]
    ours = rsa.compute_rdm(x, "crossnobis", noise=w)
    assert (ref < 0).any()  # unbiased estimator: some negative entries; we must reproduce them
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_repeats_are_averaged_for_correlation():
    rng = _rng(4)
    x = rng.standard_normal((3, 10, 8))
    ds = Dataset(x.reshape(-1, 8), obs_descriptors={"conds": np.tile(np.arange(10), 3)})
    ref = calc_rdm(ds, method="correlation", descriptor="conds").get_vectors()[0]
    np.testing.assert_allclose(rsa.compute_rdm(x, "correlation"), ref, atol=1e-6)


@pytest.mark.parametrize("method", ["correlation", "euclidean", "crossnobis"])
def test_blockwise_equals_unblocked(method):
    rng = _rng(5)
    x = rng.standard_normal((3, 37, 11)) if method == "crossnobis" else rng.standard_normal((37, 11))
    full = rsa.compute_rdm(x, method, block_size=10_000)
    for bs in (1, 5, 36):
        np.testing.assert_allclose(rsa.compute_rdm(x, method, block_size=bs), full, rtol=1e-6, atol=1e-6)
    batch = rng.standard_normal((4,) + x.shape)
    many = rsa.compute_rdms(batch, method, block_size=7)
    for k in range(4):
        np.testing.assert_allclose(many[k], rsa.compute_rdm(batch[k], method), rtol=1e-5, atol=1e-6)


def test_square_condensed_roundtrip():
    v = _rng(6).random(45)
    m = rsa.condensed_to_square(v)
    np.testing.assert_array_equal(m, scipy.spatial.distance.squareform(v))
    np.testing.assert_array_equal(rsa.square_to_condensed(m), v)


# ---------------------------------------------------------------- comparisons
def _rdm_sets(seed=7, n_cond=25):
    rng = _rng(seed)
    p = n_cond * (n_cond - 1) // 2
    base = rng.random(p)
    a = base + 0.5 * rng.random((3, p))
    b = base + 0.8 * rng.random((4, p))
    b[0] = np.round(b[0] * 4) / 4  # heavy ties (categorical-like model)
    return a, b


@pytest.mark.parametrize("method", ["spearman", "corr", "cosine", "tau-a"])
def test_compare_matches_rsatoolbox(method):
    a, b = _rdm_sets()
    ref = compare(RDMs(a), RDMs(b), method=method)
    ours = rsa.compare_rdms(a, b, method)
    assert ours.shape == (3, 4)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    np.testing.assert_allclose(rsa.compare_paired(a, b[:3], method), np.diag(ref[:, :3]), atol=1e-6)


def test_compare_many_vs_many_shapes_and_float32_input():
    a, b = _rdm_sets(8)
    grid = np.stack([b, b[::-1]])  # (2, 4, P): e.g. ROIs x subjects
    ours = rsa.compare_rdms(a.astype(np.float32), grid.astype(np.float32))
    assert ours.shape == (3, 2, 4)
    ref = compare(RDMs(a.astype(np.float32).astype(float)), RDMs(b.astype(np.float32).astype(float)), "spearman")
    np.testing.assert_allclose(ours[:, 0], ref, atol=1e-5)
    np.testing.assert_allclose(ours[:, 1], ref[:, ::-1], atol=1e-5)


def test_rank_transform_matches_scipy():
    v = np.round(_rng(9).random((3, 500)) * 20)
    np.testing.assert_array_equal(rsa.rank_transform(v), scipy.stats.rankdata(v, axis=1))


@pytest.mark.parametrize("rows", [[0, 4, 6], list(range(20))])  # few ties (per tied entry) / many (per group)
def test_float32_ranking_matches_scipy_with_ties_and_signs(rows):
    """The float32 route (packed sort keys): negatives, -0.0 vs +0.0, sparse and dense ties, constant rows."""
    rng = _rng(14)
    p = 70_000
    x = rng.standard_normal((20, p)).astype(np.float32)
    x[3] = np.round(x[3] * 2) / 2  # heavy ties, including -0.0 and +0.0
    x[4, :100] = -0.0
    x[4, 100:200] = 0.0
    x[5] = np.float32(1.5)  # constant: correlation undefined
    x = x[rows]
    np.testing.assert_array_equal(rsa.rank_transform(x), scipy.stats.rankdata(x.astype(np.float64), axis=1))
    y = x[[0, 1, 2]] + 0.5 * rng.standard_normal((3, p)).astype(np.float32)
    ours = rsa.compare_rdms(x, y, "spearman")
    ref = np.array([[scipy.stats.spearmanr(u, v)[0] if np.ptp(u) else np.nan for v in y.astype(np.float64)]
                    for u in x.astype(np.float64)])
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    assert np.isnan(ours[np.ptp(x, axis=1) == 0]).all()


def test_compare_ignores_nan_entries_like_rsatoolbox():
    a, b = _rdm_sets(10)
    a[:, 5] = np.nan
    b[:, 5] = np.nan
    np.testing.assert_allclose(rsa.compare_rdms(a, b), compare(RDMs(a), RDMs(b), "spearman"), atol=1e-6)


# ---------------------------------------------------------------- noise ceilings
@pytest.mark.parametrize("method", ["spearman", "corr", "cosine", "tau-a"])
def test_noise_ceiling_matches_rsatoolbox(method):
    rng = _rng(11)
    p = 20 * 19 // 2
    truth = rng.random(p)
    subjects = truth + 0.7 * rng.random((6, p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_low, ref_up = boot_noise_ceiling(RDMs(subjects), method=method)
    nc = rsa.noise_ceiling(subjects, method)
    assert nc.lower < nc.upper
    np.testing.assert_allclose([nc.lower, nc.upper], [ref_low, ref_up], atol=1e-6)


def test_pool_rdms_matches_rsatoolbox():
    from rsatoolbox.util.inference_util import pool_rdm
    subjects = _rng(12).random((4, 66))
    for method in ("spearman", "corr", "cosine"):
        np.testing.assert_allclose(rsa.pool_rdms(subjects, method),
                                   pool_rdm(RDMs(subjects), method).get_vectors()[0], atol=1e-9)


# ---------------------------------------------------------------- bootstrap
def test_stimulus_bootstrap_matches_rsatoolbox_subsampling():
    rng = _rng(13)
    n = 15
    a = rng.random((2, n * (n - 1) // 2))
    b = a[[0]] + rng.random((3, n * (n - 1) // 2))
    sims = rsa.bootstrap_stimuli(a, b, "spearman", n_boot=5, seed=42)
    draws = np.random.default_rng(42)
    for k in range(5):
        sample = draws.integers(0, n, size=n)
        assert len(np.unique(sample)) < n  # duplicates present: the interesting case
        ra = RDMs(a).subsample_pattern("index", sample)
        rb = RDMs(b).subsample_pattern("index", sample)
        np.testing.assert_allclose(sims[k], compare(ra, rb, "spearman"), atol=1e-6)


def test_subject_bootstrap_interval():
    values = _rng(14).normal(0.3, 0.1, size=(12, 2))
    means = rsa.bootstrap_subjects(values, n_boot=2000, seed=0)
    low, high = rsa.confidence_interval(means)
    assert means.shape == (2000, 2)
    assert np.all(low < values.mean(0)) and np.all(values.mean(0) < high)
    se = values.std(0, ddof=1) / np.sqrt(12)
    np.testing.assert_allclose(high - low, 2 * 1.96 * se, rtol=0.25)


# ---------------------------------------------------------------- EEG
def test_eeg_rdms_match_rsatoolbox_movie():
    rng = _rng(15)
    n_cond, n_reps, n_chan, n_t = 12, 3, 7, 6
    eeg = rng.standard_normal((n_cond, n_reps, n_chan, n_t))
    ours, starts = rsa.eeg_rdms(eeg)
    meas = eeg.transpose(1, 0, 2, 3).reshape(-1, n_chan, n_t)
    tds = TemporalDataset(meas, obs_descriptors={"conds": np.tile(np.arange(n_cond), n_reps)},
                          time_descriptors={"time": np.arange(n_t)})
    ref = calc_rdm_movie(tds, method="correlation", descriptor="conds").get_vectors()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    np.testing.assert_array_equal(starts, np.arange(n_t))
    # windows: mean over 3 samples, every 2 samples
    win, starts = rsa.eeg_rdms(eeg, window=3, step=2)
    np.testing.assert_array_equal(starts, [0, 2])
    np.testing.assert_allclose(win[1], _ref_rdm(eeg.mean(1)[..., 2:5].mean(-1), "correlation"), atol=1e-6)
    # curves: model (2 layers) vs 2 subjects
    model = rng.random((2, ours.shape[1]))
    curves = rsa.rsa_timecourses(model, np.stack([ours, ours[::-1]]))
    assert curves.shape == (2, 2, n_t)
    np.testing.assert_allclose(curves[0], compare(RDMs(model), RDMs(ref), "spearman"), atol=1e-6)


def _naive_cluster_masses(t, thr):
    out = []
    for sign in (1, -1):
        lab, n = scipy.ndimage.label(sign * t > thr)
        out += [t[lab == k].sum() for k in range(1, n + 1)]
    return out


def test_cluster_statistics_match_naive_reference():
    rng = _rng(16)
    curves = scipy.ndimage.gaussian_filter1d(rng.standard_normal((10, 50)), 2, axis=1) + 0.2
    res = rsa.cluster_permutation_test(curves, n_permutations=100, seed=1)
    np.testing.assert_allclose(res.t_values, scipy.stats.ttest_1samp(curves, 0).statistic, rtol=1e-10)
    assert res.threshold == pytest.approx(scipy.stats.t.ppf(0.975, 9))
    assert sorted(c.mass for c in res.clusters) == pytest.approx(sorted(_naive_cluster_masses(res.t_values, res.threshold)))
    # null distribution: recompute a few permutations by hand with the same sign draws
    from brainalign.rsa.timecourse import _max_cluster_mass
    import torch
    signs = rng.choice([-1.0, 1.0], size=(20, 10))
    t_perm = scipy.stats.ttest_1samp(curves * signs[:, :, None], 0, axis=1).statistic
    ours = _max_cluster_mass(torch.as_tensor(t_perm), res.threshold).numpy()
    ref = [max([abs(m) for m in _naive_cluster_masses(t, res.threshold)] or [0.0]) for t in t_perm]
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_cluster_test_false_positive_rate_on_null_data():
    """Family-wise error on null data within binomial bands at two levels (exact sign-flip null)."""
    rng = _rng(17)
    n_sets = 500
    min_p = []
    for k in range(n_sets):
        null = scipy.ndimage.gaussian_filter1d(rng.standard_normal((12, 30)), 1.5, axis=1)
        res = rsa.cluster_permutation_test(null, n_permutations=199, seed=k)
        min_p.append(min([c.p_value for c in res.clusters] or [1.0]))
    min_p = np.asarray(min_p)
    # p = (1 + #exceed) / 200, so P(p < 0.05) = 9/200 and P(p <= 0.2) = 40/200 exactly under the null;
    # 99.9 % binomial bands (a test with a 25 % too small null distribution lands outside the 0.2 band)
    for rejected, level in ((min_p < 0.05, 9 / 200), (min_p <= 0.2, 40 / 200)):
        lo, hi = scipy.stats.binom.ppf([0.0005, 0.9995], n_sets, level)
        assert lo <= rejected.sum() <= hi, (level, rejected.sum())


def test_cluster_test_detects_planted_effect_both_signs_and_paired():
    rng = _rng(18)
    noise = scipy.ndimage.gaussian_filter1d(rng.standard_normal((14, 80)), 1.5, axis=1)
    effect = np.zeros(80)
    effect[30:45] = 0.8
    res = rsa.cluster_permutation_test(noise + effect, n_permutations=500, seed=0)
    sig = res.significant
    assert len(sig) >= 1 and sig[0].sign == 1
    assert res.mask()[32:43].all() and not res.mask()[:20].any()
    neg = rsa.cluster_permutation_test(noise - effect, n_permutations=500, seed=0)
    assert neg.significant and all(c.sign == -1 for c in neg.significant)
    base = rng.random((14, 80))
    paired = rsa.paired_cluster_test(base + noise + effect, base, n_permutations=500)
    assert paired.mask()[32:43].all()
    # exhaustive enumeration for few subjects: p is a multiple of 1/2**n
    small = rsa.cluster_permutation_test((noise + effect)[:6], n_permutations=1000)
    assert len(small.null_max_mass) == 64
    assert min(c.p_value for c in small.clusters) == pytest.approx(2 / 64)  # identity + global flip


# ---------------------------------------------------------------- object dimensions
def test_dimension_rsa_matches_scipy():
    rng = _rng(19)
    n = 30
    scores = np.column_stack([rng.random(n), np.eye(3)[rng.integers(0, 3, n)]])  # continuous + one-hot
    layers = rng.random((2, n * (n - 1) // 2))
    layers[1] += 2 * pdist(scores[:, :1], "cityblock")
    dims = rsa.dimension_rdms(scores)
    for d in range(scores.shape[1]):
        np.testing.assert_allclose(dims[d], pdist(scores[:, d:d + 1], "cityblock"), atol=1e-6)
    sim = rsa.dimension_rsa(layers, scores)
    ref = [[scipy.stats.spearmanr(layer, pdist(scores[:, d:d + 1], "cityblock")).statistic
            for d in range(4)] for layer in layers]
    np.testing.assert_allclose(sim, ref, atol=1e-6)
    diff, (low, high) = rsa.dimension_difference(layers[1:], layers[:1], scores, n_boot=50)
    np.testing.assert_allclose(diff, sim[1:] - sim[:1], atol=1e-6)
    assert diff[0, 0] > 0.3 and low[0, 0] > 0


def test_dimension_bootstrap_matches_rsatoolbox_subsampling():
    rng = _rng(23)
    n, n_boot = 16, 6
    scores = np.column_stack([rng.random(n), np.eye(2)[rng.integers(0, 2, n)]])
    layers = rng.random((3, n * (n - 1) // 2))
    layers[2] += 3 * pdist(scores[:, :1], "cityblock")
    sim, samples = rsa.dimension_rsa(layers, scores, n_boot=n_boot, seed=8)
    assert samples.shape == (n_boot, 3, 3)
    dims = RDMs(np.stack([pdist(scores[:, d:d + 1], "cityblock") for d in range(3)]))
    draws = np.random.default_rng(8)
    ref = []
    for _ in range(n_boot):  # the same images resampled for every layer and dimension, as rsatoolbox subsamples
        sample = draws.integers(0, n, size=n)
        ref.append(compare(RDMs(layers).subsample_pattern("index", sample), dims.subsample_pattern("index", sample),
                           "spearman"))
    ref = np.stack(ref)
    np.testing.assert_allclose(samples, ref, atol=1e-6)
    diff, (low, high) = rsa.dimension_difference(layers[2:], layers[:1], scores, n_boot=n_boot, seed=8, level=0.9)
    np.testing.assert_allclose(low, np.percentile(ref[:, 2:] - ref[:, :1], 5, axis=0), atol=1e-6)
    np.testing.assert_allclose(high, np.percentile(ref[:, 2:] - ref[:, :1], 95, axis=0), atol=1e-6)
