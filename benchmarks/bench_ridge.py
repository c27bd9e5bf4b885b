"""Benchmark: brainalign's batched torch ridge vs himalaya RidgeCV / KernelRidgeCV vs sklearn RidgeCV.

Same data, same alpha grid, same run. Reports fit seconds, agreement of per-voxel alphas with ours, and
held-out test scores, plus the GEMM-bound ideal time (FLOP count of our solver / measured GEMM peak).

    .venv/bin/python benchmarks/bench_ridge.py --preset cpu              # 2000 x 1000 x 5000, CPU
    .venv/bin/python benchmarks/bench_ridge.py --preset nsd --device cuda  # 9000 x 4096 x 15724
    .venv/bin/python benchmarks/bench_ridge.py --preset tiny --bands 3 --band-candidates 30   # banded ridge

With ``--bands B`` the p features are split into B equal bands and the banded solvers are compared instead:
ours (``fit_banded_ridge``, one batched eigen-solver pass per candidate) and himalaya ``BandedRidgeCV`` with
the same candidate band weights (``n_iter`` = our candidates, zeros clipped to 1e-12), folds and alphas.

Wall-clock times on a shared machine are noisy; ``cpu_seconds`` (process CPU time, all threads) is
reported beside them. CV schemes: ours and himalaya use the same 5 contiguous folds (KFold(5)); sklearn's RidgeCV with
alpha_per_target=True only supports efficient leave-one-out (cv=None), so its alphas are LOO-chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

PRESETS = {"cpu": (2000, 1000, 5000), "nsd": (9000, 4096, 15724), "tiny": (400, 200, 500)}


def make_data(n, p, t, n_test, seed=0, band_of=None):
    """Planted linear data: float32 X (n + n_test, p) ~ N(0, 1), voxels with log-spaced noise (so their best
    alphas differ); returns ``X_train, Y_train, X_test, Y_test``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p), dtype=np.float32)
    W = rng.standard_normal((p, t), dtype=np.float32) / np.sqrt(p)
    if band_of is not None:  # each voxel draws its own relevance of each band
        gain = rng.dirichlet(np.full(int(band_of.max()) + 1, 0.5), size=t).T.astype(np.float32)  # (bands, t)
        W *= np.sqrt(gain[band_of] * (band_of.max() + 1))
    noise = np.logspace(-0.5, 1.0, t).astype(np.float32)  # voxel-specific SNR -> different alphas
    Y = X @ W + rng.standard_normal((n + n_test, t), dtype=np.float32) * noise
    return X[:n], Y[:n], X[n:], Y[n:]


def gemm_peak_gflops(device, dtype, size=2048, reps=5):
    """Measured matrix-multiply rate (GFLOP/s) of two ``size`` x ``size`` matrices of ``dtype`` on ``device``."""
    dev = torch.device(device)
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    for _ in range(2):
        a @ b
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * reps / (time.perf_counter() - t0) / 1e9


