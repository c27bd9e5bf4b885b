"""Train ReAlnet-fMRI for one subject (and its controls) from a voxel store and an image set."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_output
from ..errors import InputError
from ..heldout import TRAINING_RECORD, combine_records, record_info, training_record, write_training_record
from . import engine
from .backbones import export_backbone, initial_weights_provenance, load_backbone
from .config import RealnetConfig, config_to_dict
from .data import PairDataset, load_images, normalize_images, prepare_targets, shuffle_pairs
from .losses import batch_pearson_matrix, realnet_loss
from .realnet import ReAlnetFMRI, make_teacher

log = logging.getLogger(__name__)


def effective_beta(cfg: RealnetConfig) -> float:
    """``0`` for the ``beta0`` control, else ``cfg.beta``."""
    return 0.0 if cfg.control == "beta0" else float(cfg.beta)


class RealnetTask:
    """Engine task (see :mod:`brainalign.training.engine`) for ReAlnet-fMRI."""

    def __init__(self, model: ReAlnetFMRI, teacher, train_ds, val_ds, cfg: RealnetConfig):
        self.model, self.teacher, self.train_ds, self.val_ds, self.cfg = model, teacher, train_ds, val_ds, cfg
        self.beta = effective_beta(cfg)

    def to(self, device):
        if not self.train_ds.has_labels:  # cached pseudo-labels: the teacher is not needed on the device
            self.teacher.to(device)

    def on_train_epoch_start(self):
        self.teacher.train(not self.cfg.teacher_eval)
        if self.cfg.freeze_bn_stats:
            freeze_batchnorm_stats(self.model)

    def train_loader(self, epoch, rank, world_size):
        return engine.epoch_loader(self.train_ds, self.cfg.batch_size, epoch, self.cfg.seed, rank, world_size,
                                   shuffle=True, num_workers=self.cfg.num_workers)

    def val_loader(self):
        if self.val_ds is None or len(self.val_ds) == 0:
            return None
        return torch.utils.data.DataLoader(self.val_ds, batch_size=self.cfg.batch_size, shuffle=False)

    @staticmethod
    def batch_size_of(batch):
        return int(batch[0].shape[0])

    def loss(self, model, batch):
        images, targets, labels = batch
        x = normalize_images(images)
        logits, pred = model(x)
        return realnet_loss(logits, teacher_output(self.teacher, x, labels), pred, targets, self.beta, self.cfg.loss)


def teacher_output(teacher, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What :func:`realnet_loss` takes from the teacher for one batch: its cached pseudo-labels, int (B,), or,
    when the batch has none (``-1``: a train-mode teacher), the teacher's logits for ``x``, (B, n_classes)."""
    if bool((labels >= 0).all()):
        return labels.to(x.device)
    with torch.no_grad():
        return teacher(x)


