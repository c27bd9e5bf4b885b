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

import itertools
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .ridge import (_DTYPES, DEFAULT_ALPHAS, RidgeFit, _apply_standardize, _cv_torch, _refit_torch,
                    _resolve_device, kfold_splits, standardize_stats)

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
        dt = np.float64 if self.coef.dtype == np.float64 else np.float32
        out = np.empty((len(self.bands), X.shape[0], self.coef.shape[1]), dtype=dt)
        for s in range(0, X.shape[0], batch):
            Z = ((X[s : s + batch] - self.x_mean) / self.x_scale).astype(dt)
            for b, sl in enumerate(self.band_slices):
                out[b, s : s + batch] = (Z[:, sl] @ self.coef[sl]) * self.y_scale
        return out

    def subset(self, voxels) -> "BandedRidgeFit":
        v = np.asarray(voxels)
        return BandedRidgeFit(
            coef=self.coef[:, v], alpha=self.alpha[v], alphas=self.alphas, cv_mse=self.cv_mse[:, v],
            cv_r2=self.cv_r2[v], x_mean=self.x_mean, x_scale=self.x_scale, y_mean=self.y_mean[v],
            y_scale=self.y_scale[v], info=dict(self.info), bands=list(self.bands), band_sizes=list(self.band_sizes),
            band_weights=self.band_weights[v], candidates=self.candidates, candidate=self.candidate[v],
        )


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
    y = y - y.mean(0)
    P = np.asarray(y_pred_split, dtype=np.float64)
    P = P - P.mean(1, keepdims=True)
    total = P.sum(0)
    sst = (y * y).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((2 * y[None] - total[None]) * P).sum(1) / sst
    out[:, sst <= 1e-300] = np.nan
    return out


def _sklearn_cv(Z, Ys, alphas, splits, fold_centering):
    from sklearn.linear_model import Ridge

    cv = np.zeros((len(alphas), Ys.shape[1]))
    base = np.zeros(Ys.shape[1])
    for tr, va in splits:
        mu = Ys[tr].mean(0) if fold_centering else 0.0
        base += ((Ys[va] - mu) ** 2).mean(0) / len(splits)
        for i, a in enumerate(alphas):
            m = Ridge(alpha=float(a), fit_intercept=fold_centering).fit(Z[tr], Ys[tr])
            cv[i] += ((m.predict(Z[va]) - Ys[va]) ** 2).mean(0) / len(splits)
    return cv, base


def _sklearn_refit(Z, Ys, alpha):
    from sklearn.linear_model import Ridge

    coef = np.empty((Z.shape[1], Ys.shape[1]))
    for a in np.unique(alpha):
        sel = alpha == a
        coef[:, sel] = Ridge(alpha=float(a)).fit(Z, Ys[:, sel]).coef_.reshape(-1, Z.shape[1]).T
    return coef


