"""Benchmark: brainalign's batched torch ridge vs himalaya RidgeCV / KernelRidgeCV vs sklearn RidgeCV.

Same data, same alpha grid, same run. Reports fit seconds, agreement of per-voxel alphas with ours, and
held-out test scores, plus the GEMM-bound ideal time (FLOP count of our solver / measured GEMM peak).

    .venv/bin/python benchmarks/bench_ridge.py --preset cpu              # 2000 x 1000 x 5000, CPU
    .venv/bin/python benchmarks/bench_ridge.py --preset nsd --device cuda  # 9000 x 4096 x 15724

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


def make_data(n, p, t, n_test, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, p), dtype=np.float32)
    W = rng.standard_normal((p, t), dtype=np.float32) / np.sqrt(p)
    noise = np.logspace(-0.5, 1.0, t).astype(np.float32)  # voxel-specific SNR -> different alphas
    Y = X @ W + rng.standard_normal((n + n_test, t), dtype=np.float32) * noise
    return X[:n], Y[:n], X[n:], Y[n:]


def gemm_peak_gflops(device, dtype, size=2048, reps=5):
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
    ap.add_argument("--methods", nargs="+", default=["ours", "himalaya_ridge", "himalaya_kernel", "sklearn"])
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args(argv)
    n, p, t = PRESETS[args.preset]
    n, p, t = args.n or n, args.p or p, args.t or t
    alphas = np.logspace(-1, 7, args.n_alphas)
    os.environ.setdefault("BRAINALIGN_PROGRESS", "0")

    from sklearn.model_selection import KFold

    from brainalign.encoding import fit_voxelwise_ridge, gemm_flops_ideal
    from brainalign.encoding.ridge import standardize_stats

    Xtr, Ytr, Xte, Yte = make_data(n, p, t, args.n_test)
    folds = list(KFold(args.folds).split(Xtr))
    tdt = torch.float32 if args.dtype == "float32" else torch.float64
    peak = gemm_peak_gflops(args.device, tdt)
    flops = gemm_flops_ideal(n, p, t, len(alphas), args.folds)
    res = {"n": n, "p": p, "t": t, "n_alphas": len(alphas), "folds": args.folds, "device": args.device,
           "dtype": args.dtype, "torch_threads": torch.get_num_threads(), "gemm_peak_gflops": round(peak, 1),
           "our_flops": flops, "gemm_bound_ideal_s": round(flops / (peak * 1e9), 2), "methods": {}}
    # standardised copies for the reference libraries (ours standardises internally, identically)
    xm, xs = standardize_stats(Xtr)
    ym, ys = standardize_stats(Ytr)
    Xs = ((Xtr - xm) / xs).astype(args.dtype)
    Ys = ((Ytr - ym) / ys).astype(args.dtype)
    Xts = ((Xte - xm) / xs).astype(args.dtype)
    # warm-up (library initialisation, thread pools) outside the timed region
    fit_voxelwise_ridge(Xtr[:200, :50], Ytr[:200, :20], alphas, n_folds=args.folds, device=args.device)
    ours_alpha = None
    for method in args.methods:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if method == "ours":
            fit = fit_voxelwise_ridge(Xtr, Ytr, alphas, splits=folds, device=args.device, dtype=args.dtype)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            sec = time.perf_counter() - t0
            cpu = time.process_time() - c0
            alpha = fit.alpha
            pred = fit.predict(Xte)
            ours_alpha = alpha
        elif method.startswith("himalaya"):
            from himalaya.backend import get_backend, set_backend
            from himalaya.kernel_ridge import KernelRidgeCV
            from himalaya.ridge import RidgeCV

            set_backend("torch_cuda" if args.device.startswith("cuda") else "torch")
            be = get_backend()
            if method == "himalaya_ridge":
                model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=True)
            else:
                model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=folds, fit_intercept=True)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xs, Ys)
                pred_s = be.to_numpy(model.predict(Xts))
            sec = time.perf_counter() - t0
            cpu = time.process_time() - c0
            alpha = np.asarray(be.to_numpy(model.best_alphas_), dtype=np.float64)
            pred = np.asarray(pred_s) * ys + ym
            set_backend("numpy")
        elif method == "sklearn":
            from sklearn.linear_model import RidgeCV as SkRidgeCV

            model = SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(Xs, Ys)
            sec = time.perf_counter() - t0
            cpu = time.process_time() - c0
            alpha = np.asarray(model.alpha_, dtype=np.float64)
            pred = model.predict(Xts) * ys + ym
        else:
            raise SystemExit(f"unknown method {method}")
        r = pearson_cols(Yte.astype(np.float64), pred.astype(np.float64))
        entry = {"seconds": round(sec, 2), "cpu_seconds": round(cpu, 2), "median_test_r": round(float(np.nanmedian(r)), 4),
                 "mean_test_r": round(float(np.nanmean(r)), 4)}
        if ours_alpha is not None and method != "ours":
            la, lb = np.log10(alpha), np.log10(ours_alpha)
            entry["alpha_equal_to_ours"] = round(float(np.mean(np.abs(la - lb) < 1e-3)), 4)
            entry["alpha_within_one_grid_step"] = round(float(np.mean(np.abs(la - lb) <= 8 / (len(alphas) - 1) + 1e-3)), 4)
        res["methods"][method] = entry
        print(method, json.dumps(entry), flush=True)
    if "ours" in res["methods"]:
        ours = res["methods"]["ours"]["seconds"]
        for m, e in res["methods"].items():
            e["speedup_of_ours"] = round(e["seconds"] / ours, 2)
            e["cpu_speedup_of_ours"] = round(e["cpu_seconds"] / res["methods"]["ours"]["cpu_seconds"], 2)
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
