"""Synthetic-fMRI evaluations on planted arrays: claim 1 (noise comparison) and claim 2 (decoding)."""

import numpy as np
import pytest

from brainalign.synthetic import claim1_patterns, claim1_voxels, decode_synthetic_to_real, paired_tests


def test_claim1_noiseless_prediction_beats_repetitions_for_noisy_voxels():
    rng = np.random.default_rng(0)
    m, R, v = 60, 4, 200
    signal = rng.normal(size=(m, v))
    reps = signal[:, None, :] + rng.normal(size=(m, R, v)) * 2.0  # noisy voxels
    reps[:5, 3] = np.nan
    per_image = claim1_patterns(signal, reps)
    assert len(per_image) == m
    # closed form for signal var 1, noise var 4: c_syn ≈ 1/sqrt(5) ≈ 0.447, c_real ≈ 1/5 = 0.2
    assert abs(per_image["c_syn"].mean() - 1 / np.sqrt(5)) < 0.03
    assert abs(per_image["c_real"].mean() - 0.2) < 0.03
    test = paired_tests(per_image["c_syn"], per_image["c_real"])
    assert test["mean_diff"] > 0.15 and test["wilcoxon_p"] < 1e-6 and test["ttest_p"] < 1e-6
    per_voxel = claim1_voxels(signal, reps)
    assert (per_voxel["c_syn"] > per_voxel["c_real"]).mean() > 0.9
    # a prediction unrelated to the signal does not beat the repetitions
    junk = claim1_patterns(rng.normal(size=(m, v)), reps)
    assert junk["c_syn"].mean() < junk["c_real"].mean()


def test_decoder_trained_on_synthetic_beats_chance_on_unseen_categories():
    rng = np.random.default_rng(1)
    v, classes = 80, ["a", "b", "c", "d"]
    proto = {c: rng.normal(size=v) for c in classes}
    # synthetic: noiseless responses to new images of each class (image-specific variation + class signal)
    ys = np.repeat(classes, 60)
    Xs = np.stack([proto[c] * 0.6 + rng.normal(size=v) * 0.5 for c in ys])
    # real: held-out images, noisy, different scale and offset than the synthetic ones
    yr = np.repeat(classes, 15)
    Xr = np.stack([3 * (proto[c] * 0.6 + rng.normal(size=v) * 0.5) + rng.normal(size=v) * 4 + 1 for c in yr])
    res = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(5, 20, 60, 500), n_repeats=3, n_permutations=200)
    syn = res[res["train"] == "synthetic"]
    assert list(syn["n_per_class"]) == [5, 20, 60]  # 500 > available images, no noise augmentation
    assert (syn["chance"] == 0.25).all()
    best = syn.iloc[-1]
    assert best["balanced_accuracy"] > 0.6 and best["p_value"] < 0.01
    assert "real" in set(res["train"])
    # no class signal -> chance level, not significant
    Xr0 = rng.normal(size=Xr.shape)
    null = decode_synthetic_to_real(Xs, ys, Xr0, yr, n_per_class=(60,), n_repeats=1, n_permutations=200)
    s0 = null[null["train"] == "synthetic"].iloc[0]
    assert s0["balanced_accuracy"] < 0.45 and s0["p_value"] > 0.01


def test_noise_augmentation_allows_more_samples_than_images():
    rng = np.random.default_rng(2)
    ys = np.repeat(["a", "b"], 10)
    Xs = rng.normal(size=(20, 30)) + (ys == "a")[:, None]
    yr = np.repeat(["a", "b"], 10)
    Xr = rng.normal(size=(20, 30)) + (yr == "a")[:, None]
    res = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10, 100), n_repeats=1, n_permutations=50,
                                   syn_noise_sd=np.full(30, 0.5))
    assert list(res[res["train"] == "synthetic"]["n_per_class"]) == [10, 100]


