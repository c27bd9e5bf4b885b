"""Feature-extraction throughput: brainalign's cache vs the usual hook loop vs pure forward.

On a synthetic NSD-format imgBrick (``imgBrick`` uint8 (N, 425, 425, 3), written to a temp dir) it times,
in the same process and on the same device:

1. ``brainalign``: :func:`brainalign.features.extract_features` end to end (HDF5 read, decode workers,
   resize, device normalisation, forward hooks, on-device reduction, chunked zarr writes). AlexNet:
   7 layers, PCA fitted on a training split (``--train-fraction``) then applied to every image;
   CORnet-S: V1, V2, V4, IT, spatially pooled. images/s = N / wall time, PCA fit included.
2. ``hook loop``: what thingsvision / Net2Brain do: torchvision model + forward hooks, a standard
   Dataset returning ``PIL.Image`` -> ``Resize((224, 224))`` -> ``ToTensor`` -> ``Normalize``, a plain
   DataLoader (same workers and batch size), fp32, ``output.cpu().numpy()`` per hook and ``np.save`` per
   batch and layer (unreduced). For the PCA configuration a second figure adds what those users do next:
   load the saved maps and fit scikit-learn PCA on the training rows, then transform all rows.
3. ``ceiling``: forward passes only (no hooks, no I/O), on a batch already on the device (same
   precision and memory format as 1).

Usage::

    .venv/bin/python benchmarks/bench_features.py                      # CPU, small
    .venv/bin/python benchmarks/bench_features.py --device cuda --n-images 20000
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from brainalign.devices import resolve_device
from brainalign.features import extract_features
from brainalign.models import load_model
from brainalign.stimuli import nsd_images

CONFIGS = {
    "alexnet": {"layers": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"], "reduce": "pca"},
    "cornet_s": {"layers": ["V1", "V2", "V4", "IT"], "reduce": "pool"},
}


def write_brick(path: Path, n: int, seed: int = 0, distinct: int | None = None) -> None:
    """Synthetic imgBrick: uint8 (n, 425, 425, 3), one HDF5 chunk per image, blocky random images.

    ``distinct``: draw only this many different images and repeat them (writing 20,000 images is then bound
    by the disk, not by the random generator; the readers see as many bytes either way)."""
    rng = np.random.default_rng(seed)
    block = 256
    pool = None
    if distinct:
        pool = rng.integers(0, 256, (distinct, 85, 85, 3), dtype=np.uint8).repeat(5, axis=1).repeat(5, axis=2)
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("imgBrick", shape=(n, 425, 425, 3), dtype=np.uint8, chunks=(1, 425, 425, 3))
        for start in range(0, n, block):
            m = min(block, n - start)
            if pool is not None:
                ds[start:start + m] = pool[np.arange(start, start + m) % len(pool)]
            else:
                small = rng.integers(0, 256, (m, 85, 85, 3), dtype=np.uint8)
                ds[start:start + m] = small.repeat(5, axis=1).repeat(5, axis=2)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PILBrick(torch.utils.data.Dataset):
    """The baseline's dataset: PIL images from the brick, torchvision transforms."""

    def __init__(self, path, n):
        from torchvision import transforms

        self.path, self.n, self.h5 = path, n, None
        self.transform = transforms.Compose([
            transforms.Resize((224, 224)), transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        from PIL import Image

        if self.h5 is None:
            self.h5 = h5py.File(self.path, "r")
        return self.transform(Image.fromarray(self.h5["imgBrick"][i]))


def run_hook_loop(model, layer_paths, brick, n, batch_size, workers, device, out_dir: Path,
                  pca_components=None, n_train=None) -> tuple:
    """thingsvision / Net2Brain style loop; returns (images/s of the loop, images/s including an
    sklearn PCA fitted afterwards on the saved maps of the first ``n_train`` images, or None)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    modules = dict(model.named_modules())
    store = {}
    handles = [modules[p].register_forward_hook(
        lambda m, i, o, name=name: store.__setitem__(name, o.detach().cpu().numpy()))
        for name, p in layer_paths.items()]
    loader = torch.utils.data.DataLoader(_PILBrick(brick, n), batch_size=batch_size, shuffle=False,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    with torch.no_grad():
        for b, x in enumerate(loader):
            model(x.to(device))
            for name, arr in store.items():
                np.save(out_dir / f"{name}_{b:06d}.npy", arr.reshape(arr.shape[0], -1))
    _sync(device)
    wall = time.perf_counter() - t0
    for h in handles:
        h.remove()
    with_pca = None
    if pca_components:
        from sklearn.decomposition import PCA

        t1 = time.perf_counter()
        for name in layer_paths:
            x = np.concatenate([np.load(f) for f in sorted(out_dir.glob(f"{name}_*.npy"))])
            k = min(pca_components, n_train, x.shape[1])
            PCA(n_components=k, svd_solver="auto", random_state=0).fit(x[:n_train]).transform(x)
        with_pca = n / (wall + time.perf_counter() - t1)
    shutil.rmtree(out_dir)
    return n / wall, with_pca


def run_ceiling(model, batch_size, n, device, precision) -> float:
    """Pure forward passes (no hooks, no I/O) on a normalised batch already on the device, with the same
    precision and memory format as the brainalign run; returns images/s."""
    cuda = device.type == "cuda"
    precision = ("bf16" if cuda else "fp32") if precision == "auto" else precision
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, 224, 224, device=device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    n_batches = max(1, n // batch_size)
    with torch.inference_mode(), autocast:
        model(x)  # warm-up (cudnn autotune)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            model(x)
        _sync(device)
    return n_batches * batch_size / (time.perf_counter() - t0)


def measure_model(arch, brick, n_model, *, n_baseline, batch_size, workers, device, tmp: Path, skip=(),
                  pca_components=100, train_fraction=0.8, pca_fit_images=None, allowed=None, on_step=None) -> dict:
    """The three routes for one model of :data:`CONFIGS` on the first ``n_model`` images of ``brick``.

    Parameters
    ----------
    n_baseline : int
        Images for the hook loop (it writes unreduced maps, ~2 MB per AlexNet image).
    skip : iterable of ``brainalign``, ``hookloop``, ``ceiling``
    pca_fit_images : int, optional
        Passed to :func:`extract_features` (the workflow's ``features.pca_fit_images``).
    allowed : callable(step) -> bool, optional
        Asked before each route; ``False`` leaves it out (the GPU suite's time budget).
    on_step : callable(row), optional
        Called with the row after each route.

    Returns
    -------
    dict
        ``brainalign_img_s``, ``brainalign_wall_s``, ``cache_mb``, ``hookloop_img_s``,
        ``hookloop_plus_sklearn_pca_img_s`` (PCA configurations), ``ceiling_img_s``, and the settings.
    """
    cfg = CONFIGS[arch]
    cuda = device.type == "cuda"
    model = load_model(arch, "random", seed=0)
    # the hook loop gets the same weights untouched (the cache moves its model to channels_last on CUDA)
    model_fp32 = copy.deepcopy(model) if "hookloop" not in skip else None
    layer_paths = {name: model.brainalign.layers[name] for name in cfg["layers"]}
    row = {"model": arch, "layers": cfg["layers"], "reduce": cfg["reduce"], "n_images": n_model,
           "batch_size": batch_size, "workers": workers}

    def wanted(step):
        return step not in skip and (allowed is None or allowed(step))

    if wanted("brainalign"):
        images = nsd_images(brick).subset(range(n_model))
        kwargs = {}
        if cfg["reduce"] == "pca":
            n_train = max(2, int(train_fraction * n_model))
            kwargs = dict(pca_components=pca_components, pca_train_ids=list(range(n_train)),
                          pca_fit_images=pca_fit_images)
            row.update(pca_components=pca_components, n_train=n_train, pca_fit_images=pca_fit_images)
        out = tmp / f"{arch}.zarr"
        _sync(device)
        t0 = time.perf_counter()
        extract_features(images, model, out, layers=cfg["layers"], reduce=cfg["reduce"], batch_size=batch_size,
                         workers=workers, device=device, show_progress=False, **kwargs)
        _sync(device)
        wall = time.perf_counter() - t0
        row["brainalign_img_s"] = n_model / wall
        row["brainalign_wall_s"] = wall
        row["cache_mb"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
        shutil.rmtree(out)
        if on_step:
            on_step(row)
    if wanted("hookloop"):
        pca_k = pca_components if cfg["reduce"] == "pca" else None
        loop, with_pca = run_hook_loop(model_fp32, layer_paths, brick, n_baseline, batch_size, workers, device,
                                       tmp / "hookloop", pca_k, max(2, int(train_fraction * n_baseline)))
        row["hookloop_img_s"] = loop
        if with_pca is not None:
            row["hookloop_plus_sklearn_pca_img_s"] = with_pca
        row["hookloop_n_images"] = n_baseline
        if on_step:
            on_step(row)
    if wanted("ceiling"):
        row["ceiling_img_s"] = run_ceiling(model, batch_size, min(n_model, 4096 if cuda else 64), device, "auto")
        if on_step:
            on_step(row)
    del model, model_fp32
    if cuda:
        torch.cuda.empty_cache()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-images", type=int, help="images in the brick (default 256 on CPU, 20000 on CUDA)")
    parser.add_argument("--n-images-cornet", type=int, help="images for CORnet-S (default --n-images)")
    parser.add_argument("--n-baseline", type=int,
                        help="images for the hook loop (default min(n, 2000): it writes unreduced maps, ~2 MB/image)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--pca-components", type=int, default=100)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--pca-fit-images", type=int,
                        help="fit the PCA on at most this many training images (the workflow uses 10000)")
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["brainalign", "hookloop", "ceiling"])
    parser.add_argument("--tmp", help="scratch folder (default: system temp)")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    n = args.n_images or (20000 if cuda else 256)
    batch_size = args.batch_size or (256 if cuda else 32)
    workers = args.workers if args.workers is not None else min(12 if cuda else 2, os.cpu_count() or 1)
    os.environ.setdefault("BRAINALIGN_PROGRESS", "0")
    tmp = Path(tempfile.mkdtemp(prefix="bench_features_", dir=args.tmp))
    results = {"device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
               "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
               "batch_size": batch_size, "workers": workers, "runs": []}
    try:
        n_brick = max(n, args.n_images_cornet or 0)
        t0 = time.perf_counter()
        brick = tmp / "nsd_stimuli.hdf5"
        write_brick(brick, n_brick, distinct=512 if n_brick > 2048 else None)
        print(f"wrote synthetic imgBrick ({n_brick} x 425 x 425 x 3) in {time.perf_counter() - t0:.1f} s; "
              f"device={results['device']} batch={batch_size} workers={workers}", flush=True)
        for arch in args.models:
            n_model = (args.n_images_cornet or n) if arch == "cornet_s" else n
            row = measure_model(arch, brick, n_model, n_baseline=args.n_baseline or min(n_model, 2000),
                                batch_size=batch_size, workers=workers, device=device, tmp=tmp, skip=args.skip,
                                pca_components=args.pca_components, train_fraction=args.train_fraction,
                                pca_fit_images=args.pca_fit_images)
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'model':<10} {'layers / reduction':<24} {'brainalign':>12} {'hook loop':>12} {'+sklearn PCA':>12} "
          f"{'ceiling':>12}  (images/s)")
    keys = ("brainalign_img_s", "hookloop_img_s", "hookloop_plus_sklearn_pca_img_s", "ceiling_img_s")
    for r in results["runs"]:
        desc = f"{len(r['layers'])} layers, {r['reduce']}"
        cells = [f"{r[k]:12.1f}" if k in r else f"{'-':>12}" for k in keys]
        print(f"{r['model']:<10} {desc:<24} {' '.join(cells)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