def pearson_cols(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def standardized(A, mean, scale, dtype):
    """(A - mean) / scale in ``dtype``: the z-scoring the reference libraries are given (ours z-scores internally
    with the same population statistics)."""
    return ((A - mean) / scale).astype(dtype)


def population_stats(A):
    """Column means and population standard deviations (constant columns get scale 1)."""
    mean = A.mean(0, dtype=np.float64)
    scale = A.std(0, dtype=np.float64)
    scale[~np.isfinite(scale) | (scale < 1e-12)] = 1.0
    return mean, scale


def compare_ridge(Xtr, Ytr, Xte, Yte, alphas, folds, methods, device="cpu", dtype="float32", bands=0,
                  band_of=None, band_candidates=30, on_result=None) -> dict:
    """Fit every method on the same data, folds and alphas; time each and score it on the test set.

    Parameters
    ----------
    Xtr, Ytr : float32 arrays (n, p), (n, t); Xte, Yte : (n_test, p), (n_test, t)
    alphas : (n_alphas,) ridge penalties; folds : list of (train_idx, val_idx)
    methods : list of str
        ``ours``, ``himalaya_ridge``, ``himalaya_kernel``, ``sklearn``; with ``bands``: ``ours_banded``,
        ``himalaya_banded``. ``ours``/``ours_banded``, when present, must come first (the others are compared
        with its per-voxel alphas).
    device : ``cpu`` or ``cuda`` (himalaya: its ``torch_cuda`` backend); dtype : ``float32`` or ``float64``
    bands, band_of, band_candidates : banded ridge (``band_of``: band index of each feature)
    on_result : callable(method, entry), optional
        Called after each method (progress; the GPU suite records partial results through it).

    Returns
    -------
    dict
        ``methods``: method -> ``seconds``, ``cpu_seconds``, ``median_test_r``, ``mean_test_r``,
        ``alpha_equal_to_ours``, ``alpha_within_one_grid_step``, ``speedup_of_ours`` (seconds / ours' seconds)...;
        ``n_candidates`` with bands.
    """
    import warnings

    from brainalign.encoding import fit_voxelwise_ridge

    res = {"methods": {}}
    # standardised copies for the reference libraries (ours standardises internally, identically)
    xm, xs = population_stats(Xtr)
    ym, ys = population_stats(Ytr)
    Xs, Ys, Xts = standardized(Xtr, xm, xs, dtype), standardized(Ytr, ym, ys, dtype), standardized(Xte, xm, xs, dtype)
    cuda = str(device).startswith("cuda")
    # warm-up (library initialisation, thread pools, CUDA context) outside the timed region
    fit_voxelwise_ridge(Xtr[:200, :50], Ytr[:200, :20], alphas, n_folds=len(folds), device=device)
    ours_alpha = ours_cand = cands = None
    if bands:
        from brainalign.encoding import band_candidates as make_candidates, fit_banded_ridge

        cands = make_candidates(bands, f"random:{max(band_candidates, bands + 1)}", seed=0)
        res["n_candidates"] = len(cands)
        res["bands"] = bands
    for method in methods:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        c0 = time.process_time()
        if method == "ours_banded":
            fit = fit_banded_ridge([Xtr[:, band_of == b] for b in range(bands)], Ytr, alphas, splits=folds,
                                   candidates=cands, device=device, dtype=dtype)
            if cuda:
                torch.cuda.synchronize()
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            alpha = fit.alpha
            pred = fit.predict(np.hstack([Xte[:, band_of == b] for b in range(bands)]))
            ours_alpha, ours_cand = alpha, fit.candidate
        elif method == "himalaya_banded":
            from himalaya.backend import get_backend, set_backend
            from himalaya.ridge import BandedRidgeCV

            set_backend("torch_cuda" if cuda else "torch")
            be = get_backend()
            hc = np.maximum(cands, 1e-12)
            hc /= hc.sum(1, keepdims=True)
            order = np.argsort(band_of, kind="stable")
            model = BandedRidgeCV(groups=band_of[order], cv=folds, fit_intercept=True,
                                  solver_params=dict(n_iter=hc, alphas=alphas, progress_bar=False, warn=False))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xs[:, order], Ys)
                pred_s = be.to_numpy(model.predict(Xts[:, order]))
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            ratio = np.exp(np.asarray(be.to_numpy(model.deltas_), dtype=np.float64)).T
            alpha = 1.0 / ratio.sum(1)
            gam = ratio * alpha[:, None]
            cand = np.argmin(((gam[:, None, :] - hc[None]) ** 2).sum(2), axis=1)
            pred = np.asarray(pred_s) * ys + ym
            set_backend("numpy")
        elif method == "ours":
            fit = fit_voxelwise_ridge(Xtr, Ytr, alphas, splits=folds, device=device, dtype=dtype)
            if cuda:
                torch.cuda.synchronize()
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            alpha = fit.alpha
            pred = fit.predict(Xte)
            ours_alpha = alpha
        elif method.startswith("himalaya"):
            from himalaya.backend import get_backend, set_backend
            from himalaya.kernel_ridge import KernelRidgeCV
            from himalaya.ridge import RidgeCV

            set_backend("torch_cuda" if cuda else "torch")
            be = get_backend()
            if method == "himalaya_ridge":
                model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=True)
            else:
                model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=folds, fit_intercept=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xs, Ys)
                pred_s = be.to_numpy(model.predict(Xts))
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            alpha = np.asarray(be.to_numpy(model.best_alphas_), dtype=np.float64)
            pred = np.asarray(pred_s) * ys + ym
            set_backend("numpy")
        elif method == "sklearn":
            from sklearn.linear_model import RidgeCV as SkRidgeCV

            model = SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(Xs, Ys)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            alpha = np.asarray(model.alpha_, dtype=np.float64)
            pred = model.predict(Xts) * ys + ym
        else:
            raise SystemExit(f"unknown method {method}")
        r = pearson_cols(Yte.astype(np.float64), pred.astype(np.float64))
        entry = {"seconds": round(sec, 3), "cpu_seconds": round(cpu, 2),
                 "median_test_r": round(float(np.nanmedian(r)), 4), "mean_test_r": round(float(np.nanmean(r)), 4)}
        if method == "himalaya_banded" and ours_cand is not None:
            entry["candidate_equal_to_ours"] = round(float(np.mean(cand == ours_cand)), 4)
        if ours_alpha is not None and method not in ("ours", "ours_banded"):
            la, lb = np.log10(alpha), np.log10(ours_alpha)
            entry["alpha_equal_to_ours"] = round(float(np.mean(np.abs(la - lb) < 1e-3)), 4)
            step = np.log10(alphas[-1] / alphas[0]) / (len(alphas) - 1)
            entry["alpha_within_one_grid_step"] = round(float(np.mean(np.abs(la - lb) <= step + 1e-3)), 4)
        res["methods"][method] = entry
        if on_result is not None:
            on_result(method, entry)
    ref = "ours_banded" if "ours_banded" in res["methods"] else "ours"
    if ref in res["methods"]:
        ours = res["methods"][ref]
        for e in res["methods"].values():
            e["speedup_of_ours"] = round(e["seconds"] / ours["seconds"], 2)
            e["cpu_speedup_of_ours"] = round(e["cpu_seconds"] / max(ours["cpu_seconds"], 1e-9), 2)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--n", type=int)
    ap.add_argument("--p", type=int)
    ap.add_argument("--t", type=int)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--n-alphas", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--methods", nargs="+", default=None,
                    help="default: ours himalaya_ridge himalaya_kernel sklearn; "
                         "with --bands: ours_banded himalaya_banded")
    ap.add_argument("--bands", type=int, default=0, help="split the features into this many bands (banded ridge)")
    ap.add_argument("--band-candidates", type=int, default=30, help="random band-weight candidates (banded ridge)")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args(argv)
    if args.methods is None:
        args.methods = (["ours_banded", "himalaya_banded"] if args.bands else
                        ["ours", "himalaya_ridge", "himalaya_kernel", "sklearn"])
    n, p, t = PRESETS[args.preset]
    n, p, t = args.n or n, args.p or p, args.t or t
    alphas = np.logspace(-1, 7, args.n_alphas)
    os.environ.setdefault("BRAINALIGN_PROGRESS", "0")

    from sklearn.model_selection import KFold

    from brainalign.encoding import gemm_flops_ideal

    band_of = None
    if args.bands:
        edges = np.linspace(0, p, args.bands + 1).astype(int)
        band_of = np.searchsorted(edges[1:], np.arange(p), side="right")
    Xtr, Ytr, Xte, Yte = make_data(n, p, t, args.n_test, band_of=band_of)
    folds = list(KFold(args.folds).split(Xtr))
    tdt = torch.float32 if args.dtype == "float32" else torch.float64
    peak = gemm_peak_gflops(args.device, tdt)
    flops = gemm_flops_ideal(n, p, t, len(alphas), args.folds)
    res = {"n": n, "p": p, "t": t, "n_alphas": len(alphas), "folds": args.folds, "device": args.device,
           "dtype": args.dtype, "torch_threads": torch.get_num_threads(), "gemm_peak_gflops": round(peak, 1),
           "our_flops": flops, "gemm_bound_ideal_s": round(flops / (peak * 1e9), 2)}
    res.update(compare_ridge(Xtr, Ytr, Xte, Yte, alphas, folds, args.methods, args.device, args.dtype,
                             bands=args.bands, band_of=band_of, band_candidates=args.band_candidates,
                             on_result=lambda m, e: print(m, json.dumps(e), flush=True)))
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