def test_permutation_balanced_accuracy_matches_sklearn():
    from sklearn.metrics import balanced_accuracy_score

    from brainalign.synthetic import permutation_p

    rng = np.random.default_rng(3)
    y = rng.choice(["a", "b", "c"], size=50, p=[0.5, 0.3, 0.2])
    pred = np.where(rng.random(50) < 0.6, y, rng.choice(["a", "b", "c"], size=50))
    acc, p = permutation_p(y, pred, n_permutations=300, seed=1)
    assert abs(acc - balanced_accuracy_score(y, pred)) < 1e-12
    assert p < 0.01
    # null: p-values roughly uniform -> not tiny
    acc0, p0 = permutation_p(y, rng.permutation(y), n_permutations=300, seed=1)
    assert p0 > 0.01


def _shifted_domains(seed, signal=True):
    """Synthetic vs real patterns as the unseen-category split produces them: the encoder got the class
    difference partly right, shrinks each voxel by its own amount, and cannot predict the mean response that
    both held-out categories evoke (a per-voxel offset present only in the real patterns); classes unbalanced."""
    rng = np.random.default_rng(seed)
    v = 200
    diff = rng.normal(size=v)  # real class difference
    diff_syn = 0.4 * diff + np.sqrt(1 - 0.4**2) * rng.normal(size=v)
    offset = rng.normal(size=v) * 4.0
    gain = rng.uniform(0.05, 1.0, v)
    ys = np.repeat(["a", "b"], 10)
    Xs = gain * (np.where(ys == "a", 0.5, -0.5)[:, None] * diff_syn + rng.normal(size=(20, v)) * 0.5)
    yr = np.repeat(["a", "b"], [60, 25])
    Xr = offset + np.where(yr == "a", 0.5, -0.5)[:, None] * diff * signal + rng.normal(size=(85, v)) * 1.5
    return Xs, ys, Xr, yr


def test_decoder_survives_per_voxel_offsets_between_domains():
    # Row z-scoring alone (standardize="rows") leaves the real patterns' per-voxel offset; along the decoder's
    # direction it outweighs the class difference and most real patterns land in one class (balanced accuracy
    # ~0.5 for seeds 0 and 1). Per-domain voxel centring (the default) removes it; so does per-domain z-scoring.
    accs, scaled, rows = [], [], []
    for seed in range(4):
        Xs, ys, Xr, yr = _shifted_domains(seed)
        res = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10,), n_repeats=1, n_permutations=200)
        s = res[res["train"] == "synthetic"].iloc[0]
        assert s["standardize"] == "center" and s["p_value"] < 0.01
        accs.append(s["balanced_accuracy"])
        d = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10,), n_repeats=1, n_permutations=0,
                                     standardize="domain")
        scaled.append(d[d["train"] == "synthetic"].iloc[0]["balanced_accuracy"])
        r = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10,), n_repeats=1, n_permutations=0,
                                     standardize="rows")
        rows.append(r[r["train"] == "synthetic"].iloc[0]["balanced_accuracy"])
    assert min(accs) > 0.8 and min(scaled) > 0.8, (accs, scaled)
    assert min(rows) < 0.6, rows  # the failure mode the per-domain step avoids
    # no class signal in the real patterns -> chance, not significant
    Xs, ys, Xr, yr = _shifted_domains(0, signal=False)
    null = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10,), n_repeats=1, n_permutations=200)
    s0 = null[null["train"] == "synthetic"].iloc[0]
    assert abs(s0["balanced_accuracy"] - 0.5) < 0.12 and s0["p_value"] > 0.01


def _unpredictable_voxels(seed):
    """What an encoder makes of an unseen category pair: 30 voxels it predicts (the class difference, shrunk, with
    image-to-image variation) and 170 it cannot (category-selective voxels of the simulator: predictions that
    barely vary, whose small class difference is an extrapolation artefact pointing the wrong way)."""
    rng = np.random.default_rng(seed)
    good, bad = 30, 170
    diff = rng.normal(size=good + bad)
    ys = np.repeat(["a", "b"], 10)
    sign = np.where(ys == "a", 0.5, -0.5)[:, None]
    Xs = np.hstack([0.6 * sign * diff[:good] + 0.4 * rng.normal(size=(20, good)),
                    0.01 * (-sign * diff[good:] + 0.5 * rng.normal(size=(20, bad)))])
    yr = np.repeat(["a", "b"], [60, 30])
    Xr = np.where(yr == "a", 0.5, -0.5)[:, None] * diff + 1.2 * rng.normal(size=(90, good + bad))
    return Xs, ys, Xr, yr


