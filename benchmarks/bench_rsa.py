"""Benchmark brainalign.rsa against rsatoolbox (same inputs, same process).

Part 1 (fMRI-like): correlation-distance RDMs for a "brain" (n_conditions x n_voxels) and a "model"
(n_conditions x n_features) and their Spearman comparison, for each ``--conditions`` size.
Part 2 (EEG-like): per-subject RDM time series (conditions x channels x times), Spearman curves
against ``--layers`` model RDMs, and a cluster permutation test with ``--permutations`` sign flips.
rsatoolbox has no cluster permutation test; its column there is a plain NumPy/SciPy loop
(t-test + scipy.ndimage.label per permutation), the usual way it is written by hand.

rsatoolbox runs only up to ``--rsatoolbox-max-conditions`` (its correlation RDM is a plain float64
``np.einsum`` over conditions x conditions x channels, hours at 10,000 conditions); bigger sizes report
``rsatoolbox_extrapolated_total_s``: the largest measured rsatoolbox time scaled by (n / n_measured)^2
(its RDM cost grows as n^2 x channels; the comparison's sort a little faster than n^2), a lower bound.

Before timing, both tools run once on a tiny input (``--no-warmup`` to skip), so that one-off start-up
(thread pools, BLAS initialisation) is not charged to whichever runs first. The load average of the
machine is recorded before and after (``loadavg``), as timings on a shared machine depend on it.

Examples::

    .venv/bin/python benchmarks/bench_rsa.py                        # defaults: 1000 and 10000 conditions
    .venv/bin/python benchmarks/bench_rsa.py --conditions 1000 --voxels 15000
    .venv/bin/python benchmarks/bench_rsa.py --device cuda          # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat=1):
    best = np.inf
    out = None
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def warm_up(device, run_reference):
    """Run both tools once on tiny inputs: thread pools and BLAS start before anything is timed."""
    from brainalign import rsa

    rng = np.random.default_rng(99)
    x = torch.as_tensor(rng.standard_normal((30, 50), dtype=np.float32), device=device)
    r = rsa.compute_rdm(x, "correlation")
    rsa.compare_rdms(r, r + 1, "spearman")
    rsa.eeg_rdms(torch.as_tensor(rng.standard_normal((10, 3, 5), dtype=np.float32), device=device))
    rsa.cluster_permutation_test(rng.standard_normal((4, 6)), n_permutations=10, device=device)
    if run_reference:
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm, compare

        q = calc_rdm(Dataset(rng.standard_normal((30, 50))), method="correlation")
        compare(q, q, "spearman")


def bench_fmri(n_cond, n_vox, n_feat, device, run_reference, repeat):
    from brainalign import rsa

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((n_cond, 20)).astype(np.float32)
    brain = (latent @ rng.standard_normal((20, n_vox)).astype(np.float32)
             + 3 * rng.standard_normal((n_cond, n_vox), dtype=np.float32))
    model = (latent @ rng.standard_normal((20, n_feat)).astype(np.float32)
             + 3 * rng.standard_normal((n_cond, n_feat), dtype=np.float32))
    res = {"n_conditions": n_cond, "n_voxels": n_vox, "n_model_features": n_feat, "device": str(device)}
    brain_t = torch.as_tensor(brain, device=device)
    model_t = torch.as_tensor(model, device=device)

    def ours_rdm():
        return rsa.compute_rdm(brain_t, "correlation"), rsa.compute_rdm(model_t, "correlation")

    res["ours_rdms_s"], (rb, rm) = timed(ours_rdm, device, repeat)
    res["ours_compare_s"], rho = timed(lambda: rsa.compare_rdms(rm, rb, "spearman"), device, repeat)
    res["ours_total_s"] = res["ours_rdms_s"] + res["ours_compare_s"]
    res["ours_rho"] = float(rho)
    if run_reference:
        from rsatoolbox.data import Dataset
        from rsatoolbox.rdm import calc_rdm, compare

        def ref_rdm():
            return calc_rdm(Dataset(brain), method="correlation"), calc_rdm(Dataset(model), method="correlation")

        res["rsatoolbox_rdms_s"], (qb, qm) = timed(ref_rdm, torch.device("cpu"), repeat)
        res["rsatoolbox_compare_s"], ref_rho = timed(lambda: compare(qm, qb, "spearman"), torch.device("cpu"), repeat)
        res["rsatoolbox_total_s"] = res["rsatoolbox_rdms_s"] + res["rsatoolbox_compare_s"]
        res["rsatoolbox_rho"] = float(ref_rho.item())
        res["max_abs_rdm_diff"] = float(np.abs(rb.cpu().numpy() - qb.get_vectors()[0]).max())
        res["speedup_total"] = res["rsatoolbox_total_s"] / res["ours_total_s"]
    else:
        res["rsatoolbox_total_s"] = "skipped"
    return res


def _naive_cluster_test(curves, n_perm, seed, cluster_alpha=0.05):
    import scipy.ndimage
    import scipy.stats

    n_sub = curves.shape[0]
    thr = scipy.stats.t.ppf(1 - cluster_alpha / 2, n_sub - 1)

    def max_mass(x):
        t = scipy.stats.ttest_1samp(x, 0.0, axis=0).statistic
        best = 0.0
        for sign in (1, -1):
            lab, n = scipy.ndimage.label(sign * t > thr)
            for k in range(1, n + 1):
                best = max(best, abs(t[lab == k].sum()))
        return best

    rng = np.random.default_rng(seed)
    obs = max_mass(curves)
    null = np.array([max_mass(curves * rng.choice([-1.0, 1.0], size=(n_sub, 1))) for _ in range(n_perm)])
    return (1 + (null >= obs).sum()) / (n_perm + 1)


def bench_eeg(n_cond, n_chan, n_times, n_sub, n_layers, n_perm, device, run_reference, repeat=1):
    from brainalign import rsa

    rng = np.random.default_rng(1)
    latent = rng.standard_normal((n_cond, n_chan)).astype(np.float32)
    envelope = np.exp(-0.5 * ((np.arange(n_times) - n_times / 3) / (n_times / 10)) ** 2).astype(np.float32)
    eeg = [(latent[:, :, None] * envelope + 2 * rng.standard_normal((n_cond, n_chan, n_times), dtype=np.float32))
           for _ in range(n_sub)]
    layers = [latent @ rng.standard_normal((n_chan, 64)).astype(np.float32) + k * rng.standard_normal(
        (n_cond, 64), dtype=np.float32) for k in range(n_layers)]
    res = {"n_conditions": n_cond, "n_channels": n_chan, "n_times": n_times, "n_subjects": n_sub,
           "n_layers": n_layers, "n_permutations": n_perm, "device": str(device)}

    def ours_rdms():
        model = rsa.compute_rdms(torch.as_tensor(np.stack(layers), device=device), "correlation")
        series = torch.stack([rsa.eeg_rdms(torch.as_tensor(e, device=device))[0] for e in eeg])
        return model, series

    res["ours_rdms_s"], (model, series) = timed(ours_rdms, device, repeat)
    res["ours_curves_s"], curves = timed(lambda: rsa.rsa_timecourses(model, series), device, repeat)
    res["ours_cluster_s"], test = timed(
        lambda: [rsa.cluster_permutation_test(curves[:, k], n_permutations=n_perm, device=device)
                 for k in range(n_layers)], device, repeat)
    res["ours_total_s"] = res["ours_rdms_s"] + res["ours_curves_s"] + res["ours_cluster_s"]
    res["ours_min_p_layer0"] = min([c.p_value for c in test[0].clusters] or [1.0])
    if run_reference:
        from rsatoolbox.data import Dataset, TemporalDataset
        from rsatoolbox.rdm import calc_rdm, calc_rdm_movie, compare

        cpu = torch.device("cpu")

        def ref_rdms():
            models = [calc_rdm(Dataset(x), method="correlation") for x in layers]
            movies = [calc_rdm_movie(TemporalDataset(e, time_descriptors={"time": np.arange(n_times)}),
                                     method="correlation") for e in eeg]
            return models, movies

        res["rsatoolbox_rdms_s"], (models, movies) = timed(ref_rdms, cpu, repeat)

        def ref_curves():
            out = np.empty((n_sub, n_layers, n_times))
            for s, mv in enumerate(movies):
                for k, m in enumerate(models):
                    out[s, k] = compare(m, mv, "spearman")[0]
            return out

        res["rsatoolbox_curves_s"], ref = timed(ref_curves, cpu, repeat)
        res["max_abs_curve_diff"] = float(np.abs(ref - curves).max())
        res["reference_cluster_s"], _ = timed(
            lambda: [_naive_cluster_test(ref[:, k], n_perm, 0) for k in range(n_layers)], cpu, repeat)
        res["rsatoolbox_total_s"] = res["rsatoolbox_rdms_s"] + res["rsatoolbox_curves_s"] + res["reference_cluster_s"]
        res["speedup_total"] = res["rsatoolbox_total_s"] / res["ours_total_s"]
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conditions", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--voxels", type=int, default=15000)
    p.add_argument("--model-features", type=int, default=4096)
    p.add_argument("--rsatoolbox-max-conditions", type=int, default=2000,
                   help="run rsatoolbox only up to this many conditions")
    p.add_argument("--eeg-conditions", type=int, default=200)
    p.add_argument("--channels", type=int, default=17)
    p.add_argument("--times", type=int, default=100)
    p.add_argument("--subjects", type=int, default=10)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--skip-fmri", action="store_true")
    p.add_argument("--skip-eeg", action="store_true")
    p.add_argument("--no-reference", action="store_true", help="do not run rsatoolbox at all")
    p.add_argument("--repeat", type=int, default=1, help="best of N runs, for both tools")
    p.add_argument("--threads", type=int, help="torch CPU threads for our code (default: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-warmup", action="store_true", help="time the first calls too (start-up included)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"torch_threads": torch.get_num_threads(), "loadavg_start": os.getloadavg(), "fmri": [], "eeg": None}
    if not args.no_warmup:
        warm_up(device, not args.no_reference)
    if not args.skip_fmri:
        measured = None
        for n in sorted(args.conditions):
            r = bench_fmri(n, args.voxels, args.model_features, device,
                           not args.no_reference and n <= args.rsatoolbox_max_conditions, args.repeat)
            if "speedup_total" in r:
                measured = (n, r["rsatoolbox_total_s"])
            elif measured is not None:
                r["rsatoolbox_extrapolated_total_s"] = measured[1] * (n / measured[0]) ** 2
                r["speedup_vs_extrapolated"] = r["rsatoolbox_extrapolated_total_s"] / r["ours_total_s"]
            r["loadavg"] = os.getloadavg()
            print(json.dumps(r), flush=True)
            results["fmri"].append(r)
    if not args.skip_eeg:
        r = bench_eeg(args.eeg_conditions, args.channels, args.times, args.subjects, args.layers,
                      args.permutations, device, not args.no_reference, args.repeat)
        r["loadavg"] = os.getloadavg()
        print(json.dumps(r), flush=True)
        results["eeg"] = r
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
