"""Device selection and small real inputs for the GPU correctness checks (``pytest -m gpu``).

The checks run on CUDA when it is available and are skipped otherwise. ``BRAINALIGN_GPU_TEST_DEVICE=cpu``
runs the very same checks on the CPU (bf16 autocast and channels_last exist there too): that is how
``benchmarks/gpu_suite.py --device cpu --tiny`` keeps these code paths exercised between GPU loans.

The inputs are real files in the project's formats, written here with planted content: an NSD-style
``nsd_stimuli.hdf5`` image brick and zarr voxel stores with NSD-like ROI atlases (docs/store.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

DEVICE_ENV = "BRAINALIGN_GPU_TEST_DEVICE"
#: the six ROI atlases NeuroFusionNet reads (its ``rois`` option)
NSD_ROIS = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")


def gpu_check_device():
    """The device the checks run on: ``$BRAINALIGN_GPU_TEST_DEVICE`` if set, else CUDA, else None (skip)."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return torch.device(forced)
    return torch.device("cuda") if torch.cuda.is_available() else None


DEVICE = gpu_check_device()
ON_CUDA = DEVICE is not None and DEVICE.type == "cuda"
#: every module's ``pytestmark``: the ``gpu`` marker, skipped without a device to check
MARKS = [pytest.mark.gpu,
         pytest.mark.skipif(DEVICE is None, reason=f"needs CUDA (or {DEVICE_ENV}=cpu to run the checks on the CPU)")]


def image_for(stimulus_id: int, size: int = 425) -> np.ndarray:
    """uint8 (size, size, 3) image whose content is a function of its ID (a misplaced row is detectable)."""
    rng = np.random.default_rng(1000 + int(stimulus_id))
    blocks = 17
    small = rng.integers(0, 256, (blocks, blocks, 3), dtype=np.uint8)
    big = np.kron(small, np.ones((size // blocks + 1, size // blocks + 1, 1), dtype=np.uint8))
    return big[:size, :size]


def write_brick(path: Path, n_images: int, size: int = 425) -> Path:
    """An NSD ``nsd_stimuli.hdf5``: ``imgBrick`` uint8 (n_images, size, size, 3), one chunk per image."""
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("imgBrick", shape=(n_images, size, size, 3), dtype=np.uint8,
                               chunks=(1, size, size, 3))
        for i in range(n_images):
            ds[i] = image_for(i, size)
    return path


def write_store(path: Path, n_stimuli: int, n_voxels: int, n_shared: int, seed: int, subject: str) -> Path:
    """A zarr voxel store: stimuli 0..n_stimuli-1 shown twice (the last ``n_shared`` flagged shared), betas =
    a planted per-stimulus pattern + noise, voxels on a 3-D grid, NSD-like atlases covering every voxel."""
    from brainalign.store import write_voxel_store

    rng = np.random.default_rng(seed)
    stim = np.repeat(np.arange(n_stimuli), 2)
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, len(stim) + 1), "stimulus": stim,
                           "repetition": np.tile([0, 1], n_stimuli), "shared": stim >= n_stimuli - n_shared})
    signal = rng.normal(size=(n_stimuli, n_voxels)).astype(np.float32)
    betas = signal[stim] + 0.5 * rng.normal(size=(len(stim), n_voxels)).astype(np.float32)
    grid = (16, 16, 16)
    flat = np.sort(rng.choice(np.prod(grid), n_voxels, replace=False))
    ijk = np.stack(np.unravel_index(flat, grid), axis=1).astype(np.int32)
    part = np.arange(n_voxels) * 6 // n_voxels  # six contiguous voxel groups, one per atlas
    rois = {}
    for k, name in enumerate(NSD_ROIS):
        labels = np.where(part == k, 1, 0) if name != "streams" else np.ones(n_voxels, int)
        rois[name] = (labels, {1: f"{name}-area"})
    rois["nsdgeneral"] = np.ones(n_voxels, bool)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    return write_voxel_store(path, betas, trials, ijk, grid, affine, rois=rois,
                             attrs={"dataset": "nsd", "subject": subject})


