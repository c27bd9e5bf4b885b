"""Voxelwise ridge regression with the regularisation chosen per voxel by K-fold cross-validation.

Primary solver (``backend="torch"``): for every training fold one symmetric eigendecomposition, of
the feature Gram ``XᵀX`` (p × p) when the fold has at least as many samples as features, otherwise of
the linear kernel ``XXᵀ`` (n × n). Both give, with ``r = min(n_train, p)``,

    validation prediction(α) = A · diag(1 / (λ + α)) · B,      A: (n_val, r),  B = Mᵀ Y_train: (r, n_voxels)

(primal: ``A = X_val V``, ``M = X_train V``; kernel: ``A = X_val X_trainᵀ U``, ``M = U``), so ``A``, ``M`` and
``λ`` are computed once per fold and reused for every alpha and every voxel. The cost per alpha and fold
is one GEMM of ``n_val × r × n_voxels``, done for all alphas of a chunk at once and batched over voxels
so memory stays bounded. The final fit on all training samples uses one more decomposition and
applies each voxel's own alpha. Decompositions are computed in float64; the bulk GEMMs in the
requested ``dtype`` (float32 by default). Works on CPU or CUDA (``device``).

``backend="himalaya"`` runs himalaya's ``RidgeCV`` (n ≥ p) or ``KernelRidgeCV`` (n < p) with
``local_alpha=True`` on the same standardised data and the same folds (reference and alternative).
``backend="sklearn"`` is a brute-force per-alpha/per-fold loop over ``sklearn.linear_model.Ridge``
(small problems and tests only).

Dispatch: :func:`prepare_ridge_problem` checks and standardises the inputs once (a :class:`RidgeProblem`),
then :data:`SOLVERS` maps the backend name to one fit function. The torch and sklearn backends are solver
objects (:class:`TorchEigenSolver`, :class:`SklearnRidgeSolver`) with the same two operations, ``cv`` over the
alpha grid and ``refit`` with per-voxel alphas, on all features or a scaled column subset; banded ridge
(:mod:`brainalign.encoding.banded`) runs the same objects once per band-weight candidate.

Conventions shared by all backends: X and Y are standardised (z-scored, population std) with the
statistics of the training samples passed in; inside CV each training fold is re-centred with its own
means (an intercept, as in ``Ridge(fit_intercept=True)`` and himalaya ``fit_intercept=True``); the CV score
is the mean over folds of the per-fold mean squared error (himalaya's ``l2_neg_loss``); ties pick the
smallest alpha. A voxel whose training responses are all equal (a dead voxel) has no variance to explain: its
``cv_r2`` is NaN (0 / 0), not 1, its coefficients are 0 and it predicts its constant value
(docs/encoding.md, "Scores").
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .._io import progress as progress_bar
from ..devices import resolve_device

log = logging.getLogger(__name__)

#: default alpha grid (log-spaced, 20 values)
DEFAULT_ALPHAS = np.logspace(-1, 7, 20)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def standardize_stats(A, ddof: int = 0):
    """Mean and scale (population std; 1 where constant) of the columns of ``A``.

    Parameters
    ----------
    A : ndarray (n_samples, n_columns)

    Returns
    -------
    mean, scale : ndarray (n_columns,) float64
    """
    A = np.asarray(A)
    mean = A.mean(0, dtype=np.float64)
    # two-pass variance in float64 without materialising a float64 copy of A
    var = np.zeros(A.shape[1], dtype=np.float64)
    step = max(1, int(2**26 // max(1, A.shape[1])))
    for start in range(0, A.shape[0], step):
        block = A[start : start + step].astype(np.float64) - mean
        var += (block * block).sum(0)
    var /= max(1, A.shape[0] - ddof)
    scale = np.sqrt(var)
    scale[~np.isfinite(scale) | (scale < 1e-12)] = 1.0
    return mean, scale


def constant_columns(A) -> np.ndarray:
    """Columns of ``A`` whose values are all equal (exactly: no rounding threshold), read a slab of rows at a time.

    Parameters
    ----------
    A : ndarray (n_samples, n_columns)

    Returns
    -------
    bool ndarray (n_columns,)
    """
    A = np.asarray(A)
    if A.shape[0] == 0:
        return np.ones(A.shape[1], dtype=bool)
    first = A[0]
    same = np.ones(A.shape[1], dtype=bool)
    step = max(1, int(2**26 // max(1, A.shape[1])))
    for start in range(1, A.shape[0], step):
        same &= (A[start:start + step] == first).all(0)
    return same


def _apply_standardize(A, mean, scale, dtype=np.float32):
    out = np.empty(A.shape, dtype=dtype)
    step = max(1, int(2**26 // max(1, A.shape[1])))
    for start in range(0, A.shape[0], step):
        out[start : start + step] = (A[start : start + step] - mean) / scale
    return out


@dataclass
class RidgeFit:
    """A fitted voxelwise ridge model (coefficients live in standardised units).

    Attributes
    ----------
    coef : ndarray (n_features, n_voxels) float32
        Weights mapping z-scored features to z-scored responses.
    alpha : ndarray (n_voxels,)
        Alpha chosen per voxel by CV.
    alphas : ndarray (n_alphas,)
        The grid searched.
    cv_mse : ndarray (n_alphas, n_voxels)
        Mean over folds of the validation MSE (z-scored response units).
    cv_r2 : ndarray (n_voxels,)
        Cross-validated R² at the chosen alpha (1 - MSE / MSE of the training-fold mean); NaN for a voxel
        whose training responses are all equal (nothing to explain).
    x_mean, x_scale : ndarray (n_features,)
    y_mean, y_scale : ndarray (n_voxels,)
        Training mean and population std of each voxel (``y_scale`` 0 for a dead voxel, whose coefficients
        are 0: it predicts ``y_mean`` and has no residual variance).
    """

    coef: np.ndarray
    alpha: np.ndarray
    alphas: np.ndarray
    cv_mse: np.ndarray
    cv_r2: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    info: dict = field(default_factory=dict)

    def predict(self, X, batch: int = 4096) -> np.ndarray:
        """Predicted responses in the original units of Y.

        Parameters
        ----------
        X : ndarray (n_samples, n_features)

        Returns
        -------
        ndarray (n_samples, n_voxels), float32 (float64 if the model was fitted in float64)
        """
        X = np.asarray(X)
        out = np.empty((X.shape[0], self.coef.shape[1]), dtype=self._predict_dtype)
        for rows, Z in self._standardized_batches(X, batch):
            out[rows] = (Z @ self.coef) * self.y_scale + self.y_mean
        return out

    @property
    def _predict_dtype(self):
        return np.float64 if self.coef.dtype == np.float64 else np.float32

    def _standardized_batches(self, X, batch: int):
        """``(rows, Z)`` per batch of samples: a slice and the z-scored features (n_batch, n_features)."""
        for start in range(0, X.shape[0], batch):
            rows = slice(start, start + batch)
            yield rows, ((X[rows] - self.x_mean) / self.x_scale).astype(self._predict_dtype)

    def subset(self, voxels) -> "RidgeFit":
        """The same model restricted to some voxels (index or bool mask)."""
        v = np.asarray(voxels)
        return dataclasses.replace(
            self, coef=self.coef[:, v], alpha=self.alpha[v], cv_mse=self.cv_mse[:, v], cv_r2=self.cv_r2[v],
            y_mean=self.y_mean[v], y_scale=self.y_scale[v], info=dict(self.info),
        )


def kfold_splits(n_samples: int, n_folds: int = 5):
    """Contiguous K-fold splits, identical to ``sklearn.model_selection.KFold(n_folds)`` (no shuffle).

    Returns
    -------
    list of (train_idx, val_idx) int arrays
    """
    from sklearn.model_selection import KFold

    if n_folds < 2 or n_folds > n_samples:
        raise ValueError(f"n_folds={n_folds} must be in [2, n_samples={n_samples}]")
    return [(tr, va) for tr, va in KFold(n_folds).split(np.zeros(n_samples))]


@dataclass
class RidgeProblem:
    """Training data as every solver receives it: checked, z-scored, with the CV folds and the alpha grid.

    Attributes
    ----------
    X : ndarray (n_samples, n_features), float32 or float64 (``dtype``)
        Features z-scored with their own statistics (population std; constant columns scaled by 1).
    Y : ndarray (n_samples, n_voxels), same dtype
        Responses z-scored per voxel likewise.
    alphas : ndarray (n_alphas,) float64
        The penalty grid, sorted ascending.
    splits : list of (train_idx, val_idx) int arrays
    dtype : {"float32", "float64"}
        Precision of the bulk GEMMs.
    x_mean, x_scale : ndarray (n_features,) float64
    y_mean, y_scale : ndarray (n_voxels,) float64
    y_constant : bool ndarray (n_voxels,)
        Voxels whose training responses are all equal (dead): their column of ``Y`` is exactly 0 and their
        ``cv_r2`` NaN.
    """

    X: np.ndarray
    Y: np.ndarray
    alphas: np.ndarray
    splits: list
    dtype: str
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    y_constant: np.ndarray

    @property
    def n_voxels(self) -> int:
        return self.Y.shape[1]


def prepare_ridge_problem(X_train, Y_train, alphas=DEFAULT_ALPHAS, n_folds: int = 5, splits=None,
                          dtype: str = "float32") -> RidgeProblem:
    """Check the inputs of a ridge fit and standardise them (shared by plain and banded ridge).

    Parameters
    ----------
    X_train : ndarray (n_samples, n_features)
    Y_train : ndarray (n_samples, n_voxels)
    alphas : array-like (n_alphas,)
        Positive penalties.
    n_folds : int
        K of the contiguous K-fold split, unless ``splits``.
    splits : list of (train_idx, val_idx), optional
    dtype : {"float32", "float64"}

    Returns
    -------
    RidgeProblem

    Raises
    ------
    ValueError
        Shapes that do not match, non-finite values, an empty or non-positive grid, an unknown dtype.
    """
    X_train = np.asarray(X_train)
    Y_train = np.asarray(Y_train)
    if X_train.ndim != 2 or Y_train.ndim != 2 or X_train.shape[0] != Y_train.shape[0]:
        raise ValueError(f"X {X_train.shape} and Y {Y_train.shape} must be 2-D with the same number of rows")
    if not (np.isfinite(X_train).all() and np.isfinite(Y_train).all()):
        raise ValueError("X_train and Y_train must be finite")
    alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())
    if alphas.size == 0 or (alphas <= 0).any():
        raise ValueError("alphas must be a non-empty list of positive numbers")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    if splits is None:
        splits = kfold_splits(X_train.shape[0], n_folds)
    splits = [(np.asarray(tr), np.asarray(va)) for tr, va in splits]
    npdt = np.float32 if dtype == "float32" else np.float64
    x_mean, x_scale = standardize_stats(X_train)
    y_mean, y_scale = standardize_stats(Y_train)
    y_constant = constant_columns(Y_train)
    Y = _apply_standardize(Y_train, y_mean, y_scale, npdt)
    Y[:, y_constant] = 0.0  # not the rounding residue of subtracting a float64 mean
    return RidgeProblem(X=_apply_standardize(X_train, x_mean, x_scale, npdt), Y=Y, alphas=alphas, splits=splits,
                        dtype=dtype, x_mean=x_mean, x_scale=x_scale, y_mean=y_mean, y_scale=y_scale,
                        y_constant=y_constant)


def fitted_y_scale(problem: RidgeProblem) -> np.ndarray:
    """The response scale a fitted model keeps: the training std, 0 (not the stand-in 1) for dead voxels."""
    return np.where(problem.y_constant, 0.0, problem.y_scale)


def cross_validated_r2(cv_mse, base_mse, y_constant) -> np.ndarray:
    """``1 - cv_mse / base_mse`` per voxel, NaN for dead voxels (0 / 0) instead of a perfect 1.

    Parameters
    ----------
    cv_mse : ndarray (n_voxels,), CV MSE at each voxel's chosen penalty
    base_mse : ndarray (n_voxels,), CV MSE of the training-fold mean (:func:`fold_mean_mse`)
    y_constant : bool ndarray (n_voxels,), :attr:`RidgeProblem.y_constant`

    Returns
    -------
    ndarray (n_voxels,) float64
    """
    r2 = 1.0 - np.asarray(cv_mse, dtype=np.float64) / np.maximum(np.asarray(base_mse, dtype=np.float64), 1e-30)
    r2[np.asarray(y_constant, dtype=bool)] = np.nan
    return r2


def fold_mean_mse(Ys, splits, fold_centering: bool = True) -> np.ndarray:
    """MSE of predicting each validation fold by its training fold's mean (0 without ``fold_centering``).

    The denominator of the cross-validated R².

    Parameters
    ----------
    Ys : ndarray (n_samples, n_voxels)
    splits : list of (train_idx, val_idx)

    Returns
    -------
    ndarray (n_voxels,) float64, mean over folds
    """
    base = np.zeros(Ys.shape[1])
    for tr, va in splits:
        mu = Ys[tr].mean(0, dtype=np.float64) if fold_centering else 0.0
        base += ((Ys[va] - mu) ** 2).mean(0)
    return base / len(splits)


def fraction_alpha_on_grid_edge(alpha, alphas) -> float:
    """Fraction of voxels whose chosen alpha is the smallest or largest of the grid (a grid to widen)."""
    if len(alphas) < 2:
        return 0.0
    return float(np.mean((alpha <= alphas[0]) | (alpha >= alphas[-1])))


def _eigh(S):
    """Symmetric eigendecomposition. On CPU it runs single-threaded: torch's multi-threaded CPU eigh was
    measured 10-25x slower (wall) than one thread on the 2-core machines, e.g. 14.5 s vs 0.6 s at 1000 x 1000."""
    if S.device.type != "cpu":
        return torch.linalg.eigh(S)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(S)
    finally:
        torch.set_num_threads(n_threads)


def _decompose(Xtr64, Xval64, center: bool):
    """Eigen-structure of one training fold (float64 tensors in, float64 out).

    Returns ev (r,), A (n_val, r), M (n_tr, r) with validation predictions = A diag(1/(ev+α)) Mᵀ Y_tr.
    """
    if center:
        m = Xtr64.mean(0, keepdim=True)
        Xtr64 = Xtr64 - m
        Xval64 = Xval64 - m if Xval64 is not None else None
    n, p = Xtr64.shape
    if n >= p:
        ev, V = _eigh(Xtr64.T @ Xtr64)
        M = Xtr64 @ V
        A = Xval64 @ V if Xval64 is not None else None
        mode = "primal"
        W = V  # coef = V diag(d) Mᵀ Y
    else:
        ev, U = _eigh(Xtr64 @ Xtr64.T)
        M = U
        A = (Xval64 @ Xtr64.T) @ U if Xval64 is not None else None
        mode = "kernel"
        W = Xtr64.T @ U  # coef = Xᵀ U diag(d) Uᵀ Y
    ev = ev.clamp_min(0.0)
    return ev, A, M, W, mode


def _voxel_batch_size(n_voxels, per_voxel_floats, bytes_per_float, max_batch_bytes, voxel_batch):
    if voxel_batch:
        return int(max(1, min(voxel_batch, n_voxels)))
    return int(max(1, min(n_voxels, max_batch_bytes // max(1, per_voxel_floats * bytes_per_float))))


def _cv_torch(X64, Ys, alphas_t, splits, *, dev, tdt, fold_centering, max_batch_bytes, voxel_batch, progress):
    """Validation MSE of every alpha for every voxel (the CV half of the torch solver).

    Parameters
    ----------
    X64 : torch.Tensor (n_samples, n_features) float64 on ``dev``
        Standardised (and, for banded ridge, band-scaled) features.
    Ys : ndarray (n_samples, n_voxels)
        Standardised targets (moved to ``dev`` batch by batch).
    alphas_t : torch.Tensor (n_alphas,) float64

    Returns
    -------
    cv_mse : torch.Tensor (n_alphas, n_voxels) float64, mean over folds
    base_mse : torch.Tensor (n_voxels,) float64, MSE of the training-fold mean, mean over folds
    flops : float
    mode : {"primal", "kernel"}
    """
    bpf = 4 if tdt == torch.float32 else 8
    n = X64.shape[0]
    t = Ys.shape[1]
    na = alphas_t.shape[0]
    cv_mse = torch.zeros((na, t), dtype=torch.float64, device=dev)
    base_mse = torch.zeros(t, dtype=torch.float64, device=dev)
    flops = 0.0
    mode = "primal"
    for tr, va in progress(splits, desc="ridge CV folds", leave=False):
        tr_t = torch.as_tensor(tr, device=dev)
        va_t = torch.as_tensor(va, device=dev)
        ev, A, M, _, mode = _decompose(X64[tr_t], X64[va_t], fold_centering)
        r = ev.shape[0]
        D = (1.0 / (ev[:, None] + alphas_t[None, :])).to(tdt)  # (r, na)
        A = A.to(tdt)
        M = M.to(tdt)
        nv = len(va)
        # per voxel: B (r), scaled B for all alphas (r*na), predictions + residuals (2*nv*na)
        tb = _voxel_batch_size(t, r * (na + 1) + 2 * nv * na + 2 * n, bpf, max_batch_bytes, voxel_batch)
        for s in range(0, t, tb):
            Yb = torch.as_tensor(Ys[:, s : s + tb], device=dev).to(tdt)
            ytr, yva = Yb[tr_t], Yb[va_t]
            if fold_centering:
                mu = ytr.mean(0, keepdim=True)
                ytr = ytr - mu
                yva = yva - mu
            k = ytr.shape[1]
            B = M.T @ ytr  # (r, k)
            Bs = (D[:, :, None] * B[:, None, :]).reshape(r, na * k)
            P = (A @ Bs).reshape(nv, na, k)
            P.sub_(yva[:, None, :])
            cv_mse[:, s : s + k] += (P * P).mean(0).to(torch.float64)
            base_mse[s : s + k] += (yva * yva).mean(0).to(torch.float64)
            del Bs, P, B, Yb
            flops += 2.0 * nv * r * na * k + 2.0 * len(tr) * r * k
    nf = len(splits)
    return cv_mse / nf, base_mse / nf, flops, mode


def _refit_torch(X64, Ys, alpha, *, dev, tdt, max_batch_bytes, voxel_batch):
    """Ridge fit on all samples (centred), each voxel with its own alpha.

    Parameters
    ----------
    X64 : torch.Tensor (n_samples, n_features) float64 on ``dev``
    Ys : ndarray (n_samples, n_voxels)
    alpha : torch.Tensor (n_voxels,) float64

    Returns
    -------
    coef : ndarray (n_features, n_voxels) float32 (float64 if ``tdt`` is)
    flops : float
    mode : {"primal", "kernel"}
    """
    bpf = 4 if tdt == torch.float32 else 8
    n, p = X64.shape
    t = Ys.shape[1]
    ev, _, M, W, mode = _decompose(X64, None, True)
    r = ev.shape[0]
    M = M.to(tdt)
    W = W.to(tdt)
    coef = np.empty((p, t), dtype=np.float32 if tdt == torch.float32 else np.float64)
    flops = 0.0
    tb = _voxel_batch_size(t, 2 * r + p + n, bpf, max_batch_bytes, voxel_batch)
    for s in range(0, t, tb):
        Yb = torch.as_tensor(Ys[:, s : s + tb], device=dev).to(tdt)
        Yb = Yb - Yb.mean(0, keepdim=True)
        Dsel = (1.0 / (ev[:, None] + alpha[None, s : s + tb])).to(tdt)  # (r, k)
        C = W @ (Dsel * (M.T @ Yb))
        coef[:, s : s + tb] = C.cpu().numpy()
        flops += 2.0 * n * r * Yb.shape[1] + 2.0 * p * r * Yb.shape[1]
    return coef, flops, mode


def _silent(iterable, **_):
    return iterable


class TorchEigenSolver:
    """The batched eigen solver (module docstring) bound to one :class:`RidgeProblem`.

    :meth:`cv` and :meth:`refit` work on the standardised features or on a subset of their columns, each
    multiplied by a factor (banded ridge's ``√γ_b``); the features live on ``device`` in float64 once.
    """

    name = "torch"

    def __init__(self, problem: RidgeProblem, *, device="cpu", fold_centering: bool = True,
                 max_batch_bytes: int = 512 * 2**20, voxel_batch: int | None = None, **_):
        self.problem = problem
        self.dev = resolve_device(device)
        self.tdt = _DTYPES[problem.dtype]
        self.coef_dtype = np.float32 if self.tdt == torch.float32 else np.float64
        self.fold_centering = fold_centering
        self.max_batch_bytes = max_batch_bytes
        self.voxel_batch = voxel_batch
        self.X64 = torch.as_tensor(problem.X, device=self.dev).to(torch.float64)
        self.alphas_t = torch.as_tensor(problem.alphas, dtype=torch.float64, device=self.dev)
        self.flops = 0.0
        self.mode = "primal"

    def _design(self, cols, scale):
        if cols is None:
            return self.X64
        return self.X64[:, torch.as_tensor(cols, device=self.dev)] * torch.as_tensor(scale, device=self.dev)[None, :]

    def cv(self, cols=None, scale=None, progress=_silent):
        """Validation MSE of every alpha and voxel, and of the training-fold mean.

        Parameters
        ----------
        cols : int ndarray (n_cols,), optional
            Feature columns to use (default all); ``scale`` (n_cols,) multiplies them.

        Returns
        -------
        cv_mse : ndarray (n_alphas, n_voxels) float64;  base_mse : ndarray (n_voxels,) float64
        """
        cv_mse, base_mse, flops, self.mode = _cv_torch(
            self._design(cols, scale), self.problem.Y, self.alphas_t, self.problem.splits, dev=self.dev,
            tdt=self.tdt, fold_centering=self.fold_centering, max_batch_bytes=self.max_batch_bytes,
            voxel_batch=self.voxel_batch, progress=progress)
        self.flops += flops
        return cv_mse.cpu().numpy(), base_mse.cpu().numpy()

    def refit(self, alpha, voxels=None, cols=None, scale=None) -> np.ndarray:
        """Coefficients (n_cols, n_voxels_sel) fitted on all samples, each voxel with its own ``alpha``."""
        Ys = self.problem.Y if voxels is None else self.problem.Y[:, voxels]
        coef, flops, self.mode = _refit_torch(
            self._design(cols, scale), Ys, torch.as_tensor(alpha, dtype=torch.float64, device=self.dev),
            dev=self.dev, tdt=self.tdt, max_batch_bytes=self.max_batch_bytes, voxel_batch=self.voxel_batch)
        self.flops += flops
        return coef

    def info(self) -> dict:
        return {"device": str(self.dev), "dtype": self.problem.dtype, "mode": self.mode, "gemm_flops": self.flops}


class SklearnRidgeSolver:
    """Brute force over ``sklearn.linear_model.Ridge``, one fit per alpha and fold (small problems, tests);
    the same interface as :class:`TorchEigenSolver`, in float64."""

    name = "sklearn"
    coef_dtype = np.float64

    def __init__(self, problem: RidgeProblem, *, fold_centering: bool = True, **_):
        self.problem = problem
        self.fold_centering = fold_centering
        self.X = problem.X.astype(np.float64)
        self.Y = problem.Y.astype(np.float64)

    def _design(self, cols, scale):
        return self.X if cols is None else self.X[:, cols] * scale

    def cv(self, cols=None, scale=None, progress=_silent):
        from sklearn.linear_model import Ridge

        Z, Y, splits, alphas = self._design(cols, scale), self.Y, self.problem.splits, self.problem.alphas
        cv_mse = np.zeros((len(alphas), Y.shape[1]))
        for tr, va in progress(splits, desc="sklearn folds", leave=False):
            for i, a in enumerate(alphas):
                m = Ridge(alpha=float(a), fit_intercept=self.fold_centering).fit(Z[tr], Y[tr])
                cv_mse[i] += ((m.predict(Z[va]) - Y[va]) ** 2).mean(0)
        return cv_mse / len(splits), fold_mean_mse(Y, splits, self.fold_centering)

    def refit(self, alpha, voxels=None, cols=None, scale=None) -> np.ndarray:
        from sklearn.linear_model import Ridge

        Z = self._design(cols, scale)
        Y = self.Y if voxels is None else self.Y[:, voxels]
        coef = np.empty((Z.shape[1], Y.shape[1]), dtype=np.float64)
        for a in np.unique(alpha):
            sel = alpha == a
            coef[:, sel] = Ridge(alpha=float(a), fit_intercept=True).fit(Z, Y[:, sel]).coef_.reshape(-1, Z.shape[1]).T
        return coef

    def info(self) -> dict:
        return {}


@contextlib.contextmanager
def himalaya_backend(device):
    """himalaya's torch backend on ``device`` (``torch_cuda`` for a CUDA device) for the duration of the block;
    himalaya's UserWarnings (e.g. about float64 on GPU) are silenced. Yields the backend module."""
    from himalaya.backend import get_backend, set_backend

    dev = resolve_device(device)
    previous = get_backend().name
    set_backend("torch_cuda" if dev.type == "cuda" else "torch", on_error="raise")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield get_backend()
    finally:
        set_backend(previous)


def nearest_on_log_grid(values, grid) -> np.ndarray:
    """Index of the grid value nearest to each value on a log scale (himalaya returns ``exp(log(alpha))``,
    not the grid value itself).

    Parameters
    ----------
    values : ndarray (n,) positive
    grid : ndarray (n_grid,) positive

    Returns
    -------
    int ndarray (n,)
    """
    return np.abs(np.log(values)[:, None] - np.log(np.asarray(grid))[None, :]).argmin(1)


def _fit_by_grid_search(solver_class, problem: RidgeProblem, *, progress, **options) -> dict:
    """Torch or sklearn: CV over the grid, each voxel's best alpha, refit on all samples."""
    solver = solver_class(problem, **options)
    cv_mse, base_mse = solver.cv(progress=progress)
    best = np.argmin(cv_mse, axis=0)  # first minimum -> smallest alpha on ties
    alpha = problem.alphas[best]
    cv_r2 = cross_validated_r2(cv_mse[best, np.arange(problem.n_voxels)], base_mse, problem.y_constant)
    coef = solver.refit(alpha)
    return dict(coef=coef, alpha=alpha, cv_mse=cv_mse, cv_r2=cv_r2, info={"backend": solver.name, **solver.info()})


def _fit_himalaya(problem: RidgeProblem, *, device, fold_centering, voxel_batch, **_) -> dict:
    """himalaya's ``RidgeCV`` (n >= p) or ``KernelRidgeCV`` (n < p), local alpha, the same folds and grid."""
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV as HRidgeCV

    Xs, Ys, alphas, splits = problem.X, problem.Y, problem.alphas, problem.splits
    n, p = Xs.shape
    npdt = Xs.dtype
    params = dict(local_alpha=True)
    if voxel_batch:
        params.update(n_targets_batch=int(voxel_batch), n_targets_batch_refit=int(voxel_batch))
    with himalaya_backend(device) as be:
        if n >= p:
            model = HRidgeCV(alphas=alphas, cv=list(splits), fit_intercept=fold_centering, solver_params=params)
        else:
            model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=list(splits), fit_intercept=fold_centering,
                                  solver_params=params)
        model.fit(Xs, Ys)
        idx = nearest_on_log_grid(np.asarray(be.to_numpy(model.best_alphas_), dtype=np.float64), alphas)
        if n >= p:
            coef = np.asarray(be.to_numpy(model.coef_), dtype=npdt)
        else:
            dual = np.asarray(be.to_numpy(model.dual_coef_), dtype=np.float64)
            coef = (Xs.astype(np.float64).T @ dual).astype(npdt)
        cv_best = np.asarray(be.to_numpy(model.cv_scores_), dtype=np.float64).reshape(-1)
    alpha = alphas[idx]
    # himalaya reports only the best score (negative MSE per fold, averaged)
    cv_mse = np.full((len(alphas), problem.n_voxels), np.nan)
    cv_mse[idx, np.arange(problem.n_voxels)] = -cv_best
    cv_r2 = cross_validated_r2(-cv_best, fold_mean_mse(Ys, splits, fold_centering), problem.y_constant)
    return dict(coef=coef, alpha=alpha, cv_mse=cv_mse, cv_r2=cv_r2,
                info={"backend": "himalaya", "device": str(resolve_device(device)), "dtype": problem.dtype,
                      "mode": "primal" if n >= p else "kernel"})


