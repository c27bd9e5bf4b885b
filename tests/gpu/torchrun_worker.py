"""One ``torchrun`` process of tests/gpu/test_gpu_training.py::test_torchrun_through_the_collective_backend.

    torchrun --standalone --nproc_per_node N torchrun_worker.py --data DIR --out DIR --device cuda|cpu

Joins the process group (NCCL on CUDA, Gloo on the CPU; with a timeout, so that a failing peer cannot hang
the test), checks an all-reduce, then trains ReAlnet-fMRI and NeuroFusionNet for one epoch through their
public entry points, as ``torchrun`` runs them in the workflow, and writes ``OUT/rank<R>.json``: backend,
all-reduce result, and per trainer whether DDP wrapped the model, epochs run, fingerprint of the final parameters,
training losses and any error.

With one process (one GPU) the engine rightly trains without DDP. To put its DDP path (gradient all-reduce,
metric all-reduce, barriers) through NCCL all the same, the worker hands the trainers a one-process group
that reports itself as distributed, and also trains once without it (``realnet_plain``) for comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import traceback
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

from brainalign.stimuli import nsd_images
from brainalign.store import open_voxel_store
from brainalign.training import NeuroFusionNet, ReAlnetFMRI, engine, train_neurofusion, train_realnet
from gpu_data import ModelCapture, neurofusion_config, realnet_config, small_backbone


@dataclasses.dataclass
class OneProcessGroup(engine.DistInfo):
    """A process group of one that the engine treats as distributed (DDP over a one-rank NCCL group)."""

    @property
    def enabled(self) -> bool:
        return True


class DDPCapture(ModelCapture):
    """Also notes whether a ``DistributedDataParallel`` wrapper ran forward passes."""

    def __init__(self, cls):
        super().__init__(cls)
        self.ddp = False

    def _hook(self, module, inputs, output):
        self.ddp = self.ddp or isinstance(module, DistributedDataParallel)
        super()._hook(module, inputs, output)


def run_trainer(name, cls, train, out: Path, rank: int) -> dict:
    epochs = []
    result = {"error": None, "ddp": False, "epochs_run": 0, "weights_sha256": None, "train_loss": None}
    try:
        with DDPCapture(cls) as capture:
            train(out, lambda epoch, row: epochs.append(epoch))
        # parameters only: DDP keeps them identical on every rank, while each rank's BatchNorm running
        # statistics follow its own batches after the broadcast at each step
        params = {k: v for k, v in capture.model.named_parameters()}
        result.update(ddp=capture.ddp, epochs_run=len(epochs), weights_sha256=engine.state_fingerprint(params))
        if rank == 0:
            result["train_loss"] = pd.read_csv(out / "metrics.csv")["train_loss"].tolist()
    except Exception:  # reported to the test, which shows it
        result["error"] = traceback.format_exc()[-2000:]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of gpu_data.write_training_inputs")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", choices=("cuda", "cpu"), required=True)
    args = ap.parse_args()
    rank, local, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    # joined here, before the engine would (it joins only when WORLD_SIZE > 1, with no timeout)
    tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=120))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    total = torch.tensor([rank + 1.0], device=device)
    tdist.all_reduce(total)
    report = {"rank": rank, "world_size": world, "backend": tdist.get_backend(),
              "all_reduce_ok": float(total) == world * (world + 1) / 2}
    dist = engine.DistInfo(rank, local, world) if world > 1 else OneProcessGroup(rank, local, world)
    plain_init = engine.init_distributed
    engine.init_distributed = lambda *a, **k: dist  # the trainers ask the engine for the process group
    images = nsd_images(args.data / "nsd_stimuli.hdf5")

    def realnet(out, on_epoch_end):
        train_realnet(args.data / "subj01.zarr", images, out, realnet_config(args.device),
                      backbone_factory=small_backbone, on_epoch_end=on_epoch_end)

    def neurofusion(out, on_epoch_end):
        stores = {s: open_voxel_store(args.data / f"{s}.zarr") for s in ("subj01", "subj02")}
        train_neurofusion(stores, images, out, neurofusion_config(args.device), backbone_factory=small_backbone,
                          on_epoch_end=on_epoch_end)

    report["realnet"] = run_trainer("realnet", ReAlnetFMRI, realnet, args.out / "realnet", rank)
    report["neurofusion"] = run_trainer("neurofusion", NeuroFusionNet, neurofusion, args.out / "neurofusion", rank)
    if world == 1:
        engine.init_distributed = plain_init
        report["realnet_plain"] = run_trainer("realnet", ReAlnetFMRI, realnet, args.out / "realnet_plain", rank)
    (args.out / f"rank{rank}.json").write_text(json.dumps(report, indent=1))
    tdist.destroy_process_group()


if __name__ == "__main__":
    main()