def _fit_banded_himalaya(Xs, Ys, alphas, splits, cands, sizes, *, device, dtype, fold_centering, voxel_batch):
    from himalaya.backend import get_backend, set_backend
    from himalaya.ridge import BandedRidgeCV

    dev = _resolve_device(device)
    previous = get_backend().name
    set_backend("torch_cuda" if dev.type == "cuda" else "torch", on_error="raise")
    try:
        groups = np.repeat(np.arange(len(sizes)), sizes)
        # himalaya rescales X back by dividing by sqrt(γ) after each candidate: exact zeros would give NaN
        hc = np.maximum(cands, 1e-12)
        hc = hc / hc.sum(1, keepdims=True)
        params = dict(n_iter=hc, alphas=np.asarray(alphas), progress_bar=False, warn=False)
        if voxel_batch:
            params.update(n_targets_batch=int(voxel_batch), n_targets_batch_refit=int(voxel_batch))
        model = BandedRidgeCV(groups=groups, solver_params=params, fit_intercept=fold_centering, cv=list(splits))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.fit(Xs, Ys)
        be = get_backend()
        deltas = np.asarray(be.to_numpy(model.deltas_), dtype=np.float64)  # (B, t) = log(γ / α)
        coef = np.asarray(be.to_numpy(model.coef_), dtype=Xs.dtype)
        scores = np.asarray(be.to_numpy(model.cv_scores_), dtype=np.float64)  # (n_cand, t) neg MSE at best α
    finally:
        set_backend(previous)
    ratio = np.exp(deltas).T  # γ / α, (t, B)
    alpha = 1.0 / ratio.sum(1)
    gam = ratio * alpha[:, None]
    # snap to the candidate set and the grid (himalaya returns exp(log(.)))
    cand = np.argmin(((gam[:, None, :] - hc[None]) ** 2).sum(2), axis=1)
    alpha = np.asarray(alphas)[np.abs(np.log(alpha)[:, None] - np.log(alphas)[None, :]).argmin(1)]
    return dict(coef=coef, alpha=alpha, candidate=cand, cv_mse=-scores, info={"backend": "himalaya"})


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
    splits, device, dtype, fold_centering, max_batch_bytes, voxel_batch
        As in :func:`brainalign.encoding.fit_voxelwise_ridge`.

    Returns
    -------
    BandedRidgeFit
    """
    if progress is None:
        from .._io import progress as _progress

        progress = _progress
    if isinstance(bands, dict):
        names = list(bands) if names is None else list(names)
        bands = list(bands.values())
    bands = [np.asarray(b) for b in bands]
    names = [f"band{k}" for k in range(len(bands))] if names is None else [str(n) for n in names]
    if not bands or len(names) != len(bands):
        raise ValueError("need at least one band and one name per band")
    Y_train = np.asarray(Y_train)
    n = Y_train.shape[0]
    if Y_train.ndim != 2 or any(b.ndim != 2 or b.shape[0] != n for b in bands):
        raise ValueError(f"bands {[b.shape for b in bands]} and Y {Y_train.shape} must be 2-D with the same rows")
    if not (all(np.isfinite(b).all() for b in bands) and np.isfinite(Y_train).all()):
        raise ValueError("bands and Y_train must be finite")
    alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())
    if alphas.size == 0 or (alphas <= 0).any():
        raise ValueError("alphas must be a non-empty list of positive numbers")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    B = len(bands)
    if candidates is None:
        cands = band_candidates(B, search, seed)
    else:
        cands = np.asarray(candidates, dtype=np.float64)
        if cands.ndim != 2 or cands.shape[1] != B or (cands < 0).any() or (cands.sum(1) <= 0).any():
            raise ValueError(f"candidates must be (n, {B}) non-negative with positive row sums")
        cands = cands / cands.sum(1, keepdims=True)
    if splits is None:
        splits = kfold_splits(n, n_folds)
    splits = [(np.asarray(tr), np.asarray(va)) for tr, va in splits]

    sizes = [b.shape[1] for b in bands]
    X = np.concatenate(bands, axis=1)
    npdt = np.float32 if dtype == "float32" else np.float64
    x_mean, x_scale = standardize_stats(X)
    y_mean, y_scale = standardize_stats(Y_train)
    Xs = _apply_standardize(X, x_mean, x_scale, npdt)
    Ys = _apply_standardize(Y_train, y_mean, y_scale, npdt)
    del X
    col_band = np.repeat(np.arange(B), sizes)
    t = Ys.shape[1]
    info = {"backend": backend, "n_candidates": len(cands), "search": search if candidates is None else "explicit",
            "n_folds": len(splits), "bands": names}

    if backend == "himalaya":
        res = _fit_banded_himalaya(Xs, Ys, alphas, splits, cands, sizes, device=device, dtype=dtype,
                                   fold_centering=fold_centering, voxel_batch=voxel_batch)
        coef, alpha, cand, cv_best = res["coef"], res["alpha"], res["candidate"], res["cv_mse"]
        base = np.zeros(t)
        for tr, va in splits:
            mu = Ys[tr].mean(0, dtype=np.float64) if fold_centering else 0.0
            base += ((Ys[va] - mu) ** 2).mean(0) / len(splits)
    elif backend in ("torch", "sklearn"):
        if backend == "torch":
            dev = _resolve_device(device)
            tdt = _DTYPES[dtype]
            X64 = torch.as_tensor(Xs, device=dev).to(torch.float64)
            alphas_t = torch.as_tensor(alphas, dtype=torch.float64, device=dev)
            info.update(device=str(dev), dtype=dtype)
            flops = 0.0
        cv_best = np.empty((len(cands), t))
        best_alpha_idx = np.empty((len(cands), t), dtype=int)
        base = None
        for c, gamma in enumerate(progress(cands, desc="banded ridge candidates", leave=False)):
            cols = np.flatnonzero(gamma[col_band] > 0)
            scale = np.sqrt(gamma[col_band][cols])
            if backend == "torch":
                Z = X64[:, torch.as_tensor(cols, device=dev)] * torch.as_tensor(scale, device=dev)[None, :]
                cv, b0, fl, mode = _cv_torch(Z, Ys, alphas_t, splits, dev=dev, tdt=tdt, fold_centering=fold_centering,
                                             max_batch_bytes=max_batch_bytes, voxel_batch=voxel_batch,
                                             progress=lambda x, **_: x)
                cv, b0 = cv.cpu().numpy(), b0.cpu().numpy()
                flops += fl
                info["mode"] = mode
            else:
                cv, b0 = _sklearn_cv(Xs[:, cols].astype(np.float64) * scale, Ys.astype(np.float64), alphas, splits,
                                     fold_centering)
            base = b0 if base is None else base
            best_alpha_idx[c] = np.argmin(cv, axis=0)  # first minimum -> smallest alpha on ties
            cv_best[c] = cv[best_alpha_idx[c], np.arange(t)]
        cand = np.argmin(cv_best, axis=0)  # first minimum -> earlier candidate on ties
        alpha = alphas[best_alpha_idx[cand, np.arange(t)]]
        coef = np.zeros((Xs.shape[1], t), dtype=npdt if backend == "torch" else np.float64)
        for c in np.unique(cand):
            vox = np.flatnonzero(cand == c)
            cols = np.flatnonzero(cands[c][col_band] > 0)
            scale = np.sqrt(cands[c][col_band][cols])
            if backend == "torch":
                Z = X64[:, torch.as_tensor(cols, device=dev)] * torch.as_tensor(scale, device=dev)[None, :]
                C, fl, _ = _refit_torch(Z, Ys[:, vox], torch.as_tensor(alpha[vox], dtype=torch.float64, device=dev),
                                        dev=dev, tdt=tdt, max_batch_bytes=max_batch_bytes, voxel_batch=voxel_batch)
                flops += fl
            else:
                C = _sklearn_refit(Xs[:, cols].astype(np.float64) * scale, Ys[:, vox].astype(np.float64), alpha[vox])
            coef[np.ix_(cols, vox)] = C * scale[:, None].astype(C.dtype)
        if backend == "torch":
            info["gemm_flops"] = flops
            info["n_refits"] = int(len(np.unique(cand)))
    else:
        raise ValueError(f"unknown backend {backend!r} (torch, himalaya, sklearn)")

    cv_r2 = 1.0 - cv_best[cand, np.arange(t)] / np.maximum(base, 1e-30)
    edge = np.mean((alpha <= alphas[0]) | (alpha >= alphas[-1])) if len(alphas) > 1 else 0.0
    info["fraction_alpha_on_grid_edge"] = float(edge)
    return BandedRidgeFit(
        coef=coef, alpha=np.asarray(alpha, dtype=np.float64), alphas=alphas, cv_mse=np.asarray(cv_best),
        cv_r2=np.asarray(cv_r2, dtype=np.float64), x_mean=x_mean, x_scale=x_scale, y_mean=y_mean, y_scale=y_scale,
        info=info, bands=names, band_sizes=sizes, band_weights=cands[cand], candidates=cands,
        candidate=np.asarray(cand),
    )


__all__ = ["BandedRidgeFit", "DEFAULT_BAND_SEARCH", "band_candidates", "band_shares", "fit_banded_ridge", "r2_split",
           "simplex_grid"]