def parameter_groups(model: torch.nn.Module, depth: int = 2) -> dict:
    """Trainable parameters grouped by the path of the module holding them, cut at ``depth`` (e.g.
    ``backbone.V1``, ``head.out``; a parameter held by the model itself is its own group)."""
    groups = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            module = name.rsplit(".", 1)[0] if "." in name else name
            groups.setdefault(".".join(module.split(".")[:depth]), []).append((name, p))
    return groups


def assert_gradients_everywhere(model: torch.nn.Module, depth: int = 2, unused: tuple = ()) -> dict:
    """Every trainable parameter has a finite gradient and every group's gradient is non-zero, except the
    parameters under the ``unused`` prefixes, which must have none (modules the loss does not depend on);
    returns group -> gradient norm."""
    norms = {}
    stray = [n for n, p in model.named_parameters() if n.startswith(tuple(unused)) and p.grad is not None]
    assert not stray, f"parameters expected to be unused got gradients: {stray}"
    for group, params in parameter_groups(model, depth).items():
        params = [(n, p) for n, p in params if not n.startswith(tuple(unused))]
        if not params:
            continue
        missing = [n for n, p in params if p.grad is None]
        assert not missing, f"no gradient reached {missing}"
        bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
        assert not bad, f"non-finite gradients in {bad}"
        norms[group] = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for _, p in params)))
        assert norms[group] > 0, f"all-zero gradient in parameter group {group}"
    return norms


class ModelCapture:
    """Records, through PyTorch's global module hooks, the first module of a given class that runs a
    forward pass (to reach a model built inside a trainer) and the dtype of every convolution and linear
    output computed in training mode (to see autocast at work)."""

    def __init__(self, cls):
        self.cls, self.model, self.train_dtypes = cls, None, set()

    def _hook(self, module, inputs, output):
        if self.model is None and isinstance(module, self.cls):
            self.model = module
        if module.training and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and torch.is_tensor(output):
            self.train_dtypes.add(output.dtype)

    def __enter__(self):
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


def realnet_config(device, **overrides):
    """The ``tiny`` ReAlnet-fMRI preset on ``device`` (random CORnet-S weights, 64 px images)."""
    from brainalign.training import make_config

    values = dict(device=str(device), epochs=1, batch_size=8, image_size=64, n_components=16, roi="all",
                  max_train_images=0, max_test_images=0, val_fraction=0.25)
    values.update(overrides)
    return make_config("realnet", "tiny", values)


def neurofusion_config(device, **overrides):
    """The ``tiny`` NeuroFusionNet preset on ``device`` (64 px images, every voxel)."""
    from brainalign.training import make_config

    values = dict(device=str(device), epochs=1, batch_size=8, image_size=64, max_train_images=0)
    values.update(overrides)
    return make_config("neurofusion", "tiny", values)


def small_backbone():
    """The backbone the training checks use: real CORnet-S on CUDA; on the CPU, where CORnet-S steps take
    seconds, the CORnet-shaped stand-in (same V1/V2/V4/IT/decoder interface)."""
    if DEVICE is not None and DEVICE.type == "cuda":
        from brainalign.models.cornet_s import CORnetS

        return CORnetS()
    from brainalign.training.standin import TinyCORnet

    return TinyCORnet(width=8, n_classes=100)


def write_training_inputs(root: Path, n_stimuli: int | None = None, n_voxels: int | None = None) -> dict:
    """NSD-style image brick (96 px) and two subjects' voxel stores under ``root``; returns their paths.
    Default sizes: 40 stimuli (8 shared) and 2,000 voxels on CUDA; 24 stimuli and 200 voxels on the CPU."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n_stimuli = n_stimuli or (40 if ON_CUDA else 24)
    n_voxels = n_voxels or (2000 if ON_CUDA else 200)
    return {"brick": write_brick(root / "nsd_stimuli.hdf5", n_stimuli, size=96),
            "subj01": write_store(root / "subj01.zarr", n_stimuli, n_voxels, 8, seed=1, subject="subj01"),
            "subj02": write_store(root / "subj02.zarr", n_stimuli, n_voxels + 37, 8, seed=2, subject="subj02")}