#: backend name -> fit(problem, *, device, fold_centering, max_batch_bytes, voxel_batch, progress) -> dict
SOLVERS = {
    "torch": functools.partial(_fit_by_grid_search, TorchEigenSolver),
    "himalaya": _fit_himalaya,
    "sklearn": functools.partial(_fit_by_grid_search, SklearnRidgeSolver),
}


def solver_for(table: dict, backend: str):
    """The entry of a backend table, or ValueError naming the backends there are."""
    try:
        return table[backend]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r} ({', '.join(table)})") from None


def fit_voxelwise_ridge(
    X_train,
    Y_train,
    alphas=DEFAULT_ALPHAS,
    n_folds: int = 5,
    backend: str = "torch",
    *,
    splits=None,
    device="cpu",
    dtype: str = "float32",
    fold_centering: bool = True,
    max_batch_bytes: int = 512 * 2**20,
    voxel_batch: int | None = None,
    progress=None,
) -> RidgeFit:
    """Ridge regression from features to every voxel, alpha chosen per voxel by K-fold CV.

    Parameters
    ----------
    X_train : ndarray (n_samples, n_features)
        Training features (raw; z-scored here with their own statistics).
    Y_train : ndarray (n_samples, n_voxels)
        Training responses (raw; z-scored per voxel here with their own statistics).
    alphas : array-like (n_alphas,)
        Grid of ridge penalties (applied to z-scored features).
    n_folds : int
        K of the contiguous K-fold split (``sklearn.model_selection.KFold(n_folds)``), unless ``splits``.
    backend : {"torch", "himalaya", "sklearn"}
        Solver (:data:`SOLVERS`); see the module docstring.
    splits : list of (train_idx, val_idx), optional
        Explicit CV folds over the training samples (e.g. grouped by session).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (:func:`brainalign.devices.resolve_device`).
    dtype : {"float32", "float64"}
        Precision of the bulk GEMMs (decompositions are always float64).
    fold_centering : bool
        Re-centre each training fold (intercept) inside CV.
    max_batch_bytes : int
        Bound on the temporary memory per voxel batch (torch backend).
    voxel_batch : int, optional
        Fixed number of voxels per batch (overrides ``max_batch_bytes``).
    progress : callable, optional
        tqdm-like wrapper for progress bars (default :func:`brainalign._io.progress`).

    Returns
    -------
    RidgeFit
    """
    fit = solver_for(SOLVERS, backend)
    problem = prepare_ridge_problem(X_train, Y_train, alphas, n_folds, splits, dtype)
    res = fit(problem, device=device, fold_centering=fold_centering, max_batch_bytes=max_batch_bytes,
              voxel_batch=voxel_batch, progress=progress or progress_bar)
    res["info"]["fraction_alpha_on_grid_edge"] = fraction_alpha_on_grid_edge(res["alpha"], problem.alphas)
    res["info"]["n_folds"] = len(problem.splits)
    return RidgeFit(
        coef=res["coef"], alpha=np.asarray(res["alpha"], dtype=np.float64), alphas=problem.alphas,
        cv_mse=np.asarray(res["cv_mse"]), cv_r2=np.asarray(res["cv_r2"], dtype=np.float64),
        x_mean=problem.x_mean, x_scale=problem.x_scale, y_mean=problem.y_mean, y_scale=fitted_y_scale(problem),
        info=res["info"],
    )


