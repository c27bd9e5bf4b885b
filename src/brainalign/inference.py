"""Pre-declared tests and verdicts: the one rule every finding of the report is decided by.

A finding states a directional claim ("A > B", "accuracy > chance"). Its evidence is a test with a name, an
effect size, a confidence interval, a p-value and an n. The verdict follows from those alone
(see :func:`verdict`), never from a bare comparison of two means:

- ``yes``: the test rejects "no effect" at ``alpha`` (after the stated multiple-comparison correction) and the
  effect points the claimed way;
- ``no``: the test rejects "no effect" and the effect points the other way (the data contradict the claim);
- ``inconclusive``: the test does not reject (a tie within noise, however the means happen to fall);
- ``not testable``: the test cannot reach ``alpha`` with this design (e.g. an exact sign-flip test over too few
  subjects), or its inputs are missing.

Documented in docs/methods.md (statistics of the findings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

VERDICTS = ("yes", "no", "inconclusive", "not testable")


@dataclass
class TestResult:
    """The evidence behind one verdict.

    Attributes
    ----------
    test : str
        Name of the test as the report states it ("paired bootstrap over stimuli", "Wilcoxon signed-rank", ...).
    effect : float
        Effect size in the claim's units, signed so that positive supports the claim.
    ci_low, ci_high : float
        Confidence interval of ``effect`` (NaN when the test gives none).
    p : float
        p-value of the test of "no effect" (two-sided unless the test says otherwise), after correction.
    n : str
        What the test is over ("100 stimuli", "2 subjects x 100 stimuli", ...).
    verdict : str
        One of :data:`VERDICTS`.
    note : str
        Why a verdict is ``not testable``, corrections applied, or anything a reader must know.
    """

    __test__ = False  # not a pytest class

    test: str
    effect: float
    ci_low: float
    ci_high: float
    p: float
    n: str
    verdict: str
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def verdict(effect: float, p: float, alpha: float = 0.05, testable: bool = True) -> str:
    """The verdict of a directional claim from its test.

    Parameters
    ----------
    effect : float
        Signed so that positive supports the claim.
    p : float
        p-value of the test of "no effect" (already corrected for multiple comparisons where several are made).
    alpha : float
        Significance level.
    testable : bool
        False when the design cannot reach ``alpha`` (then the verdict is ``not testable`` whatever ``p`` is).

    Returns
    -------
    str
        ``yes`` / ``no`` / ``inconclusive`` / ``not testable``.
    """
    if not testable or not np.isfinite(p) or not np.isfinite(effect):
        return "not testable"
    if p < alpha:
        return "yes" if effect > 0 else "no"
    return "inconclusive"


def bootstrap_p(samples, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of "the statistic equals ``null``".

    ``p = min(1, 2 * min(#(b <= null) + 1, #(b >= null) + 1) / (B + 1))``: the percentile-bootstrap test that
    matches the percentile confidence interval (p < alpha exactly when the (1 - alpha) interval excludes ``null``,
    up to the +1 correction, which keeps p above zero).

    Parameters
    ----------
    samples : array-like (B,)
        Bootstrap distribution of the statistic (NaN draws are dropped).
    null : float

    Returns
    -------
    float
    """
    b = np.asarray(samples, dtype=np.float64).ravel()
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan")
    below = np.sum(b <= null) + 1
    above = np.sum(b >= null) + 1
    return float(min(1.0, 2.0 * min(below, above) / (b.size + 1)))


def percentile_ci(samples, level: float = 0.95) -> tuple[float, float]:
    """Percentile confidence interval of a bootstrap distribution (NaN draws dropped; NaNs if none left)."""
    b = np.asarray(samples, dtype=np.float64).ravel()
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(b, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1; NaNs kept and not counted).

    Parameters
    ----------
    pvalues : array-like (m,)

    Returns
    -------
    ndarray (m,)
        Adjusted p-values in the input order; reject H_i at level alpha when ``adjusted[i] < alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def sign_flip_min_p(n_subjects: int) -> float:
    """Smallest two-sided p an exact sign-flip permutation test over ``n_subjects`` can give: ``2 / 2**S``."""
    return 2.0 / (2 ** int(n_subjects)) if n_subjects > 0 else 1.0
