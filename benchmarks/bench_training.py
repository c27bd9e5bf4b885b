"""Training throughput and peak memory: ReAlnet-fMRI, NeuroFusionNet and a plain CORnet-S step (ceiling).

    python benchmarks/bench_training.py --device cuda            # full size (224 px, NSD-sized fMRI)
    python benchmarks/bench_training.py --device cpu --tiny      # CPU smoke version (small images, stand-in)
    python benchmarks/bench_training.py --device cpu --tiny --real-backbone --cpu-paths
        # real CORnet-S at 64 px: the ReAlnet step as it was (teacher every step, F.conv2d everywhere,
        # per-tensor Adam) against the current one (cached pseudo-labels, GEMM block convs, fused Adam)

Prints one JSON line per measurement: images/s (wall and per CPU-second of this process), peak GPU
memory (CUDA) and the projected time of one epoch over --epoch-images images (default 9,000, an NSD
subject's training set). CPU-seconds are the steadier number on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from brainalign.training.config import make_config
from brainalign.training.data import normalize_images
from brainalign.training.engine import make_optimizer
from brainalign.training.losses import realnet_loss
from brainalign.training.neurofusion import NeuroFusionNet, n_tokens, token_roi_weights, window_mean_coords
from brainalign.training.realnet import ReAlnetFMRI, make_teacher
from brainalign.training.realnet_train import teacher_labels


def backbone(tiny, real=False):
    if tiny and not real:
        from brainalign.training.standin import TinyCORnet

        return TinyCORnet(width=8, n_classes=1000)
    from brainalign.models.cornet_s import CORnetS

    return CORnetS()


def timed(step, device, n_steps, warmup=2):
    """Mean wall seconds per step, peak GPU GiB (CUDA) and mean CPU seconds of this process per step."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / n_steps
    timed.cpu_s = (time.process_time() - c0) / n_steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return dt, peak