def gemm_flops_ideal(n_samples: int, n_features: int, n_voxels: int, n_alphas: int, n_folds: int) -> float:
    """FLOP count of the torch solver's GEMMs (CV + refit), excluding the decompositions.

    Per fold: ``2·n_val·r·n_alphas·t`` (predictions for all alphas) + ``2·n_tr·r·t`` (``MᵀY``), r = min(n_tr, p);
    refit: ``2·(n + p)·r·t``. Decompositions add ``~2·n_tr·min(n_tr,p)·max(n_tr,p)`` (Gram) + ``~9 r³`` (eigh) per fold.
    """
    n, p, t = n_samples, n_features, n_voxels
    n_val = n / n_folds
    n_tr = n - n_val
    r = min(n_tr, p)
    cv = n_folds * (2 * n_val * r * n_alphas * t + 2 * n_tr * r * t)
    r_full = min(n, p)
    refit = 2 * (n + p) * r_full * t
    decomp = n_folds * (2 * n_tr * min(n_tr, p) * max(n_tr, p) + 9 * r**3) + 2 * n * min(n, p) * max(n, p) + 9 * r_full**3
    return float(cv + refit + decomp)


__all__ = ["DEFAULT_ALPHAS", "SOLVERS", "RidgeFit", "RidgeProblem", "SklearnRidgeSolver", "TorchEigenSolver",
           "constant_columns", "cross_validated_r2", "fit_voxelwise_ridge", "fitted_y_scale", "fold_mean_mse",
           "fraction_alpha_on_grid_edge", "gemm_flops_ideal", "himalaya_backend", "kfold_splits",
           "nearest_on_log_grid", "prepare_ridge_problem", "solver_for", "standardize_stats"]
