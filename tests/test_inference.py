"""The verdict rule and its building blocks, against closed forms and hand-worked examples."""

import numpy as np
import pytest

from brainalign.inference import bootstrap_p, holm, percentile_ci, sign_flip_min_p, verdict


def test_holm_matches_hand_worked_example():
    # p sorted: 0.01 (x4), 0.02 (x3), 0.03 (x2), 0.04 (x1) -> 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.9]), [1.0, np.nan, 1.0])  # NaN not counted: m = 2


def test_bootstrap_p_agrees_with_the_percentile_interval():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.05, 0.1, 0.2, 0.4):
        b = rng.normal(shift, 0.1, size=4000)
        lo, hi = percentile_ci(b, 0.95)
        excludes_zero = lo > 0 or hi < 0
        assert (bootstrap_p(b) < 0.05) == excludes_zero


def test_verdicts():
    assert verdict(0.1, 0.001) == "yes"
    assert verdict(-0.1, 0.001) == "no"
    assert verdict(0.003, 0.4) == "inconclusive"
    assert verdict(0.3, 0.001, testable=False) == "not testable"
    assert verdict(np.nan, 0.01) == "not testable"


@pytest.mark.parametrize("s, p", [(2, 0.5), (5, 1 / 16), (6, 1 / 32)])
def test_sign_flip_floor(s, p):
    assert sign_flip_min_p(s) == pytest.approx(p)
    # a design is testable at alpha only when 2 / 2**S < alpha (2**S > 2 / alpha)
    assert (sign_flip_min_p(s) < 0.05) == (2 ** s > 2 / 0.05)


@pytest.mark.parametrize("values", [[0.3, -0.1, 0.25, 0.4, 0.05], [1.0, 2.0, -0.5, 0.7, 1.1, 0.9, 1.3],
                                    [0.01, -0.02, 0.015, -0.005, 0.0]])
def test_sign_flip_p_matches_scipy_exact_permutation_test(values):
    import scipy.stats

    from brainalign.inference import sign_flip_p

    ref = scipy.stats.permutation_test((np.asarray(values),), np.mean, permutation_type="samples",
                                       alternative="two-sided", n_resamples=np.inf).pvalue
    assert sign_flip_p(values) == pytest.approx(ref)


def test_sign_flip_result_is_not_testable_below_six_units_and_decides_above():
    from brainalign.inference import sign_flip_result

    strong = [0.2, 0.25, 0.3, 0.22, 0.18]
    r5 = sign_flip_result("sign flip", strong, "folds")
    assert r5.verdict == "not testable" and "2/2^5" in r5.note and r5.effect == pytest.approx(np.mean(strong))
    r6 = sign_flip_result("sign flip", strong + [0.27], "folds")
    assert r6.verdict == "yes" and r6.p == pytest.approx(2 / 64) and r6.ci_low > 0
    assert sign_flip_result("sign flip", [-v for v in strong + [0.27]], "folds").verdict == "no"
    mixed = [0.2, -0.25, 0.3, -0.22, 0.18, -0.2, 0.01, -0.03, 0.1, -0.12]
    r10 = sign_flip_result("sign flip", mixed, "folds")
    assert r10.verdict == "inconclusive" and r10.ci_low < 0 < r10.ci_high


def test_bootstrap_result_near_tie_is_inconclusive_and_clear_effects_decide():
    from brainalign.inference import bootstrap_result

    rng = np.random.default_rng(1)
    tie = bootstrap_result("paired bootstrap", 0.003, rng.normal(0.003, 0.01, 2000), "100 stimuli")
    assert tie.verdict == "inconclusive" and tie.ci_low < 0 < tie.ci_high
    assert bootstrap_result("b", 0.05, rng.normal(0.05, 0.01, 2000), "n").verdict == "yes"
    assert bootstrap_result("b", -0.05, rng.normal(-0.05, 0.01, 2000), "n").verdict == "no"
    assert bootstrap_result("b", 0.05, [np.nan] * 10, "n").verdict == "not testable"


def test_holm_results_corrects_the_family_and_keeps_the_raw_p():
    from brainalign.inference import decide, holm_results

    raw = [0.01, 0.03, 0.04, 0.2]
    results = [decide("t", 0.1, (0.0, 0.2), p, "n") for p in raw]
    assert [r.verdict for r in results] == ["yes", "yes", "yes", "inconclusive"]
    fixed = holm_results(results, family="4 ROIs")
    np.testing.assert_allclose([r.p for r in fixed], holm(raw))  # 0.04, 0.09, 0.09, 0.2
    assert [r.verdict for r in fixed] == ["yes", "inconclusive", "inconclusive", "inconclusive"]
    assert [r.p_uncorrected for r in fixed] == raw and "Holm over 4 ROIs" in fixed[0].note


def test_permutation_p_counts_the_observed_labelling():
    from brainalign.inference import permutation_p

    null = np.array([-0.3, -0.1, 0.0, 0.1, 0.2, 0.5])
    assert permutation_p(0.2, null, "greater") == pytest.approx((1 + 2) / 7)
    assert permutation_p(0.2, null, "two-sided") == pytest.approx((1 + 3) / 7)
    assert permutation_p(-0.2, null, "less") == pytest.approx((1 + 1) / 7)
