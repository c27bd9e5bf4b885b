"""Time-resolved (EEG) RSA and cluster-based permutation tests over time.

EEG RDMs: per time point (or time window), the condition patterns over channels, averaged over
repetitions, give one RDM. Model RDMs are compared with each -> one curve per subject and layer.
Inference: one-sample sign-flip permutation test across subjects with cluster-mass correction
over time (two-sided), and the same test on the difference of two models' curves (paired).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.stats
import torch

from .tensors import as_tensor, like_input, small_work_threads
from .compare import compare_rdms
from .rdm import compute_rdms


def eeg_rdms(data, method: str = "correlation", window: int = 1, step: int = 1, n_folds: int | None = None,
             noise=None, device=None, counts=None):
    """One RDM per time point (or per window) from epoched EEG.

    Parameters
    ----------
    data : array (n_conditions, n_repetitions, n_channels, n_times) or (n_conditions, n_channels, n_times)
        Repetitions are averaged (``correlation``, ``euclidean``) or used as cross-validation folds
        (``crossnobis``; grouped into ``n_folds`` folds by repetition index modulo ``n_folds``).
    method : {"correlation", "euclidean", "crossnobis"}
    window : int
        Samples averaged per window (boxcar); 1 = every time point.
    step : int
        Samples between window starts.
    n_folds : int, optional
        Crossnobis folds (default: one per repetition).
    noise : array (n_channels, n_channels), optional
        Noise precision (euclidean -> Mahalanobis, crossnobis).
    counts : int array (n_conditions, n_repetitions), optional
        Trials behind each repetition slot of ``data`` when the slots are already means (e.g. a store's
        ``mean_by_fold``); default 1 each. Slots are averaged and folds cross-validated with every trial weighing
        the same, so crossnobis equals rsatoolbox's trial-level ``calc_rdm(..., cv_descriptor=...)`` also when
        folds hold unequal numbers of trials (:mod:`brainalign.rsa.crossnobis`).

    Returns
    -------
    rdms : same kind as ``data``, float32 (n_windows, n_conditions*(n_conditions-1)/2)
    window_starts : int numpy array (n_windows,), first sample of each window
    """
    x = as_tensor(data, device=device, dtype=torch.float64)  # windows and fold means in float64 (rdm.py)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"EEG data must be (conditions, [repetitions,] channels, times), got {tuple(x.shape)}")
    n_cond, n_reps, n_chan, n_times = x.shape
    if not 1 <= window <= n_times or step < 1:
        raise ValueError(f"window must be in 1..{n_times} and step >= 1")
    n = torch.ones((n_cond, n_reps), dtype=x.dtype, device=x.device)
    if counts is not None:
        n = as_tensor(counts, device=x.device, dtype=torch.float64)
        if n.shape != (n_cond, n_reps) or not bool((n >= 1).all()):
            raise ValueError(f"counts must be (n_conditions, n_repetitions) = {(n_cond, n_reps)} and >= 1")
    starts = np.arange(0, n_times - window + 1, step)
    if window > 1:
        kernel = torch.ones(1, 1, window, dtype=x.dtype, device=x.device) / window
        flat = x.reshape(-1, 1, n_times)
        x = torch.nn.functional.conv1d(flat, kernel, stride=step).reshape(n_cond, n_reps, n_chan, -1)
    elif step > 1:
        x = x[..., ::step]
    weighted = x if counts is None else x * n[:, :, None, None]
    fold_counts = None
    if method == "crossnobis":
        k = n_reps if n_folds is None else int(n_folds)
        if not 2 <= k <= n_reps:
            raise ValueError(f"crossnobis needs 2 <= n_folds <= n_repetitions ({n_reps})")
        fold_counts = torch.stack([n[:, f::k].sum(dim=1) for f in range(k)])  # (k, cond)
        folds = torch.stack([weighted[:, f::k].sum(dim=1) for f in range(k)]) / fold_counts[:, :, None, None]
        batch = folds.permute(3, 0, 1, 2)  # (win, k, cond, chan)
    else:
        batch = (weighted.sum(dim=1) / n.sum(dim=1)[:, None, None]).permute(2, 0, 1)  # (win, cond, chan)
    out = compute_rdms(batch.contiguous(), method=method, noise=noise, fold_counts=fold_counts)
    return like_input(out, data), starts


def rsa_timecourses(model_rdms, eeg_rdm_series, method: str = "spearman", device=None):
    """Model-vs-EEG similarity curves.

    Parameters
    ----------
    model_rdms : array (n_layers, P)
    eeg_rdm_series : array (n_subjects, n_times, P)
    method : comparison method (default Spearman)

    Returns
    -------
    curves : numpy float64 (n_subjects, n_layers, n_times)
    """
    sim = compare_rdms(model_rdms, eeg_rdm_series, method=method, device=device)  # (L, S, T)
    sim = np.asarray(torch.as_tensor(sim).cpu())
    return np.transpose(sim, (1, 0, 2))


@dataclass
class Cluster:
    """A contiguous run of time points beyond the cluster-forming threshold."""

    start: int  #: first index (inclusive)
    stop: int  #: last index + 1
    sign: int  #: +1 (above) or -1 (below the reference value)
    mass: float  #: sum of t-values in the cluster
    p_value: float


@dataclass
class ClusterTest:
    """Result of :func:`cluster_permutation_test`."""

    t_values: np.ndarray  #: (n_times,) observed one-sample t
    threshold: float  #: cluster-forming |t| threshold
    clusters: list = field(default_factory=list)  #: every observed cluster, with its p-value
    null_max_mass: np.ndarray = None  #: (n_permutations,) max |cluster mass| per permutation
    alpha: float = 0.05

    @property
    def significant(self) -> list:
        """Clusters with p < alpha."""
        return [c for c in self.clusters if c.p_value < self.alpha]

    def mask(self) -> np.ndarray:
        """bool (n_times,): time points inside a significant cluster."""
        m = np.zeros(len(self.t_values), dtype=bool)
        for c in self.significant:
            m[c.start:c.stop] = True
        return m


def _t_from_signs(x: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """One-sample t of sign-flipped data. x (S, T) float64, signs (N, S) -> (N, T)."""
    n = x.shape[0]
    mean = signs @ x / n
    ss = (x * x).sum(0, keepdim=True)  # invariant under sign flips
    var = (ss - n * mean * mean) / (n - 1)
    return mean / torch.sqrt(var.clamp_min(0.0) / n)


def _max_cluster_mass(t: torch.Tensor, threshold: float) -> torch.Tensor:
    """Max |cluster mass| per row of t (N, T); 0 where no cluster."""
    n, n_t = t.shape
    best = torch.zeros(n, dtype=t.dtype, device=t.device)
    for sign in (1.0, -1.0):
        st = torch.nan_to_num(t * sign, nan=0.0)
        m = st > threshold
        start = m.clone()
        start[:, 1:] &= ~m[:, :-1]
        label = torch.cumsum(start, dim=1) * m
        sums = torch.zeros(n, n_t + 1, dtype=t.dtype, device=t.device)
        sums.scatter_add_(1, label, st * m)
        best = torch.maximum(best, sums[:, 1:].max(dim=1).values)
    return best


def _exceedance_bound(mass: float) -> float:
    """Null masses at or above this count as reaching an observed |mass|.

    A relative tolerance absorbs the different summation orders of the observed and the null masses (the
    all-flipped permutation reproduces the observed clusters exactly, up to rounding); an infinite mass (a
    time point where every subject has the same value: t = ±inf) is reached only by infinite null masses,
    never compared through ``inf - inf`` (NaN, which would count nothing and give p = 0).
    """
    if not np.isfinite(mass):
        return mass
    return mass - 1e-12 * max(1.0, mass)


def _find_clusters(t: np.ndarray, threshold: float):
    out = []
    for sign in (1, -1):
        m = np.nan_to_num(sign * t) > threshold
        i = 0
        while i < len(m):
            if m[i]:
                j = i
                while j < len(m) and m[j]:
                    j += 1
                out.append((i, j, sign, float(t[i:j].sum())))
                i = j
            else:
                i += 1
    return sorted(out)


def cluster_permutation_test(curves, n_permutations: int = 1000, cluster_alpha: float = 0.05,
                             alpha: float = 0.05, popmean: float = 0.0, seed: int = 0,
                             device=None, chunk: int = 4096) -> ClusterTest:
    """One-sample, two-sided cluster-mass permutation test over time (sign flips across subjects).

    At each time point a one-sample t-test of the subjects' values against ``popmean``; runs of
    ``|t|`` above the two-sided ``cluster_alpha`` critical value (same sign) form clusters whose
    mass is the sum of t. The null distribution of the largest |mass| comes from flipping each
    subject's whole curve (around ``popmean``) with random signs; all 2**n_subjects flips are
    enumerated exactly when that is not more than ``n_permutations``.

    Parameters
    ----------
    curves : array (n_subjects, n_times)
    n_permutations : int
    cluster_alpha : float, cluster-forming threshold (two-sided p per time point)
    alpha : float, significance level of a cluster (used by ``.significant``)
    popmean : float, reference value
    seed : int, seed of the sign flips (fixed -> reproducible)

    Returns
    -------
    ClusterTest
        ``clusters`` (each with ``start, stop, sign, mass, p_value``), ``significant``, ``mask()``,
        ``t_values``, ``threshold``, ``null_max_mass``.
    """
    x = as_tensor(curves, device=device, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"curves must be (n_subjects >= 2, n_times), got {tuple(x.shape)}")
    with small_work_threads(min(n_permutations, 2 ** x.shape[0]) * x.shape[1] * 8, x.device):
        return _cluster_test(x, n_permutations, cluster_alpha, alpha, popmean, seed, chunk)


def _cluster_test(x, n_permutations, cluster_alpha, alpha, popmean, seed, chunk) -> ClusterTest:
    x = x - popmean
    n_sub = x.shape[0]
    threshold = float(scipy.stats.t.ppf(1.0 - cluster_alpha / 2.0, n_sub - 1))
    t_obs = _t_from_signs(x, torch.ones(1, n_sub, dtype=x.dtype, device=x.device))[0]
    exhaustive = 2 ** n_sub <= n_permutations
    if exhaustive:
        codes = torch.arange(2 ** n_sub, device=x.device)
        bits = (codes[:, None] >> torch.arange(n_sub, device=x.device)) & 1
        all_signs = (1 - 2 * bits).to(x.dtype)
    else:
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        all_signs = (torch.randint(0, 2, (n_permutations, n_sub), generator=gen) * 2 - 1).to(x.dtype).to(x.device)
    null = torch.cat([_max_cluster_mass(_t_from_signs(x, all_signs[i:i + chunk]), threshold)
                      for i in range(0, all_signs.shape[0], chunk)]).cpu().numpy()
    t_np = t_obs.cpu().numpy()
    clusters = []
    for start, stop, sign, mass in _find_clusters(t_np, threshold):
        exceed = int((null >= _exceedance_bound(abs(mass))).sum())
        p = exceed / len(null) if exhaustive else (exceed + 1) / (len(null) + 1)
        clusters.append(Cluster(start, stop, sign, mass, float(min(1.0, p))))
    return ClusterTest(t_values=t_np, threshold=threshold, clusters=clusters, null_max_mass=null, alpha=alpha)


def paired_cluster_test(curves_a, curves_b, **kwargs) -> ClusterTest:
    """Cluster permutation test of ``curves_a - curves_b`` (paired by subject), both (n_subjects, n_times).

    Keyword arguments as :func:`cluster_permutation_test`.
    """
    a, b = np.asarray(curves_a, dtype=float), np.asarray(curves_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired curves differ in shape: {a.shape} vs {b.shape}")
    return cluster_permutation_test(a - b, **kwargs)
