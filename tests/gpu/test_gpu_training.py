"""Training on the device: a ReAlnet-fMRI and a NeuroFusionNet training run in bf16 autocast (finite losses,
a gradient in every parameter group), exact resume after a kill (bit-identical weights and optimizer state),
and ``torchrun`` through the collective backend (NCCL on CUDA, Gloo on the CPU).

The trainers run through their public entry points (``train_realnet``, ``train_neurofusion``) on real zarr
voxel stores and an NSD-style image brick; the model a trainer builds is reached through PyTorch's global
module hooks, which also record the dtype of every convolution and linear output in training mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign.stimuli import nsd_images
from brainalign.training import NeuroFusionNet, ReAlnetFMRI, train_neurofusion, train_realnet
from gpu_data import (DEVICE, MARKS, ON_CUDA, ModelCapture, assert_gradients_everywhere, neurofusion_config,
                      realnet_config, small_backbone, write_training_inputs)

pytestmark = MARKS

#: bf16 autocast on CUDA; the trainers run fp32 on the CPU (``amp`` is documented as CUDA-only)
EXPECTED_DTYPE = torch.bfloat16 if ON_CUDA else torch.float32


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_training_inputs(tmp_path_factory.mktemp("training_inputs"))


def _check_step(capture, metrics_csv):
    assert capture.model is not None, "the trainer ran no forward pass of its model"
    # every convolution and linear layer of the training steps ran in the expected precision
    assert capture.train_dtypes == {EXPECTED_DTYPE}, f"training-mode layer outputs were {capture.train_dtypes}"
    metrics = pd.read_csv(metrics_csv)
    assert np.isfinite(metrics["train_loss"]).all() and np.isfinite(metrics["val_loss"]).all()
    return metrics


def test_realnet_training_step_in_bf16(inputs, tmp_path):
    cfg = realnet_config(DEVICE)
    with ModelCapture(ReAlnetFMRI) as capture:
        summary = train_realnet(inputs["subj01"], nsd_images(inputs["brick"]), tmp_path, cfg,
                                backbone_factory=small_backbone)
    _check_step(capture, tmp_path / "metrics.csv")
    assert summary["epochs_run"] == cfg.epochs
    assert next(capture.model.parameters()).device.type == DEVICE.type
    norms = assert_gradients_everywhere(capture.model, depth=2)
    assert {"backbone.V1", "backbone.V2", "backbone.V4", "backbone.IT", "head.out"} <= set(norms)


def test_neurofusion_training_step_in_bf16(inputs, tmp_path):
    cfg = neurofusion_config(DEVICE)
    stores = {"subj01": inputs["subj01"], "subj02": inputs["subj02"]}
    from brainalign.store import open_voxel_store

    with ModelCapture(NeuroFusionNet) as capture:
        summary = train_neurofusion({k: open_voxel_store(v) for k, v in stores.items()},
                                    nsd_images(inputs["brick"]), tmp_path, cfg, backbone_factory=small_backbone)
    _check_step(capture, tmp_path / "metrics.csv")
    assert summary["epochs_run"] == cfg.epochs
    # the image branch reads the backbone's IT feature map: its classifier is frozen (not trained, no gradient)
    assert not any(p.requires_grad for p in capture.model.image.backbone.decoder.parameters())
    norms = assert_gradients_everywhere(capture.model, depth=2, unused=("image.backbone.decoder.",))
    assert {"image.backbone", "image.cross", "fmri.tokenizer", "fmri.local", "fusion.layers", "match_head",
            "log_inv_tau"} <= set(norms)


class Killed(RuntimeError):
    pass


def _kill_after_first_epoch(epoch, row):
    if epoch == 1:
        raise Killed


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _differences(a, b):
    """Names of model tensors and Adam moments that differ in any bit."""
    bad = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    for i, (sa, sb) in enumerate(zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values())):
        bad += [f"optimizer[{i}].{k}" for k in ("exp_avg", "exp_avg_sq") if not torch.equal(sa[k], sb[k])]
    return bad


def test_exact_resume_after_kill(inputs, tmp_path):
    cfg = realnet_config(DEVICE, epochs=2, keep_checkpoints=True)  # the finished runs' last.pt are compared
    images, store = nsd_images(inputs["brick"]), inputs["subj01"]
    train_realnet(store, images, tmp_path / "whole", cfg, backbone_factory=small_backbone)
    with pytest.raises(Killed):  # killed with the default keep_checkpoints: false; last.pt stays
        train_realnet(store, images, tmp_path / "killed", realnet_config(DEVICE, epochs=2),
                      backbone_factory=small_backbone, on_epoch_end=_kill_after_first_epoch)
    assert _state(tmp_path / "killed/checkpoints/last.pt")["epoch"] == 1
    summary = train_realnet(store, images, tmp_path / "killed", cfg, backbone_factory=small_backbone, resume=True)
    assert summary["resumed_from"] == 1
    whole, resumed = _state(tmp_path / "whole/checkpoints/last.pt"), _state(tmp_path / "killed/checkpoints/last.pt")
    assert whole["epoch"] == resumed["epoch"] == 2 and whole["model"].keys() == resumed["model"].keys()
    differ = _differences(whole, resumed)
    if differ:  # tell a resume bug from run-to-run nondeterminism of the device's kernels
        train_realnet(store, images, tmp_path / "again", cfg, backbone_factory=small_backbone)
        rerun = _differences(whole, _state(tmp_path / "again/checkpoints/last.pt"))
        pytest.fail(f"resumed run differs from the uninterrupted one in {len(differ)} tensors ({differ[:4]}); "
                    f"two uninterrupted runs differ in {len(rerun)} tensors"
                    + (" (nondeterministic kernels)" if rerun else " (so the resume is not exact)"))
    pd.testing.assert_series_equal(pd.read_csv(tmp_path / "whole/metrics.csv")["train_loss"],
                                   pd.read_csv(tmp_path / "killed/metrics.csv")["train_loss"])


@pytest.fixture(scope="module")
def torchrun_reports(inputs, tmp_path_factory):
    """``torchrun`` starts the trainers as the workflow does: one process per GPU on CUDA (NCCL; with one GPU
    the worker puts the engine's DDP path through a one-process NCCL group), two processes on the CPU (Gloo).
    Returns each rank's report (see torchrun_worker.py)."""
    n_proc = 1 if ON_CUDA else 2
    out = tmp_path_factory.mktemp("torchrun")
    worker = Path(__file__).with_name("torchrun_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_proc}",
           str(worker), "--data", str(inputs["brick"].parent), "--out", str(out), "--device", DEVICE.type]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(n_proc)
               if (out / f"rank{r}.json").exists()]
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}): {proc.stderr[-3000:]}\n{reports}"
    assert len(reports) == n_proc
    for rep in reports:
        assert rep["world_size"] == n_proc and rep["backend"] == ("nccl" if ON_CUDA else "gloo"), rep
        assert rep["all_reduce_ok"], rep
    return reports


def _check_ddp_run(reports, method):
    for rep in reports:
        assert rep[method]["error"] is None, f"{method} under torchrun: {rep[method]['error']}"
        assert rep[method]["ddp"] is True and rep[method]["epochs_run"] == 1, rep[method]
    assert len({rep[method]["weights_sha256"] for rep in reports}) == 1, "DDP replicas' parameters diverged"


def test_torchrun_realnet(torchrun_reports):
    _check_ddp_run(torchrun_reports, "realnet")
    if ON_CUDA:  # one process: the DDP run must train like the plain one, up to kernel nondeterminism
        rep = torchrun_reports[0]
        np.testing.assert_allclose(rep["realnet"]["train_loss"], rep["realnet_plain"]["train_loss"], rtol=1e-3)


def test_torchrun_neurofusion(torchrun_reports):
    # the image branch's unused classifier is frozen (training.neurofusion.freeze_unused_backbone_parameters), so
    # DDP trains it without find_unused_parameters
    _check_ddp_run(torchrun_reports, "neurofusion")
