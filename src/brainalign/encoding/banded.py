"""Banded ridge regression: several feature bands (e.g. CNN layers), one penalty per band and voxel.

Per voxel ``v`` with bands ``X = [X_1, ..., X_B]`` (each z-scored with training statistics)::

    w* = argmin_w ||y - Σ_b X_b w_b||² + Σ_b α_b ||w_b||²,        α_b = α / γ_b

with band weights ``γ`` on the simplex (γ_b ≥ 0, Σ γ_b = 1) and a global ``α``. For a fixed ``γ`` this is
ordinary ridge with penalty ``α`` on the rescaled features ``Z = [√γ_1 X_1, ..., √γ_B X_B]`` (``w_b = √γ_b w̃_b``),
so every candidate ``γ`` is one run of the batched eigen solver of :mod:`brainalign.encoding.ridge` over the
whole ``α`` grid and all voxels; each voxel then takes the (γ, α) pair with the smallest K-fold CV MSE.
A band with γ_b = 0 is left out of the model (α_b = ∞).

This is the parametrisation and search of himalaya's ``BandedRidgeCV`` / ``MultipleKernelRidgeCV``
(``solver="random_search"``: ``deltas = log(γ / α)``), with the candidate set made explicit
(:func:`band_candidates`):

* ``random:N`` (default ``random:100``): the centre of the simplex (all bands equal), the B vertices (each band
  alone, i.e. the single-layer ridge models, so the banded CV score is never worse than the best single layer
  on the same folds and grid), then Dirichlet samples cycling through concentrations 0.1 and 1 (himalaya's
  default ``concentration=[0.1, 1]``: 0.1 puts most weight on one or two bands, 1 is uniform on the simplex)
  until N candidates; seeded.
* ``grid:K``: every γ with γ_b = k_b / K (the simplex lattice, ``C(K+B-1, B-1)`` points); exhaustive for few
  bands (B = 3, K = 10: 66 candidates).

Selection rule: per voxel the candidate with the smallest CV MSE at its best α (ties: the earlier candidate,
as in himalaya; within a candidate, ties go to the smallest α as in :func:`fit_voxelwise_ridge`). Refit on all
training samples once per candidate that some voxel chose. Cost: (n_folds + 1) decompositions and
``n_folds`` CV GEMM passes per candidate, i.e. about N times one :func:`fit_voxelwise_ridge` on the
concatenated features.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from .._io import progress as progress_bar
from .ridge import (DEFAULT_ALPHAS, RidgeFit, RidgeProblem, SklearnRidgeSolver, TorchEigenSolver, constant_columns,
                    cross_validated_r2, fitted_y_scale, fold_mean_mse, fraction_alpha_on_grid_edge, himalaya_backend,
                    nearest_on_log_grid, prepare_ridge_problem, solver_for)

log = logging.getLogger(__name__)

#: default candidate search
DEFAULT_BAND_SEARCH = "random:100"


def simplex_grid(n_bands: int, steps: int) -> np.ndarray:
    """All band weights ``k / steps`` on the simplex.

    Returns
    -------
    ndarray (C(steps + n_bands - 1, n_bands - 1), n_bands) float64, rows sum to 1
    """
    if n_bands < 1 or steps < 1:
        raise ValueError("n_bands and steps must be >= 1")
    rows = [np.array(c) for c in itertools.product(range(steps + 1), repeat=n_bands) if sum(c) == steps]
    return np.asarray(rows, dtype=np.float64)[::-1] / steps


def band_candidates(n_bands: int, search: str = DEFAULT_BAND_SEARCH, seed: int = 0,
                    concentration=(0.1, 1.0)) -> np.ndarray:
    """Candidate band weights γ on the simplex (see the module docstring).

    Parameters
    ----------
    n_bands : int
    search : str
        ``"random:N"`` (centre, vertices, Dirichlet samples; N total, at least 1 + n_bands) or ``"grid:K"``
        (simplex lattice with step 1/K).
    seed : int
        Seed of the Dirichlet samples.
    concentration : sequence of float
        Dirichlet concentrations, cycled.

    Returns
    -------
    ndarray (n_candidates, n_bands) float64; rows sum to 1, no duplicates, the centre first.
    """
    kind, _, num = str(search).partition(":")
    try:
        num = int(num)
    except ValueError:
        raise ValueError(f"band search {search!r}: expected 'random:N' or 'grid:K'") from None
    if n_bands == 1:
        return np.ones((1, 1))
    if kind == "grid":
        grid = simplex_grid(n_bands, num)
        centre = np.full(n_bands, 1.0 / n_bands)
        # the centre first (himalaya tries the equal weighting first) when it is on the lattice
        is_c = np.all(np.isclose(grid, centre), axis=1)
        return np.concatenate([grid[is_c], grid[~is_c]])
    if kind != "random":
        raise ValueError(f"band search {search!r}: expected 'random:N' or 'grid:K'")
    if num < 1 + n_bands:
        raise ValueError(f"band search {search!r}: N must be >= 1 + n_bands = {1 + n_bands}")
    rng = np.random.default_rng(seed)
    out = [np.full(n_bands, 1.0 / n_bands), *np.eye(n_bands)]
    conc = list(np.atleast_1d(concentration).astype(float))
    k = 0
    while len(out) < num:
        g = rng.dirichlet(np.full(n_bands, conc[k % len(conc)]))
        k += 1
        g = np.where(g < 1e-12, 0.0, g)
        if g.sum() <= 0:
            continue
        g = g / g.sum()
        if not any(np.allclose(g, o, rtol=0, atol=1e-9) for o in out):
            out.append(g)
    return np.asarray(out, dtype=np.float64)


@dataclass
class BandedRidgeFit(RidgeFit):
    """A fitted banded ridge model. Coefficients map the concatenated z-scored bands to z-scored responses
    (band scalings already folded in), so :meth:`RidgeFit.predict` applies to ``np.hstack(bands)``.

    Attributes (besides those of :class:`RidgeFit`)
    ----------
    alpha : ndarray (n_voxels,)
        Global α chosen per voxel (band penalties are ``alpha / band_weights``).
    cv_mse : ndarray (n_candidates, n_voxels)
        CV MSE of every candidate at its best α (z-scored response units).
    bands : list of str
    band_sizes : list of int
        Number of features of each band, in order.
    band_weights : ndarray (n_voxels, n_bands)
        Chosen γ per voxel (rows sum to 1).
    candidates : ndarray (n_candidates, n_bands)
        The band weights searched.
    candidate : ndarray int (n_voxels,)
        Index of each voxel's chosen candidate.
    """

    bands: list = field(default_factory=list)
    band_sizes: list = field(default_factory=list)
    band_weights: np.ndarray = None
    candidates: np.ndarray = None
    candidate: np.ndarray = None

    @property
    def band_slices(self) -> list:
        edges = np.concatenate([[0], np.cumsum(self.band_sizes)]).astype(int)
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]

    @property
    def band_alphas(self) -> np.ndarray:
        """Per-voxel, per-band penalty α / γ_b on the z-scored features (inf for a band left out).

        Returns
        -------
        ndarray (n_voxels, n_bands)
        """
        with np.errstate(divide="ignore"):
            return np.where(self.band_weights > 0, self.alpha[:, None] / self.band_weights, np.inf)

    def predict_split(self, X, batch: int = 4096) -> np.ndarray:
        """Each band's share of the prediction, in the units of Y, without the intercept:
        ``predict(X) = y_mean + predict_split(X).sum(0)``.

        Parameters
        ----------
        X : ndarray (n_samples, n_features) concatenated bands

        Returns
        -------
        ndarray (n_bands, n_samples, n_voxels)
        """
        X = np.asarray(X)
        out = np.empty((len(self.bands), X.shape[0], self.coef.shape[1]), dtype=self._predict_dtype)
        for rows, Z in self._standardized_batches(X, batch):
            for b, sl in enumerate(self.band_slices):
                out[b, rows] = (Z[:, sl] @ self.coef[sl]) * self.y_scale
        return out

    def subset(self, voxels) -> "BandedRidgeFit":
        """The same model restricted to some voxels (index or bool mask)."""
        v = np.asarray(voxels)
        return dataclasses.replace(super().subset(v), bands=list(self.bands), band_sizes=list(self.band_sizes),
                                   band_weights=self.band_weights[v], candidate=self.candidate[v])


def band_shares(fit: BandedRidgeFit, X) -> np.ndarray:
    """Each band's share of the variance of the prediction over the samples ``X`` (e.g. the training samples).

    ``share_b = Var(ŷ_b) / Σ_c Var(ŷ_c)`` with ``ŷ_b`` the band's part of the prediction
    (:meth:`BandedRidgeFit.predict_split`). Unlike the band weight γ_b (a prior variance *per feature*, which
    depends on how many features a band has and how they are scaled), the share says how much of a voxel's
    predicted response comes from each band.

    Parameters
    ----------
    fit : BandedRidgeFit
    X : ndarray (n_samples, n_features) concatenated bands

    Returns
    -------
    ndarray (n_voxels, n_bands), rows sum to 1 (0 where the prediction is constant)
    """
    P = np.asarray(fit.predict_split(X), dtype=np.float64)
    v = ((P - P.mean(1, keepdims=True)) ** 2).sum(1).T  # (n_voxels, n_bands)
    tot = v.sum(1, keepdims=True)
    return np.divide(v, tot, out=np.zeros_like(v), where=tot > 0)


def r2_split(y_true, y_pred_split) -> np.ndarray:
    """Product-measure split of R² over bands (as ``himalaya.scoring.r2_score_split``), on mean-centred data.

    ``y_true`` and every band's prediction are centred over samples; then
    ``R²_b = Σ_samples (2 y ŷ_b - ŷ_b Σ_c ŷ_c) / Σ_samples y²`` and ``Σ_b R²_b = 1 - ||y - Σ_b ŷ_b||² / ||y||²``.

    Parameters
    ----------
    y_true : ndarray (n_samples, n_voxels)
    y_pred_split : ndarray (n_bands, n_samples, n_voxels)

    Returns
    -------
    ndarray (n_bands, n_voxels) float64 (NaN where y is constant)
    """
    y = np.asarray(y_true, dtype=np.float64)
    constant = constant_columns(y)  # exactly, before centring leaves a rounding residue
    y = y - y.mean(0)
    P = np.asarray(y_pred_split, dtype=np.float64)
    P = P - P.mean(1, keepdims=True)
    total = P.sum(0)
    sst = (y * y).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((2 * y[None] - total[None]) * P).sum(1) / sst
    out[:, constant | (sst <= 1e-300)] = np.nan
    return out


def _scaled_columns(gamma, col_band):
    """Columns of the bands a candidate keeps (γ_b > 0) and their factors ``√γ_b``."""
    g = gamma[col_band]
    cols = np.flatnonzero(g > 0)
    return cols, np.sqrt(g[cols])


def _fit_by_candidate_search(solver_class, problem: RidgeProblem, cands, sizes, *, progress, **options) -> dict:
    """Torch or sklearn: one CV over the α grid per candidate γ, each voxel's best (γ, α), one refit per
    candidate some voxel chose (see the module docstring)."""
    solver = solver_class(problem, **options)
    col_band = np.repeat(np.arange(len(sizes)), sizes)
    t = problem.n_voxels
    voxel_index = np.arange(t)
    cv_best = np.empty((len(cands), t))
    best_alpha_idx = np.empty((len(cands), t), dtype=int)
    base_mse = None
    for c, gamma in enumerate(progress(cands, desc="banded ridge candidates", leave=False)):
        cv, base = solver.cv(*_scaled_columns(gamma, col_band))
        base_mse = base if base_mse is None else base_mse  # the same for every candidate
        best_alpha_idx[c] = np.argmin(cv, axis=0)  # first minimum -> smallest alpha on ties
        cv_best[c] = cv[best_alpha_idx[c], voxel_index]
    cand = np.argmin(cv_best, axis=0)  # first minimum -> earlier candidate on ties
    alpha = problem.alphas[best_alpha_idx[cand, voxel_index]]
    coef = np.zeros((problem.X.shape[1], t), dtype=solver.coef_dtype)
    chosen = np.unique(cand)
    for c in chosen:
        vox = np.flatnonzero(cand == c)
        cols, scale = _scaled_columns(cands[c], col_band)
        C = solver.refit(alpha[vox], vox, cols, scale)
        coef[np.ix_(cols, vox)] = C * scale[:, None].astype(C.dtype)  # back to the unscaled features
    return dict(coef=coef, alpha=alpha, candidate=cand, cv_mse=cv_best, base_mse=base_mse,
                info={**solver.info(), "n_refits": int(len(chosen))})


def _fit_himalaya(problem: RidgeProblem, cands, sizes, *, device, fold_centering, voxel_batch, **_) -> dict:
    """``himalaya.ridge.BandedRidgeCV`` with ``n_iter`` = the candidates, the same folds and α grid."""
    from himalaya.ridge import BandedRidgeCV

    groups = np.repeat(np.arange(len(sizes)), sizes)
    # himalaya rescales X back by dividing by sqrt(γ) after each candidate: exact zeros would give NaN
    hc = np.maximum(cands, 1e-12)
    hc = hc / hc.sum(1, keepdims=True)
    params = dict(n_iter=hc, alphas=problem.alphas, progress_bar=False, warn=False)
    if voxel_batch:
        params.update(n_targets_batch=int(voxel_batch), n_targets_batch_refit=int(voxel_batch))
    with himalaya_backend(device) as be:
        model = BandedRidgeCV(groups=groups, solver_params=params, fit_intercept=fold_centering,
                              cv=list(problem.splits))
        model.fit(problem.X, problem.Y)
        deltas = np.asarray(be.to_numpy(model.deltas_), dtype=np.float64)  # (B, t) = log(γ / α)
        coef = np.asarray(be.to_numpy(model.coef_), dtype=problem.X.dtype)
        scores = np.asarray(be.to_numpy(model.cv_scores_), dtype=np.float64)  # (n_cand, t) neg MSE at best α
    ratio = np.exp(deltas).T  # γ / α, (t, B)
    alpha = 1.0 / ratio.sum(1)
    gam = ratio * alpha[:, None]
    # snap to the candidate set and the grid (himalaya returns exp(log(.)))
    cand = np.argmin(((gam[:, None, :] - hc[None]) ** 2).sum(2), axis=1)
    alpha = problem.alphas[nearest_on_log_grid(alpha, problem.alphas)]
    return dict(coef=coef, alpha=alpha, candidate=cand, cv_mse=-scores,
                base_mse=fold_mean_mse(problem.Y, problem.splits, fold_centering), info={})


#: backend name -> fit(problem, candidates, band_sizes, *, device, fold_centering, max_batch_bytes, voxel_batch,
#: progress) -> dict
SOLVERS = {
    "torch": functools.partial(_fit_by_candidate_search, TorchEigenSolver),
    "himalaya": _fit_himalaya,
    "sklearn": functools.partial(_fit_by_candidate_search, SklearnRidgeSolver),
}


def _check_candidates(candidates, n_bands: int) -> np.ndarray:
    cands = np.asarray(candidates, dtype=np.float64)
    if cands.ndim != 2 or cands.shape[1] != n_bands or (cands < 0).any() or (cands.sum(1) <= 0).any():
        raise ValueError(f"candidates must be (n, {n_bands}) non-negative with positive row sums")
    return cands / cands.sum(1, keepdims=True)


def fit_banded_ridge(
    bands,
    Y_train,
    alphas=DEFAULT_ALPHAS,
    n_folds: int = 5,
    backend: str = "torch",
    *,
    names=None,
    search: str = DEFAULT_BAND_SEARCH,
    candidates=None,
    seed: int = 0,
    splits=None,
    device="cpu",
    dtype: str = "float32",
    fold_centering: bool = True,
    max_batch_bytes: int = 512 * 2**20,
    voxel_batch: int | None = None,
    progress=None,
) -> BandedRidgeFit:
    """Banded ridge over several feature bands with per-voxel band weights and α chosen by K-fold CV.

    Parameters
    ----------
    bands : list of ndarray (n_samples, n_features_b), or dict name -> ndarray
        Training features of each band (raw; z-scored here with their own statistics).
    Y_train : ndarray (n_samples, n_voxels)
        Training responses (z-scored per voxel here).
    alphas : array-like (n_alphas,)
        Grid of the global α (band penalties are α / γ_b).
    n_folds : int
        Contiguous K-fold (``sklearn.model_selection.KFold``), unless ``splits``.
    backend : {"torch", "himalaya", "sklearn"}
        ``torch``: our batched eigen solver once per candidate; ``himalaya``: ``himalaya.ridge.BandedRidgeCV``
        with ``n_iter`` = the same candidates; ``sklearn``: brute-force loop (tiny problems and tests).
    names : list of str, optional
        Band names (default: dict keys or ``band0``, ``band1``, ...).
    search : str
        Candidate set, ``"random:N"`` or ``"grid:K"`` (:func:`band_candidates`).
    candidates : ndarray (n_candidates, n_bands), optional
        Explicit band weights (rows are normalised to sum 1); overrides ``search``.
    seed : int
        Seed of the random candidates.
    splits, device, dtype, fold_centering, max_batch_bytes, voxel_batch, progress
        As in :func:`brainalign.encoding.fit_voxelwise_ridge`.

    Returns
    -------
    BandedRidgeFit
    """
    fit = solver_for(SOLVERS, backend)
    if isinstance(bands, dict):
        names = list(bands) if names is None else list(names)
        bands = list(bands.values())
    bands = [np.asarray(b) for b in bands]
    names = [f"band{k}" for k in range(len(bands))] if names is None else [str(n) for n in names]
    if not bands or len(names) != len(bands):
        raise ValueError("need at least one band and one name per band")
    Y_train = np.asarray(Y_train)
    if Y_train.ndim != 2 or any(b.ndim != 2 or b.shape[0] != Y_train.shape[0] for b in bands):
        raise ValueError(f"bands {[b.shape for b in bands]} and Y {Y_train.shape} must be 2-D with the same rows")
    if candidates is None:
        cands = band_candidates(len(bands), search, seed)
    else:
        cands = _check_candidates(candidates, len(bands))
    sizes = [b.shape[1] for b in bands]
    # the concatenated raw bands live only until they are standardised
    problem = prepare_ridge_problem(np.concatenate(bands, axis=1), Y_train, alphas, n_folds, splits, dtype)
    res = fit(problem, cands, sizes, device=device, fold_centering=fold_centering, max_batch_bytes=max_batch_bytes,
              voxel_batch=voxel_batch, progress=progress or progress_bar)
    t = problem.n_voxels
    cand, alpha = np.asarray(res["candidate"]), np.asarray(res["alpha"], dtype=np.float64)
    cv_r2 = cross_validated_r2(res["cv_mse"][cand, np.arange(t)], res["base_mse"], problem.y_constant)
    info = {"backend": backend, "n_candidates": len(cands), "search": search if candidates is None else "explicit",
            "n_folds": len(problem.splits), "bands": names, **res["info"],
            "fraction_alpha_on_grid_edge": fraction_alpha_on_grid_edge(alpha, problem.alphas)}
    return BandedRidgeFit(
        coef=res["coef"], alpha=alpha, alphas=problem.alphas, cv_mse=np.asarray(res["cv_mse"]),
        cv_r2=np.asarray(cv_r2, dtype=np.float64), x_mean=problem.x_mean, x_scale=problem.x_scale,
        y_mean=problem.y_mean, y_scale=fitted_y_scale(problem), info=info, bands=names, band_sizes=sizes,
        band_weights=cands[cand], candidates=cands, candidate=cand,
    )


__all__ = ["BandedRidgeFit", "DEFAULT_BAND_SEARCH", "SOLVERS", "band_candidates", "band_shares", "fit_banded_ridge",
           "r2_split", "simplex_grid"]
