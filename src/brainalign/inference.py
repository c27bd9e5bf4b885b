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

The builders below turn a test's raw material into a :class:`TestResult` with its verdict:
:func:`bootstrap_result` (paired bootstrap distributions), :func:`sign_flip_result` (exact sign-flip test over
independent units), :func:`decide` (any test that gives its own p), :func:`untestable`; :func:`holm_results`
corrects a family of results (e.g. one claim tested in several ROIs). :func:`paired_voxel_bootstrap` is the
stimulus bootstrap of a difference of per-voxel correlations (encoders, NeuroFusionNet's held-out read-outs). Every
p is two-sided, so that a significant effect against the claim is a ``no``. Documented in docs/methods.md §6
(statistics of the findings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

VERDICTS = ("yes", "no", "inconclusive", "not testable")
#: significance level of every finding (docs/methods.md §6)
ALPHA = 0.05
#: confidence level of every interval the report states
LEVEL = 0.95


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
    p_uncorrected : float
        p before the multiple-comparison correction (equal to ``p`` when none was applied).
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
    p_uncorrected: float = float("nan")

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {self.verdict!r}")
        if not np.isfinite(self.p_uncorrected):
            self.p_uncorrected = self.p

    def as_dict(self) -> dict:
        return asdict(self)


def verdict(effect: float, p: float, alpha: float = ALPHA, testable: bool = True) -> str:
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


def percentile_ci(samples, level: float = LEVEL) -> tuple[float, float]:
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


def sign_flip_testable(n_units: int, alpha: float = ALPHA) -> bool:
    """Whether an exact two-sided sign-flip test over ``n_units`` can reach ``alpha`` (``2 / 2**n < alpha``)."""
    return sign_flip_min_p(n_units) < alpha


def sign_flip_p(values, max_exact: int = 16, n_permutations: int = 100_000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of "the mean of ``values`` is 0" (values independent and symmetric
    about 0 under the null).

    Every one of the ``2**n`` sign patterns is enumerated when ``n <= max_exact`` (exact p, the observed
    pattern included, so the smallest p is ``2 / 2**n``); otherwise ``n_permutations`` random patterns and
    ``p = (1 + #|null mean| >= |observed|) / (1 + n_permutations)``.

    Parameters
    ----------
    values : array-like (n,)
        One value per independent unit (subject, fold), NaNs dropped.

    Returns
    -------
    float (NaN without values)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return float("nan")
    obs = abs(x.mean())
    tol = 1e-12 * max(1.0, obs)
    if n <= max_exact:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        null = np.abs(signs @ x) / n
        return float(np.mean(null >= obs - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_permutations, n))
    null = np.abs(signs @ x) / n
    return float((1 + np.sum(null >= obs - tol)) / (1 + n_permutations))


def permutation_p(observed: float, null, alternative: str = "two-sided") -> float:
    """p of an observed statistic against a permutation null (the observed labelling counted once):
    ``(1 + #(null >= observed)) / (1 + N)`` (``greater``), ``<=`` for ``less``, and with absolute values for
    ``two-sided`` (null centred on 0).

    Parameters
    ----------
    observed : float
    null : array-like (N,)
    alternative : {"two-sided", "greater", "less"}
    """
    null = np.asarray(null, dtype=np.float64).ravel()
    null = null[np.isfinite(null)]
    if alternative == "two-sided":
        obs, null = abs(observed), np.abs(null)
    elif alternative == "less":
        obs, null = -observed, -null
    elif alternative == "greater":
        obs = observed
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    tol = 1e-12 * max(1.0, abs(obs))
    return float((1 + np.sum(null >= obs - tol)) / (1 + null.size))


def decide(test: str, effect: float, ci, p: float, n: str, *, alpha: float = ALPHA, testable: bool = True,
           note: str = "") -> TestResult:
    """A :class:`TestResult` whose verdict follows from ``effect`` and ``p`` (:func:`verdict`).

    Parameters
    ----------
    test : str, the test's name
    effect : float, signed so that positive supports the claim
    ci : (low, high), the effect's confidence interval (NaNs when the test gives none)
    p : float, two-sided p of "no effect"
    n : str, what the test is over
    testable : bool, False when the design cannot reach ``alpha``
    """
    lo, hi = (float("nan"), float("nan")) if ci is None else (float(ci[0]), float(ci[1]))
    return TestResult(test=test, effect=float(effect), ci_low=lo, ci_high=hi, p=float(p), n=str(n),
                      verdict=verdict(effect, p, alpha, testable), note=note)


def bootstrap_result(test: str, observed: float, samples, n: str, *, level: float = LEVEL, alpha: float = ALPHA,
                     note: str = "") -> TestResult:
    """Verdict from a bootstrap distribution of the effect: percentile CI and :func:`bootstrap_p`.

    Parameters
    ----------
    observed : float, the effect on the data (positive supports the claim)
    samples : array-like (B,), its bootstrap distribution (paired: both sides on the same resampled units)
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if not np.isfinite(samples).any():
        return untestable(test, "no bootstrap samples", n=n, effect=observed)
    return decide(test, observed, percentile_ci(samples, level), bootstrap_p(samples), n, alpha=alpha, note=note)


def sign_flip_result(test: str, values, n_label: str = "units", *, level: float = LEVEL, alpha: float = ALPHA,
                     n_boot: int = 10_000, seed: int = 0, note: str = "") -> TestResult:
    """Verdict of "the mean of ``values`` > 0" from an exact sign-flip test over independent units.

    ``not testable`` when ``2 / 2**n >= alpha`` (:func:`sign_flip_testable`). The CI bootstraps the units.

    Parameters
    ----------
    values : array-like (n,), one value per unit (positive supports the claim)
    n_label : str, what a unit is ("subjects", "held-out category pairs")
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = f"{x.size} {n_label}"
    if x.size == 0:
        return untestable(test, f"no {n_label}", n=n)
    ci = (float("nan"), float("nan"))
    if x.size >= 2:
        rng = np.random.default_rng(seed)
        ci = percentile_ci(x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1), level)
    testable = sign_flip_testable(x.size, alpha)
    if not testable:
        note = "; ".join(filter(None, [f"an exact sign-flip test over {x.size} {n_label} cannot reach p < {alpha} "
                                       f"(smallest p = 2/2^{x.size} = {sign_flip_min_p(x.size):.3g})", note]))
    return decide(test, float(x.mean()), ci, sign_flip_p(x), n, alpha=alpha, testable=testable, note=note)


def untestable(test: str, reason: str, n: str = "", effect: float = float("nan")) -> TestResult:
    """A ``not testable`` result (inputs missing, design too small) with its reason."""
    nan = float("nan")
    return TestResult(test=test, effect=float(effect), ci_low=nan, ci_high=nan, p=nan, n=n, verdict="not testable",
                      note=reason)


def holm_results(results: list[TestResult], alpha: float = ALPHA, family: str = "") -> list[TestResult]:
    """Holm-correct a family of results: ``p`` becomes the adjusted p, ``p_uncorrected`` keeps the raw one, the
    verdicts are redrawn and the note says so (``not testable`` members are left out of the family).

    Parameters
    ----------
    results : list of TestResult, one claim tested several times (e.g. in several ROIs)
    family : str, what the family is, for the note ("6 ROIs")
    """
    testable = [i for i, r in enumerate(results) if r.verdict != "not testable" and np.isfinite(r.p_uncorrected)]
    adjusted = holm([results[i].p_uncorrected for i in testable])
    out = list(results)
    label = family or f"{len(testable)} tests"
    for i, p in zip(testable, adjusted):
        r = results[i]
        note = "; ".join(filter(None, [f"Holm over {label}", r.note]))
        out[i] = replace(r, p=float(p), verdict=verdict(r.effect, p, alpha), note=note)
    return out


def _weighted_r(W, y, p, n):
    """Pearson r per voxel under resampling counts: W (B, n) counts summing to n; y, p (n, V) centred.

    Returns (B, V) float64; NaN where a resample leaves either side constant."""
    sy, sp = W @ y, W @ p
    cov = W @ (y * p) / n - sy * sp / n ** 2
    vy = W @ (y * y) / n - (sy / n) ** 2
    vp = W @ (p * p) / n - (sp / n) ** 2
    den = np.sqrt(np.clip(vy, 0, None) * np.clip(vp, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / den
    r[den <= 1e-300] = np.nan
    return r


def paired_voxel_bootstrap(measured, pred_a, pred_b, n_boot: int = 1000, seed: int = 0,
                           max_elements: int = 5_000_000):
    """Mean over voxels of r(measured, pred_a) - r(measured, pred_b), and its stimulus-bootstrap distribution
    (docs/methods.md §6.2).

    Each draw resamples the stimuli (rows) with replacement and recomputes every voxel's Pearson r for both
    models on that same draw (as multinomial weights: one matrix product per moment, no copies of the data).
    The stimulus is the resampling unit, so the dependence between voxels (shared stimuli, shared trial
    noise) stays intact in every draw; voxels are never treated as independent samples.

    Parameters
    ----------
    measured : array (n_stimuli, n_voxels), the held-out responses
    pred_a, pred_b : array (n_stimuli, n_voxels), two models' predictions of them
    n_boot : bootstrap draws (each resamples the stimuli with replacement, the same draw for both models)
    seed : seed of the draws
    max_elements : bound on the (draws x voxels) block computed at once (memory)

    Returns
    -------
    observed : dict with ``effect`` (mean over voxels of the r difference), ``value_a``, ``value_b`` (mean r)
    samples : float64 (n_boot,), the effect in each draw (NaN-voxels of a draw left out of its mean)
    """
    y = np.asarray(measured, dtype=np.float64)
    a = np.asarray(pred_a, dtype=np.float64)
    b = np.asarray(pred_b, dtype=np.float64)
    if y.ndim != 2 or a.shape != y.shape or b.shape != y.shape:
        raise ValueError(f"measured and predictions must share one (n_stimuli, n_voxels) shape: "
                         f"{y.shape}, {a.shape}, {b.shape}")
    n = y.shape[0]
    # centring changes no r and keeps the weighted moments from cancelling
    y, a, b = y - y.mean(0), a - a.mean(0), b - b.mean(0)
    ones = np.full((1, n), 1.0)
    ra, rb = _weighted_r(ones, y, a, n)[0], _weighted_r(ones, y, b, n)[0]
    observed = {"effect": float(np.nanmean(ra - rb)), "value_a": float(np.nanmean(ra)),
                "value_b": float(np.nanmean(rb))}
    rng = np.random.default_rng(seed)
    samples = np.empty(n_boot)
    chunk = max(1, int(max_elements // max(1, y.shape[1])))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        picks = rng.integers(0, n, size=(m, n))
        W = np.bincount((np.arange(m)[:, None] * n + picks).ravel(), minlength=m * n).reshape(m, n).astype(float)
        d = _weighted_r(W, y, a, n) - _weighted_r(W, y, b, n)
        with np.errstate(invalid="ignore"):
            samples[start:start + m] = np.nanmean(d, axis=1)
    return observed, samples
