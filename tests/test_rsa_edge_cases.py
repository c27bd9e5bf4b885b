"""Numeric edge cases of the RSA core (docs/rsa.md, "Edge cases"), each against an independent reference:
constant RDMs, degenerate noise-ceiling subjects, array layouts, infinite cluster t, crossnobis with unequal
trials per fold (rsatoolbox's trial-level ``calc_rdm``), and float32 accuracy (scipy ``pdist`` in float64)."""

import warnings

import numpy as np
import pytest
import scipy.stats
from rsatoolbox.data import Dataset
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs, calc_rdm, compare
from scipy.spatial.distance import pdist

from brainalign import rsa


def _rng(seed=0):
    return np.random.default_rng(seed)


def _rsatoolbox_crossnobis(trials, conditions, folds, noise=None):
    ds = Dataset(trials, obs_descriptors={"cond": conditions, "fold": folds})
    with warnings.catch_warnings():  # rsatoolbox fills an int descriptor with NaN internally
        warnings.simplefilter("ignore", RuntimeWarning)
        return calc_rdm(ds, method="crossnobis", descriptor="cond", cv_descriptor="fold",
                        noise=noise).get_vectors()[0]


# ---------------------------------------------------------------- a constant RDM: one answer for every length
@pytest.mark.parametrize("n_cond", [3, 4, 5, 10, 15, 45, 100])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correlation_with_a_constant_rdm_is_nan_for_every_length(n_cond, dtype):
    """Spearman and Pearson with a constant vector are undefined (scipy: NaN), whatever the rounding of the
    rank correction or of the centring does for this length; Kendall tau-a is 0 (rsatoolbox); cosine with an
    all-zero vector is NaN."""
    p = n_cond * (n_cond - 1) // 2
    rng = _rng(n_cond)
    const = np.full((1, p), 0.7, dtype=dtype)
    other = rng.random((2, p)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        assert np.isnan(scipy.stats.spearmanr(const[0], other[0]).statistic)
        assert np.isnan(scipy.stats.pearsonr(const[0].astype(float), other[0].astype(float)).statistic)
    for method in ("spearman", "corr"):
        assert np.isnan(rsa.compare_rdms(const, other, method)).all(), method
        assert np.isnan(rsa.compare_rdms(other, const, method)).all(), method
        assert np.isnan(rsa.compare_paired(np.repeat(const, 2, 0), other, method)).all(), method
        assert np.isfinite(rsa.compare_rdms(other, other, method)).all()  # only the constant one is undefined
    ref_tau = compare(RDMs(const.astype(float)), RDMs(other.astype(float)), "tau-a")
    np.testing.assert_array_equal(ref_tau, 0.0)
    np.testing.assert_array_equal(rsa.compare_rdms(const, other, "tau-a"), ref_tau)
    assert np.isnan(rsa.compare_rdms(np.zeros_like(const), other, "cosine")).all()
    np.testing.assert_allclose(rsa.compare_rdms(const, other, "cosine"),
                               compare(RDMs(const.astype(float)), RDMs(other.astype(float)), "cosine"), atol=1e-6)


# ---------------------------------------------------------------- noise ceiling with a degenerate subject
@pytest.mark.parametrize("method", ["spearman", "corr", "cosine", "tau-a"])
def test_noise_ceiling_leaves_out_a_constant_subject_with_a_warning(method):
    rng = _rng(1)
    p = 15 * 14 // 2
    subjects = rng.random(p) + 0.6 * rng.random((5, p))
    subjects[2] = 0.0 if method == "cosine" else 0.5  # a dead subject: no information for this method
    with pytest.warns(RuntimeWarning, match=r"subjects \[2\]"):
        nc = rsa.noise_ceiling(subjects, method)
    others = np.delete(subjects, 2, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_low, ref_up = boot_noise_ceiling(RDMs(others), method=method)
    np.testing.assert_allclose([nc.lower, nc.upper], [ref_low, ref_up], atol=1e-6)
    assert np.isnan(nc.lower_per_subject[2]) and np.isnan(nc.upper_per_subject[2])
    assert np.isfinite(np.delete(nc.lower_per_subject, 2)).all()
    assert nc.lower > 0.3  # never a silent 0


def test_noise_ceiling_with_one_informative_subject_is_nan():
    subjects = np.stack([_rng(2).random(45), np.full(45, 0.3), np.full(45, 0.8)])
    with pytest.warns(RuntimeWarning, match="ceiling is NaN"):
        nc = rsa.noise_ceiling(subjects, "corr")
    assert np.isnan(nc.lower) and np.isnan(nc.upper)


# ---------------------------------------------------------------- any numpy array layout
def _layouts(a):
    """The same values in layouts torch cannot take as they are (any number of dimensions)."""
    ro = a.copy()
    ro.flags.writeable = False
    return {"reversed": np.ascontiguousarray(a[::-1])[::-1],
            "reversed last axis": np.ascontiguousarray(a[..., ::-1])[..., ::-1],
            "fortran": np.asfortranarray(a), "big-endian": a.astype(a.dtype.newbyteorder(">")), "read-only": ro,
            "strided": np.repeat(a, 2, axis=-1)[..., ::2]}


@pytest.mark.parametrize("layout", ["reversed", "reversed last axis", "fortran", "big-endian", "read-only", "strided"])
def test_any_array_layout_gives_the_same_results(layout):
    rng = _rng(3)
    patterns = rng.standard_normal((9, 6))
    rdms = rng.random((4, 36))
    curves = rng.standard_normal((5, 12)) + 0.5
    eeg = rng.standard_normal((6, 3, 4, 5))
    trials = rng.standard_normal((24, 4))
    cases = [
        (lambda x: rsa.compute_rdm(x), patterns),
        (lambda x: rsa.compute_rdm(x, "euclidean"), patterns),
        (lambda x: rsa.compute_rdms(x[None], "correlation"), patterns),
        (lambda x: rsa.compare_rdms(x, x[:2]), rdms),
        (lambda x: rsa.compare_rdms(x, x[:2], "tau-a"), rdms),
        (lambda x: rsa.compare_paired(x, x + 1.0, "corr"), rdms),
        (lambda x: rsa.noise_ceiling(x, "corr").lower_per_subject, rdms),
        (lambda x: rsa.noise_ceiling(x, "spearman").upper_per_subject, rdms),
        (lambda x: rsa.pool_rdms(x), rdms),
        (lambda x: rsa.rank_transform(x), rdms),
        (lambda x: rsa.bootstrap_stimuli(x[:1], x[1:], n_boot=3), rdms),
        (lambda x: rsa.cluster_permutation_test(x, n_permutations=32).t_values, curves),
        (lambda x: rsa.crossnobis_rdm(x, np.tile(np.arange(6), 4), np.repeat(np.arange(4), 6)), trials),
    ]
    for k, (f, base) in enumerate(cases):
        np.testing.assert_allclose(f(_layouts(base)[layout]), f(base), rtol=1e-6, atol=1e-7, err_msg=str(k))
    np.testing.assert_allclose(rsa.eeg_rdms(_layouts(eeg)[layout])[0], rsa.eeg_rdms(eeg)[0], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- cluster test with infinite t
def test_exact_cluster_test_never_below_two_over_two_to_the_s():
    """Identical values across subjects: t = inf there. The identity and the global sign flip reach the observed
    mass exactly, so the exact p is 2 / 2**S (it was 0: inf - inf compared as NaN)."""
    rng = _rng(4)
    n_sub, n_t = 6, 30
    curves = 0.1 * rng.standard_normal((n_sub, n_t))
    curves[:, 10:14] = 0.3  # every subject the same value
    res = rsa.cluster_permutation_test(curves, n_permutations=1000)
    assert np.isinf(res.t_values[10:14]).all()
    cluster = [c for c in res.clusters if c.start <= 10 < c.stop]
    assert len(cluster) == 1 and np.isinf(cluster[0].mass)
    assert cluster[0].p_value == pytest.approx(2 / 2 ** n_sub)
    assert all(c.p_value >= 2 / 2 ** n_sub for c in res.clusters)
    # with random flips: at least 1 / (n_permutations + 1), never 0
    sampled = rsa.cluster_permutation_test(curves, n_permutations=40, seed=3)
    assert min(c.p_value for c in sampled.clusters) >= 1 / 41
    # the same through the paired test (a constant difference)
    paired = rsa.paired_cluster_test(curves + 1.0, np.ones_like(curves), n_permutations=1000)
    assert min(c.p_value for c in paired.clusters) == pytest.approx(2 / 2 ** n_sub)


# ---------------------------------------------------------------- crossnobis with unequal trials per fold
def _unequal_trials(rng, n_cond=10, n_chan=7, per_fold=(1, 3, 2, 4), offset=0.0):
    """Trials of ``n_cond`` conditions; condition i has per_fold[k] + (i % 2) trials in fold k (shuffled)."""
    signal = rng.standard_normal((n_cond, n_chan))
    signal[:3] = signal[0]  # identical true patterns: estimates scatter around 0, some negative
    conds, folds = [], []
    for i in range(n_cond):
        for k, m in enumerate(per_fold):
            conds += [i] * (m + i % 2)
            folds += [k] * (m + i % 2)
    conds, folds = np.asarray(conds), np.asarray(folds)
    order = rng.permutation(len(conds))
    conds, folds = conds[order], folds[order]
    trials = signal[conds] + rng.standard_normal((len(conds), n_chan)) + offset
    return trials, conds, folds


@pytest.mark.parametrize("per_fold", [(1, 3, 2), (1, 3, 2, 4)])
@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_rdm_equals_rsatoolbox_trial_level(per_fold, with_noise):
    rng = _rng(5)
    trials, conds, folds = _unequal_trials(rng, per_fold=per_fold)
    n_chan = trials.shape[1]
    noise = None
    if with_noise:
        a = rng.standard_normal((n_chan, n_chan))
        noise = a @ a.T / n_chan + np.eye(n_chan)
    ref = _rsatoolbox_crossnobis(trials, conds, folds, noise)
    ours = rsa.crossnobis_rdm(trials, conds, folds, noise=noise)
    assert (ref < 0).any()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # the same from the per-fold means and counts a store returns (the RSA stage's route)
    cond_ids, fold_ids, means, counts = rsa.fold_means(trials, conds, folds)
    np.testing.assert_array_equal(cond_ids, np.arange(10))
    np.testing.assert_array_equal(counts.sum(0), np.bincount(conds))
    np.testing.assert_allclose(rsa.crossnobis_from_fold_means(means, counts, noise=noise), ref, rtol=1e-5,
                               atol=1e-5 * np.abs(ref).max())
    # averaging the fold means without their counts is a different estimator here (the old behaviour)
    assert np.abs(rsa.compute_rdm(means, "crossnobis", noise=noise) - ref).max() > 0.01 * np.abs(ref).max()


def test_crossnobis_rdm_orders_conditions_like_rsatoolbox_and_checks_folds():
    rng = _rng(6)
    trials, conds, folds = _unequal_trials(rng, n_cond=5, per_fold=(2, 1, 3))
    labels = np.array(["b", "a", "e", "d", "c"])[conds]  # sorted unique labels are the RDM's conditions
    np.testing.assert_allclose(rsa.crossnobis_rdm(trials, labels, folds), _rsatoolbox_crossnobis(trials, labels, folds),
                               rtol=1e-5, atol=1e-6)
    keep = ~((labels == "d") & (folds == 1))
    with pytest.raises(ValueError, match="'d' has no trial in fold 1"):
        rsa.crossnobis_rdm(trials[keep], labels[keep], folds[keep])
    with pytest.raises(ValueError, match="2 folds"):
        rsa.crossnobis_rdm(trials, labels, np.zeros(len(labels)))


def test_eeg_crossnobis_folds_weighted_by_their_trials():
    """Five repetitions in three folds (2, 2, 1 trials): rsatoolbox with cv_descriptor = repetition % 3."""
    rng = _rng(7)
    n_cond, n_reps, n_chan, n_t = 8, 5, 4, 3
    eeg = rng.standard_normal((n_cond, 1, n_chan, n_t)) + rng.standard_normal((n_cond, n_reps, n_chan, n_t))
    ours, _ = rsa.eeg_rdms(eeg, "crossnobis", n_folds=3)
    conds, reps = np.repeat(np.arange(n_cond), n_reps), np.tile(np.arange(n_reps), n_cond)
    for t in range(n_t):
        ref = _rsatoolbox_crossnobis(eeg[..., t].reshape(-1, n_chan), conds, reps % 3)
        np.testing.assert_allclose(ours[t], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # fold means with their counts (a store's mean_by_fold) give the same
    means = np.stack([eeg[:, f::3].mean(1) for f in range(3)], axis=1)
    counts = np.tile([2, 2, 1], (n_cond, 1))
    np.testing.assert_allclose(rsa.eeg_rdms(means, "crossnobis", counts=counts)[0], ours, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- float32 accuracy
def test_float32_rdms_keep_accuracy_with_a_large_offset():
    """Offset 1e4, spread 1e-2 (float64 input): scipy's pdist in float64 as the reference (rsatoolbox's own
    Gram-trick euclidean is off by ~1e-3 here)."""
    rng = _rng(8)
    x = 1e4 + 1e-2 * rng.standard_normal((30, 50))
    np.testing.assert_allclose(rsa.compute_rdm(x, "correlation"), pdist(x, "correlation"), rtol=1e-5)
    np.testing.assert_allclose(rsa.compute_rdm(x, "euclidean"), pdist(x, "sqeuclidean") / 50, rtol=1e-5)
    # crossnobis is invariant to a common shift: rsatoolbox on the data without the offset is the reference
    trials, conds, folds = _unequal_trials(rng, per_fold=(2, 2, 1))
    trials = 1e-2 * trials
    ref = _rsatoolbox_crossnobis(trials, conds, folds)
    for offset in (0.0, 1e4):
        np.testing.assert_allclose(rsa.crossnobis_rdm(trials + offset, conds, folds), ref, rtol=1e-4,
                                   atol=1e-4 * np.abs(ref).max())
    means = np.stack([x[:, None] + 1e-2 * rng.standard_normal((30, 1, 50)) for _ in range(3)])[:, :, 0]
    ref = _rsatoolbox_crossnobis(means.reshape(-1, 50) - 1e4, np.tile(np.arange(30), 3), np.repeat(np.arange(3), 30))
    np.testing.assert_allclose(rsa.compute_rdm(means, "crossnobis"), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_float32_correlation_distances_below_1e4():
    rng = _rng(9)
    base = rng.standard_normal(60)
    x = base + 1e-3 * rng.standard_normal((25, 60))  # all correlation distances ~1e-6
    ref = pdist(x, "correlation")
    assert ref.max() < 1e-4
    np.testing.assert_allclose(rsa.compute_rdm(x, "correlation"), ref, rtol=1e-4)
    x[:5] = base + 1e-5 * rng.standard_normal((5, 60))  # some pairs closer still (~1e-10)
    ref = pdist(x, "correlation")
    assert ref.min() < 1e-9
    np.testing.assert_allclose(rsa.compute_rdm(x, "correlation"), ref, rtol=1e-3)
