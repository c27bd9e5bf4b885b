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
