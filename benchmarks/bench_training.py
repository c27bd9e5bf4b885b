"""Training throughput and peak memory: ReAlnet-fMRI, NeuroFusionNet and a plain CORnet-S step (ceiling).

    python benchmarks/bench_training.py --device cuda            # full size (224 px, NSD-sized fMRI)
    python benchmarks/bench_training.py --device cpu --tiny      # CPU smoke version (small images, stand-in)

Prints one JSON line per measurement: images/s, peak GPU memory (CUDA) and the projected time of one
epoch over --epoch-images images (default 9,000, an NSD subject's training set).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from brainalign.training.data import normalize_images
from brainalign.training.losses import realnet_loss
from brainalign.training.neurofusion import NeuroFusionNet, n_tokens, token_roi_weights, window_mean_coords
from brainalign.training.realnet import ReAlnetFMRI, make_teacher


def backbone(tiny):
    if tiny:
        from brainalign.training.standin import TinyCORnet

        return TinyCORnet(width=8, n_classes=1000)
    from brainalign.models.cornet_s import CORnetS

    return CORnetS()


def timed(step, device, n_steps, warmup=2):
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / n_steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return dt, peak


def amp(device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def bench_cornet(args, device, bs):
    model = backbone(args.tiny).to(device).train()
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


def bench_realnet(args, device, bs):
    bb = backbone(args.tiny)
    teacher = make_teacher(bb).to(device)
    model = ReAlnetFMRI(bb, n_out=1024, image_size=args.size).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-5)
    x = torch.randint(0, 256, (bs, 3, args.size, args.size), dtype=torch.uint8, device=device)
    y = torch.randn(bs, 1024, device=device)

    def step():
        xi = normalize_images(x)
        with amp(device):
            logits, pred = model(xi)
            with torch.no_grad():
                t = teacher(xi)
        loss, _ = realnet_loss(logits, t, pred, y, beta=100.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, device, args.steps)


def bench_neurofusion(args, device, bs):
    dim = 64 if args.tiny else 512
    heads = 4 if args.tiny else 8
    model = NeuroFusionNet(backbone(args.tiny), args.size, dim=dim, heads=heads).to(device).train()
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


def largest_batch(fn, args, device, start=16, limit=4096):
    """Double the batch until CUDA runs out of memory; return the largest that fitted and its timing."""
    best = None
    bs = start
    while bs <= limit:
        try:
            dt, peak = fn(args, device, bs)
            best = (bs, dt, peak)
            bs *= 2
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return best


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
    args = p.parse_args()
    args.size = args.size or (64 if args.tiny else 224)
    args.voxels = args.voxels or (2000 if args.tiny else 15724)
    device = torch.device(args.device)
    torch.manual_seed(0)
    for name, fn in (("cornet_s_classification", bench_cornet), ("realnet_fmri", bench_realnet),
                     ("neurofusionnet", bench_neurofusion)):
        dt, peak = fn(args, device, args.batch)
        rec = {"model": name, "device": str(device), "tiny": args.tiny, "image_size": args.size,
               "batch": args.batch, "s_per_step": round(dt, 4), "images_per_s": round(args.batch / dt, 2),
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