def freeze_batchnorm_stats(model: torch.nn.Module) -> None:
    """Put every BatchNorm layer of ``model`` in eval mode: normalise with, and no longer update, the running
    statistics (the affine weights still train)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


@torch.no_grad()
def teacher_labels(teacher, images: torch.Tensor, batch_size: int, device, amp: bool = True) -> torch.Tensor:
    """Pseudo-labels ``argmax teacher(x)`` of every image, computed once.

    Valid only for a teacher in eval mode (frozen, no augmentation: its output for an image does not depend
    on the step or on the other images in the batch), which makes this equal to running the teacher in
    every training and validation step, at a fraction of the cost.

    Parameters
    ----------
    teacher : nn.Module
        Frozen backbone returning class logits (B, n_classes); put in eval mode here.
    images : uint8 Tensor (n, 3, S, S)
    batch_size : int
    device : torch.device
    amp : bool
        bf16 autocast on CUDA, as in the training step.

    Returns
    -------
    int64 Tensor (n,) on the CPU
    """
    teacher.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize_images(images[start:start + batch_size].to(device))
        with autocast:
            out.append(teacher(x).float().argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def build_realnet(cfg: RealnetConfig, n_out: int, backbone_factory=None):
    """Initial ``(model, teacher)`` for one subject, identical for every subject with the same ``n_out``.

    The backbone is built (``backbone_factory()`` or ``load_backbone(cfg.backbone, cfg.weights)``)
    after seeding with ``cfg.seed``, the head after seeding with ``cfg.seed + 1``; so every subject
    starts from the same weights, never from another subject's trained backbone.
    """
    engine.seed_everything(cfg.seed)
    backbone = backbone_factory() if backbone_factory is not None else load_backbone(cfg.backbone, cfg.weights, cfg.seed)
    teacher = make_teacher(backbone, eval_mode=cfg.teacher_eval)
    torch.manual_seed(cfg.seed + 1)
    model = ReAlnetFMRI(backbone, n_out=n_out, image_size=cfg.image_size, layers=cfg.layers, hidden=cfg.hidden,
                        pool=cfg.head_pool)
    return model, teacher


@torch.no_grad()
def evaluate_pairs(model, teacher, dataset, cfg, device, beta=None):
    """Loss parts and prediction accuracy on a dataset (no selection is made here).

    Returns
    -------
    dict with ``loss, ce, mse, corr, diag_r`` (batch-averaged like training), ``pattern_r`` (mean over
    images of r(pred_i, y_i) across dimensions), ``dim_r`` (mean over dimensions of r across images).
    """
    if dataset is None or len(dataset) == 0:
        return {}
    model.eval()
    teacher.eval()
    beta = effective_beta(cfg) if beta is None else beta
    preds, ys, sums, n = [], [], {}, 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    for images, targets, labels in torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size):
        images, targets = images.to(device), targets.to(device)
        x = normalize_images(images)
        with autocast:
            logits, pred = model(x)
            t_out = teacher_output(teacher, x, labels)
        total, parts = realnet_loss(logits, t_out, pred, targets, beta, cfg.loss)
        bs = len(images)
        for k, v in {"loss": total, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * bs
        n += bs
        preds.append(pred.float().cpu())
        ys.append(targets.float().cpu())
    p, y = torch.cat(preds), torch.cat(ys)
    out = {k: v / n for k, v in sums.items()}
    out["pattern_r"] = float(torch.diagonal(batch_pearson_matrix(p, y)).mean())
    out["dim_r"] = float(torch.diagonal(batch_pearson_matrix(p.T, y.T)).mean()) if len(p) > 1 else float("nan")
    return out


#: files of a run folder that the chosen candidate of a beta search provides (docs/training.md)
RUN_FILES = ("backbone.pt", TRAINING_RECORD, "targets.npz", "metrics.csv", "training_curve.png")


def train_realnet(store, image_set, out_dir, cfg: RealnetConfig, resume: bool = False, backbone_factory=None,
                  on_epoch_end=None, subject: str | None = None) -> dict:
    """Train one subject's ReAlnet-fMRI (or control) and export its backbone.

    Parameters
    ----------
    store : voxel store (``brainalign.store.open_voxel_store``) or path
    image_set : ``brainalign.stimuli.ImageSet`` (``.ids``, ``.load(id) -> uint8 (H, W, 3)``)
    out_dir : path
        Receives ``metrics.csv``, ``training_curve.png``, ``targets.npz`` (split IDs and the voxel -> target
        transform), ``stimuli.parquet`` (the training record: every stimulus used for training or model selection,
        :mod:`brainalign.heldout`), ``backbone.pt`` (the one weights file: backbone + head, read by
        ``load_model`` as the backbone) and ``summary.json``; while training, ``checkpoints/{last,best}.pt``,
        removed once the run has succeeded unless ``cfg.keep_checkpoints``. With ``cfg.beta_grid`` each candidate
        runs in ``beta_search/beta-<b>/`` and the chosen one's files are copied to ``out_dir`` (:data:`RUN_FILES`);
        every candidate keeps its checkpoints until the whole search has succeeded.
    cfg : RealnetConfig
    resume : bool
        Continue from ``checkpoints/last.pt`` (exact: the result equals an uninterrupted run); without one (never
        started, or removed after success) the run starts from scratch.
    backbone_factory : callable () -> nn.Module, optional
        Replaces ``brainalign.models.load_model(cfg.backbone, cfg.weights)`` (tests use a small stand-in).
    on_epoch_end : callable(epoch, row), optional

    Returns
    -------
    dict
        The ``summary.json`` content (best epoch, val/test metrics, fingerprints, teacher and initial weights,
        the beta search, paths).
    """
    if isinstance(store, (str, Path)):
        from ..store import open_voxel_store

        store = open_voxel_store(store)
    subject = subject or str(store.attrs.get("subject", "")) if hasattr(store, "attrs") else subject
    out_dir = Path(out_dir)
    if cfg.beta_grid and cfg.control != "beta0":
        summary = _beta_search(store, image_set, out_dir, cfg, resume, backbone_factory, on_epoch_end, subject)
        runs = [Path(c["run"]) for c in summary.get("beta_search", {}).get("candidates", [])]
    else:
        if cfg.beta_grid:  # beta0: the alignment term is off, there is no beta to choose
            cfg = dataclasses.replace(cfg, beta_grid=())
        summary = _train_one(store, image_set, out_dir, cfg, resume, backbone_factory, on_epoch_end, subject)
        runs = [out_dir]
    # the run has succeeded (weights and summary written; an empty summary: not the main rank, which removes)
    if summary and not cfg.keep_checkpoints:
        for run in runs:
            engine.discard_checkpoints(run)
    return summary


def _beta_search(store, image_set, out_dir: Path, cfg: RealnetConfig, resume, backbone_factory, on_epoch_end,
                 subject) -> dict:
    """One run per candidate of ``cfg.beta_grid`` (same seed, data and initial weights); keep the candidate whose
    selected epoch has the highest validation alignment, mean r(predicted, measured) over the validation images
    (``val.pattern_r``), which unlike the validation loss does not scale with beta."""
    candidates, summaries = [], {}
    for beta in cfg.beta_grid:
        run = out_dir / "beta_search" / f"beta-{beta:g}"
        summaries[beta] = _train_one(store, image_set, run, dataclasses.replace(cfg, beta=beta, beta_grid=()),
                                     resume, backbone_factory, on_epoch_end, subject)
        if summaries[beta]:
            candidates.append({"beta": beta, "val_pattern_r": summaries[beta]["val"].get("pattern_r", float("nan")),
                               "best_epoch": summaries[beta]["best_epoch"], "run": str(run)})
    if not candidates:  # not the main rank: rank 0 chooses and writes
        return {}
    scores = np.array([c["val_pattern_r"] for c in candidates], dtype=float)
    if not np.isfinite(scores).any():
        raise InputError("beta_grid", "no candidate has a finite validation alignment (too few validation images?)")
    chosen = candidates[int(np.nanargmax(scores))]  # ties: the first in grid order
    chosen_dir = Path(chosen["run"])
    for name in RUN_FILES:
        if (chosen_dir / name).exists():
            with atomic_output(out_dir / name) as tmp:
                shutil.copyfile(chosen_dir / name, tmp)
    summary = dict(summaries[chosen["beta"]])
    summary.update(beta=chosen["beta"], config=config_to_dict(cfg),
                   checkpoints=str(chosen_dir / engine.CHECKPOINT_DIR) if cfg.keep_checkpoints else None,
                   beta_search={"criterion": "val_pattern_r", "chosen": chosen["beta"], "candidates": candidates})
    with atomic_output(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    log.info("beta search: chose beta=%g (validation pattern r %s)", chosen["beta"],
             {c["beta"]: round(c["val_pattern_r"], 4) for c in candidates})
    return summary


def _train_one(store, image_set, out_dir: Path, cfg: RealnetConfig, resume, backbone_factory, on_epoch_end,
               subject) -> dict:
    """:func:`train_realnet` for one beta."""
    dist, device = engine.setup_devices(cfg.device)

    targets = prepare_targets(store, roi=cfg.roi, n_components=cfg.n_components, zscore_voxels=cfg.zscore_voxels,
                              val_fraction=cfg.val_fraction, seed=cfg.seed, max_train_images=cfg.max_train_images,
                              max_test_images=cfg.max_test_images, available_ids=image_set.ids)
    # what the model is trained and selected on: this subject's train/val images, and whatever the initial
    # weights were trained on (a brainalign checkpoint's own record; read, and checked, before any output)
    initial = initial_weights_provenance(cfg.weights, cfg.backbone, backbone_factory)
    record = combine_records([training_record(targets.train_ids, targets.val_ids, subject), initial["record"]])
    y_train, y_val = targets.y_train, targets.y_val
    perm_train = perm_val = None
    if cfg.control == "shuffled":
        y_train, perm_train = shuffle_pairs(y_train, cfg.seed + 17)
        if len(y_val):
            y_val, perm_val = shuffle_pairs(y_val, cfg.seed + 18)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_dir / "targets.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, train_ids=targets.train_ids.astype(str), val_ids=targets.val_ids.astype(str),
                         test_ids=targets.test_ids.astype(str), voxel_mask=targets.voxel_mask,
                         mean=targets.mean, std=targets.std,
                         components=targets.components if targets.components is not None else np.zeros(0),
                         pca_mean=targets.pca_mean if targets.pca_mean is not None else np.zeros(0),
                         perm_train=perm_train if perm_train is not None else np.zeros(0, int),
                         perm_val=perm_val if perm_val is not None else np.zeros(0, int))
        write_training_record(out_dir / TRAINING_RECORD, record)

    train_ds = PairDataset(load_images(image_set, targets.train_ids, cfg.image_size, "train images"), y_train)
    val_ds = (PairDataset(load_images(image_set, targets.val_ids, cfg.image_size, "val images"), y_val)
              if len(targets.val_ids) else None)
    test_ds = (PairDataset(load_images(image_set, targets.test_ids, cfg.image_size, "test images"), targets.y_test)
               if len(targets.test_ids) else None)

    model, teacher = build_realnet(cfg, targets.n_out, backbone_factory)
    if cfg.teacher_eval:  # the eval-mode teacher's pseudo-label of an image never changes: compute it once
        teacher.to(device)
        for ds in (train_ds, val_ds, test_ds):
            if ds is not None:
                ds.set_labels(teacher_labels(teacher, ds.images, cfg.batch_size, device, cfg.amp))
        teacher.cpu()
    meta = {"init_sha": engine.state_fingerprint(model.state_dict()),
            "backbone_init_sha": engine.state_fingerprint(model.backbone.state_dict()),
            "subject": subject, "n_out": targets.n_out}
    task = RealnetTask(model, teacher, train_ds, val_ds, cfg)
    result = engine.fit_best(task, cfg, out_dir, method="realnet", resume=resume, on_epoch_end=on_epoch_end,
                             meta=meta, dist=dist, device=device)
    if not dist.is_main:
        return {}
    if not cfg.teacher_eval:
        teacher.to(device)
    summary = {
        "method": "realnet", "subject": subject, "control": cfg.control, "beta": effective_beta(cfg),
        "loss": cfg.loss, "best_epoch": result.best_epoch, "select_metric": cfg.select_metric,
        "best_value": result.best_value, "epochs_run": result.epochs_run, "resumed_from": result.resumed_from,
        **meta, **targets.info,
        "initial_weights": initial["origin"],
        "teacher": {"weights": initial["origin"], "spec": initial["spec"], "mode": "eval" if cfg.teacher_eval
                    else "train", "state_sha256": engine.state_fingerprint(teacher.state_dict())},
        "training_record": record_info(record),
        "val": evaluate_pairs(model, teacher, val_ds, cfg, device),
        "test": evaluate_pairs(model, teacher, test_ds, cfg, device),
        "config": config_to_dict(cfg),
    }
    provenance = {"method": "realnet", "subject": subject, "control": cfg.control, "beta": effective_beta(cfg),
                  "epoch": result.best_epoch, "initial_weights": initial["origin"],
                  "training_record": record_info(record), "config": config_to_dict(cfg)}
    # one weights file: the whole model (backbone + encoding head), read by load_model as the backbone
    export_backbone(out_dir / "backbone.pt", model.backbone, cfg.backbone, extra=provenance,
                    image_size=cfg.image_size, model=model,
                    model_info={"kind": "realnet_fmri", "n_out": targets.n_out, "layers": list(cfg.layers),
                                "hidden": cfg.hidden, "pool": cfg.head_pool})
    with atomic_output(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    return summary


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def train_realnet_subjects(stores: dict, image_set, out_dir, cfg: RealnetConfig, resume: bool = False,
                           backbone_factory=None) -> dict:
    """One model per subject (``out_dir/<label>``), each started from the same initial weights.

    Parameters
    ----------
    stores : dict label -> store or store path
    """
    if not stores:
        raise InputError("stores", "no subject stores given")
    return {label: train_realnet(s, image_set, Path(out_dir) / label, cfg, resume=resume,
                                 backbone_factory=backbone_factory, subject=label)
            for label, s in stores.items()}