def test_per_domain_scaling_amplifies_voxels_the_encoder_cannot_predict():
    """The demo's below-chance decoding of unseen places vs words (docs/encoding.md): z-scoring every voxel within
    the synthetic domain gives the near-constant, wrong-signed predictions of unpredictable voxels the weight of
    the predictable ones, and the decoder's direction turns around; centring leaves them small."""
    center, domain = [], []
    for seed in range(3):
        Xs, ys, Xr, yr = _unpredictable_voxels(seed)
        for how, out in (("center", center), ("domain", domain)):
            r = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(10,), n_repeats=1, n_permutations=0,
                                         standardize=how)
            out.append(r[r["train"] == "synthetic"].iloc[0]["balanced_accuracy"])
    assert min(center) > 0.75, center
    assert max(domain) < 0.4, domain


def test_permutation_p_over_all_draws_matches_a_hand_computed_permutation_test():
    """The null is that of the draws' mean: one label shuffle per permutation, applied to every draw's predictions."""
    from sklearn.metrics import balanced_accuracy_score

    from brainalign.synthetic import permutation_p_draws

    rng = np.random.default_rng(4)
    y = rng.choice(["a", "b"], size=40, p=[0.7, 0.3])
    preds = np.stack([np.where(rng.random(40) < 0.35, y, rng.choice(["a", "b"], size=40)) for _ in range(5)])
    out = permutation_p_draws(y, preds, n_permutations=300, seed=7, n_boot=0)
    obs = np.mean([balanced_accuracy_score(y, p) for p in preds])
    assert out["balanced_accuracy"] == pytest.approx(obs)
    hand = np.random.default_rng(7)  # the same shuffles, scored with scikit-learn
    null = []
    for _ in range(300):
        shuffled = hand.permutation(y)
        null.append(np.mean([balanced_accuracy_score(shuffled, p) for p in preds]))
    null = np.array(null)
    assert out["p_value"] == pytest.approx((1 + np.sum(null >= obs - 1e-12)) / 301)
    assert out["p_two_sided"] == pytest.approx((1 + np.sum(np.abs(null - 0.5) >= abs(obs - 0.5) - 1e-12)) / 301)
    # the first draw alone (what the p-value used to come from) is a different test
    first = permutation_p_draws(y, preds[:1], n_permutations=300, seed=7, n_boot=0)
    assert first["balanced_accuracy"] != pytest.approx(obs)


def test_declared_sample_size_is_evaluated_and_marked():
    rng = np.random.default_rng(5)
    direction = rng.normal(size=20)
    ys = np.repeat(["a", "b"], 30)
    Xs = rng.normal(size=(60, 20)) + (ys == "a")[:, None] * direction
    yr = np.repeat(["a", "b"], [25, 15])
    Xr = rng.normal(size=(40, 20)) + (yr == "a")[:, None] * direction
    res = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(5, 30), n_repeats=4, n_permutations=100,
                                   declared_n=12)
    syn = res[res["train"] == "synthetic"]
    assert list(syn["n_per_class"]) == [5, 12, 30] and list(syn["declared"]) == [False, True, False]
    row = syn[syn["declared"]].iloc[0]
    assert row["n_draws"] == 4 and row["classes"] == "a,b"
    assert row["ci_low"] <= row["balanced_accuracy"] <= row["ci_high"] and row["p_two_sided"] < 0.05
    # a declared size above the images available (no noise augmentation) gives no verdict row
    none = decode_synthetic_to_real(Xs, ys, Xr, yr, n_per_class=(5,), n_repeats=1, n_permutations=10, declared_n=99)
    assert not none["declared"].any()


def test_claim1_paired_tests_bootstrap_interval():
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.45, 0.05, 80), rng.normal(0.44, 0.05, 80)
    t = paired_tests(a, b, n_boot=3000, seed=0)
    d = a - b
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert t["diff_ci_low"] == pytest.approx(d.mean() - 1.96 * se, abs=0.3 * se)  # the normal interval, roughly
    assert t["diff_ci_high"] == pytest.approx(d.mean() + 1.96 * se, abs=0.3 * se)