def amp(device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def bench_cornet(args, device, bs):
    model = backbone(args.tiny, args.real_backbone).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-5)
    x = torch.randint(0, 256, (bs, 3, args.size, args.size), dtype=torch.uint8, device=device)
    y = torch.randint(0, 1000, (bs,), device=device)

    def step():
        with amp(device):
            loss = F.cross_entropy(model(normalize_images(x)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, device, args.steps)


def bench_realnet(args, device, bs, old=False):
    """One ReAlnet-fMRI step. ``old``: as before the CPU speed-ups (teacher forward in every step,
    ``F.conv2d`` for every convolution, per-tensor Adam); else as ``brainalign train`` runs it now."""
    from brainalign.models import cornet_s

    saved = cornet_s.CPU_GEMM_MAX_POSITIONS
    cornet_s.CPU_GEMM_MAX_POSITIONS = 0 if old else saved
    bb = backbone(args.tiny, args.real_backbone)
    teacher = make_teacher(bb).to(device)
    n_out = 1024
    model = ReAlnetFMRI(bb, n_out=n_out, image_size=args.size).to(device).train()
    if old:
        opt = torch.optim.Adam(model.parameters(), lr=2e-5, foreach=False)
    else:
        opt = make_optimizer(model.parameters(), make_config("realnet", "full", {"lr": 2e-5}))
    x = torch.randint(0, 256, (bs, 3, args.size, args.size), dtype=torch.uint8, device=device)
    y = torch.randn(bs, n_out, device=device)
    labels = teacher_labels(teacher, x, bs, device)

    def step():
        xi = normalize_images(x)
        with amp(device):
            logits, pred = model(xi)
            if old:
                with torch.no_grad():
                    t = teacher(xi)
            else:
                t = labels
        loss, _ = realnet_loss(logits, t, pred, y, beta=100.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        return timed(step, device, args.steps)
    finally:
        cornet_s.CPU_GEMM_MAX_POSITIONS = saved


def bench_realnet_before(args, device, bs):
    return bench_realnet(args, device, bs, old=True)


def bench_neurofusion(args, device, bs):
    dim = 64 if args.tiny else 512
    heads = 4 if args.tiny else 8
    model = NeuroFusionNet(backbone(args.tiny, args.real_backbone), args.size, dim=dim, heads=heads).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    v = args.voxels
    import numpy as np

    labels = np.repeat(np.arange(7), int(np.ceil(v / 7)))[:v]
    tc = window_mean_coords(np.random.rand(v, 3), 32, 16).to(device)
    rw = token_roi_weights(labels, 6, 32, 16).to(device)
    x = torch.randint(0, 256, (bs, 3, args.size, args.size), dtype=torch.uint8, device=device)
    f = torch.randn(bs, v, device=device)

    def step():
        with amp(device):
            loss, _ = model(normalize_images(x), f, tc, rw, return_loss=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, device, args.steps)


def largest_batch(fn, args, device, start=16, limit=4096, deadline=None):
    """Double the batch until CUDA runs out of memory (or ``limit``, or the ``time.monotonic()`` ``deadline``
    would be passed by the next try, judged from the last one); return the largest batch that fitted and its
    timing, ``(batch, s_per_step, peak_gib)``, or None."""
    best = None
    bs = start
    last_try_s = 0.0
    while bs <= limit:
        if deadline is not None and time.monotonic() + 2.5 * last_try_s > deadline:
            break
        t0 = time.monotonic()
        try:
            dt, peak = fn(args, device, bs)
            best = (bs, dt, peak)
            bs *= 2
        except torch.OutOfMemoryError:
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        last_try_s = time.monotonic() - t0
    return best


def bench_args(tiny=False, size=None, voxels=None, steps=5, real_backbone=False):
    """The options the ``bench_*`` step functions read, for callers other than :func:`main`."""
    return argparse.Namespace(tiny=tiny, real_backbone=real_backbone, size=size or (64 if tiny else 224),
                               voxels=voxels or (2000 if tiny else 15724), steps=steps)


def _load():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="stand-in backbone, small images (CPU smoke run)")
    p.add_argument("--size", type=int, help="image side (default 224, tiny 64)")
    p.add_argument("--voxels", type=int, help="fMRI voxels for NeuroFusionNet (default 15724, tiny 2000)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epoch-images", type=int, default=9000)
    p.add_argument("--find-max-batch", action="store_true", help="CUDA: also the largest batch that fits")
    p.add_argument("--real-backbone", action="store_true", help="with --tiny: the real CORnet-S, not the stand-in")
    p.add_argument("--cpu-paths", action="store_true",
                   help="only the ReAlnet step, before vs after the CPU speed-ups (alternating, --repeats times)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.size = args.size or (64 if args.tiny else 224)
    args.voxels = args.voxels or (2000 if args.tiny else 15724)
    device = torch.device(args.device)
    torch.manual_seed(0)
    benches = (("cornet_s_classification", bench_cornet), ("realnet_fmri", bench_realnet),
               ("neurofusionnet", bench_neurofusion))
    if args.cpu_paths:
        benches = [b for _ in range(args.repeats)
                   for b in (("realnet_fmri_before", bench_realnet_before), ("realnet_fmri", bench_realnet))]
    for name, fn in benches:
        dt, peak = fn(args, device, args.batch)
        rec = {"model": name, "device": str(device), "tiny": args.tiny, "image_size": args.size,
               "backbone": "cornet_s" if (args.real_backbone or not args.tiny) else "standin",
               "threads": torch.get_num_threads(), "load_1min": _load(),
               "batch": args.batch, "s_per_step": round(dt, 4), "images_per_s": round(args.batch / dt, 2),
               "images_per_cpu_s": round(args.batch / timed.cpu_s, 2),
               "peak_gpu_gib": None if peak is None else round(peak, 2),
               "epoch_minutes": round(args.epoch_images / (args.batch / dt) / 60, 2)}
        if name == "neurofusionnet":
            rec.update(voxels=args.voxels, tokens=n_tokens(args.voxels))
        print(json.dumps(rec), flush=True)
        if args.find_max_batch and device.type == "cuda":
            best = largest_batch(fn, args, device, start=args.batch * 2)
            if best:
                bs, dt, peak = best
                print(json.dumps({"model": name, "largest_batch": bs, "images_per_s": round(bs / dt, 2),
                                  "peak_gpu_gib": round(peak, 2)}), flush=True)


if __name__ == "__main__":
    main()
