"""Multi-subject NeuroFusionNet training, held-out-subject brain-prediction evaluation, backbone export."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_output
from ..errors import InputError
from ..heldout import (TRAINING_RECORD, check_disjoint, combine_records, record_info, training_record,
                       write_training_record)
from . import engine
from .backbones import export_backbone, initial_weights_provenance, load_backbone
from .config import NeuroFusionConfig, config_to_dict
from .data import load_images, normalize_images, roi_voxel_mask, shared_stimuli, shuffle_pairs, split_train_val
from .neurofusion import NeuroFusionNet, token_roi_weights, window_mean_coords

log = logging.getLogger(__name__)


@dataclass
class SubjectData:
    """One subject's fMRI input in network voxel order.

    Attributes
    ----------
    label : str
    train_ids, val_ids : ndarray (n,)
    x_train, x_val : float32 ndarray (n, V)   repetition-averaged, z-scored with training statistics
    roi_labels : int ndarray (V,)             0 = none, k = cfg.rois[k-1]
    coords : float32 ndarray (V, 3)           mm coordinates min-max scaled to [-1, 1] per axis
    order : int ndarray (V,)                  network position -> index into the selected voxels
    voxel_mask : bool ndarray (n_voxels,)
    """

    label: str
    train_ids: np.ndarray
    val_ids: np.ndarray
    x_train: np.ndarray
    x_val: np.ndarray
    roi_labels: np.ndarray
    coords: np.ndarray
    order: np.ndarray
    voxel_mask: np.ndarray


def assign_rois(store, rois, voxel_mask) -> np.ndarray:
    """Label each selected voxel with one of ``rois`` (1-based; 0 = none).

    A voxel in several ROIs gets the most specific one: ROIs are painted from the largest to the
    smallest mask, so e.g. ``floc-faces`` overrides ``streams``. ROIs absent from the store stay empty.
    """
    masks = {}
    known = set(store.roi_names())
    for k, name in enumerate(rois, start=1):
        try:
            masks[k] = np.asarray(store.roi_mask(name), bool)[voxel_mask]
        except (KeyError, ValueError, InputError):
            if name in known:
                raise
            log.warning("ROI %s not in the store; it stays empty", name)
    labels = np.zeros(int(voxel_mask.sum()), np.int64)
    for k in sorted(masks, key=lambda k: -masks[k].sum()):
        labels[masks[k]] = k
    return labels


def normalised_coords(store, voxel_mask) -> np.ndarray:
    """Voxel centres in mm (store affine), min-max scaled to [-1, 1] per axis: a shared space across subjects."""
    ijk = np.asarray(store.voxel_ijk)[voxel_mask].astype(np.float64)
    affine = np.asarray(store.affine, dtype=np.float64)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    lo, hi = xyz.min(0), xyz.max(0)
    return (2 * (xyz - lo) / np.where(hi > lo, hi - lo, 1.0) - 1).astype(np.float32)


def prepare_subject(store, cfg: NeuroFusionConfig, label: str, available_ids=None, seed: int = 0,
                    split: str = "train") -> SubjectData:
    """fMRI inputs of one subject. ``split="train"``: non-shared stimuli split train/val;
    ``split="heldout"``: non-shared = train (ridge fit), shared = val slot (ridge test)."""
    mask = roi_voxel_mask(store, cfg.voxel_roi)
    labels = assign_rois(store, cfg.rois, mask)
    coords = normalised_coords(store, mask)
    order = np.lexsort((coords[:, 2], coords[:, 1], coords[:, 0], labels))  # by ROI, then position
    if len(order) < cfg.kernel:
        raise InputError(label, f"{len(order)} voxels, fewer than the tokenizer kernel ({cfg.kernel})")
    ids, y, _ = store.mean_by_stimulus(voxels=mask)
    ids, y = np.asarray(ids), np.asarray(y, np.float32)[:, order]
    if available_ids is not None:
        have = {str(i) for i in available_ids}
        keep = np.array([str(i) in have for i in ids], bool)
        ids, y = ids[keep], y[keep]
    shared = shared_stimuli(store)
    is_test = np.array([i in shared for i in ids.tolist()], bool)
    pool = np.flatnonzero(~is_test)
    if cfg.max_train_images:
        pool = np.sort(np.random.default_rng(seed).permutation(pool)[: cfg.max_train_images])
    if split == "train":
        tr, va = split_train_val(pool, cfg.val_fraction, seed)
    else:
        tr, va = pool, np.flatnonzero(is_test)
    mean, std = y[tr].mean(0), y[tr].std(0)
    std[std == 0] = 1

    def z(rows):
        return ((y[rows] - mean) / std).astype(np.float32)

    return SubjectData(label, ids[tr], ids[va], z(tr), z(va), labels[order], coords[order], order, mask)


class NeuroFusionTask:
    """Engine task: batches never mix subjects (each has its own voxel count)."""

    def __init__(self, model, subjects, images_by_id, cfg: NeuroFusionConfig):
        self.model, self.subjects, self.cfg = model, subjects, cfg
        self.images = images_by_id  # str(id) -> row of self.image_tensor
        self.coords = [window_mean_coords(s.coords, cfg.kernel, cfg.stride) for s in subjects]
        self.roi_w = [token_roi_weights(s.roi_labels, len(cfg.rois), cfg.kernel, cfg.stride) for s in subjects]
        self.x_train = [torch.from_numpy(s.x_train) for s in subjects]
        self.x_val = [torch.from_numpy(s.x_val) for s in subjects]
        self.img_train = [torch.stack([self.images[str(i)] for i in s.train_ids]) for s in subjects]
        self.img_val = [torch.stack([self.images[str(i)] for i in s.val_ids]) if len(s.val_ids) else None
                        for s in subjects]

    def to(self, device):
        self.coords = [c.to(device) for c in self.coords]
        self.roi_w = [w.to(device) for w in self.roi_w]

    def train_loader(self, epoch, rank, world_size):
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
        batches = []
        for s in range(len(self.subjects)):
            perm = torch.randperm(len(self.x_train[s]), generator=g)
            for chunk in perm.split(self.cfg.batch_size):
                if len(chunk) >= 2:  # contrastive terms need two samples
                    batches.append((s, chunk))
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in order]
        per_rank = len(batches) // world_size if world_size > 1 else len(batches)
        mine = batches[rank::world_size][:per_rank]
        return [(self.img_train[s][idx], self.x_train[s][idx], s) for s, idx in mine]

    def val_loader(self):
        out = []
        for s in range(len(self.subjects)):
            if self.img_val[s] is None:
                continue
            for chunk in torch.arange(len(self.x_val[s])).split(self.cfg.batch_size):
                if len(chunk) >= 2:
                    out.append((self.img_val[s][chunk], self.x_val[s][chunk], s))
        return out or None

    @staticmethod
    def batch_size_of(batch):
        return int(batch[0].shape[0])

    def loss(self, model, batch):
        images, x, s = batch
        return model(normalize_images(images), x, self.coords[s], self.roi_w[s], return_loss=True,
                     lambdas=(self.cfg.lambda_con, self.cfg.lambda_bfg, self.cfg.lambda_match))


def build_neurofusion(cfg: NeuroFusionConfig, backbone_factory=None) -> NeuroFusionNet:
    """Initial NeuroFusionNet, seeded with ``cfg.seed`` (identical for identical configs)."""
    engine.seed_everything(cfg.seed)
    backbone = backbone_factory() if backbone_factory is not None else load_backbone(cfg.backbone, cfg.weights,
                                                                                   cfg.seed)
    torch.manual_seed(cfg.seed + 1)
    return NeuroFusionNet(backbone, cfg.image_size, dim=cfg.dim, n_rois=len(cfg.rois), heads=cfg.heads,
                          mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout, kernel=cfg.kernel, stride=cfg.stride,
                          window=cfg.window, window_stride=cfg.window_stride, depth=cfg.depth,
                          fusion_depth=cfg.fusion_depth, tau=cfg.tau)


@torch.no_grad()
def image_features(model: NeuroFusionNet, images: torch.Tensor, batch_size: int, device) -> np.ndarray:
    """Frozen image-branch features (B, (N_r+2)*D) for uint8 images (B, 3, S, S)."""
    model.eval()
    out = [model.image.features(normalize_images(images[i:i + batch_size].to(device))).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column of two (n, V) arrays."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0)


def evaluate_heldout(model, subject: SubjectData, images_by_id, cfg: NeuroFusionConfig, device) -> dict:
    """Brain-activity prediction for a held-out subject: frozen image features -> ridge (alpha per voxel by
    5-fold CV on the subject's non-shared images) -> PCC per voxel on its shared images, mean per ROI.

    Returns
    -------
    dict
        ``mean_pcc``, ``median_pcc``, ``roi_pcc`` (ROI -> mean PCC), counts, ``voxel_pcc`` float (n_voxels,) and
        ``prediction`` float32 (n_test, n_voxels): the predicted responses to the shared images, in
        ``subject.val_ids`` order and network voxel order (measured: ``subject.x_val``).
    """
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    if len(subject.val_ids) < 2 or len(subject.train_ids) < 3:
        raise InputError(subject.label, "held-out subject needs >= 3 non-shared and >= 2 shared stimuli")
    tr_img = torch.stack([images_by_id[str(i)] for i in subject.train_ids])
    te_img = torch.stack([images_by_id[str(i)] for i in subject.val_ids])
    xtr, xte = image_features(model, tr_img, cfg.batch_size, device), image_features(model, te_img, cfg.batch_size,
                                                                                  device)
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd == 0] = 1
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr, yte = subject.x_train, subject.x_val
    ymu = ytr.mean(0)
    if len(ytr) < xtr.shape[1]:  # same ridge solution, solved in the (smaller) sample space
        ridge = KernelRidgeCV(alphas=np.asarray(cfg.ridge_alphas), kernel="linear", cv=min(5, len(ytr)), warn=False)
    else:
        ridge = RidgeCV(alphas=np.asarray(cfg.ridge_alphas), cv=min(5, len(ytr)), fit_intercept=False)
    ridge.fit(xtr.astype(np.float64), (ytr - ymu).astype(np.float64))
    pred = np.asarray(ridge.predict(xte.astype(np.float64))) + ymu
    r = pearson_columns(pred, yte)
    roi_pcc = {name: float(r[subject.roi_labels == k].mean()) for k, name in enumerate(cfg.rois, start=1)
               if (subject.roi_labels == k).any()}
    return {"subject": subject.label, "mean_pcc": float(r.mean()), "median_pcc": float(np.median(r)),
            "roi_pcc": roi_pcc, "n_train": len(ytr), "n_test": len(yte), "n_voxels": len(r), "voxel_pcc": r,
            "prediction": pred.astype(np.float32)}


#: per-voxel held-out scores and the held-out predictions of a NeuroFusionNet run folder
HELDOUT_VOXEL_PCC, HELDOUT_PREDICTIONS = "heldout_voxel_pcc.npz", "heldout_predictions.npz"


def shuffle_subject_pairs(subjects: list[SubjectData], seed: int) -> dict:
    """Shuffled-pairs control: each subject's fMRI rows permuted among its training images and, separately, among
    its validation images (:func:`brainalign.training.data.shuffle_pairs`, seeded per subject), in place.

    Returns
    -------
    dict ``"<label>/train"`` / ``"<label>/val"`` -> int ndarray, ``x_shuffled[i] = x[perm[i]]``
    """
    perms = {}
    for k, s in enumerate(subjects):
        s.x_train, perms[f"{s.label}/train"] = shuffle_pairs(s.x_train, seed + 17 + 2 * k)
        if len(s.x_val):
            s.x_val, perms[f"{s.label}/val"] = shuffle_pairs(s.x_val, seed + 18 + 2 * k)
    return perms


def train_neurofusion(stores: dict, image_set, out_dir, cfg: NeuroFusionConfig, heldout=None, resume: bool = False,
                      backbone_factory=None, on_epoch_end=None) -> dict:
    """Train one NeuroFusionNet on several subjects; evaluate on a held-out subject; export the backbone.

    Parameters
    ----------
    stores : dict label -> voxel store
        Training subjects.
    heldout : voxel store, optional
        Scored before and after training (ridge read-out, PCC per voxel / ROI) -> ``summary.json``
        (``heldout``, ``heldout_initial``), ``heldout_voxel_pcc.npz`` and ``heldout_predictions.npz`` (its shared
        images' ids, measured and predicted responses). Its subject must not be a training subject, and the
        stimuli it is scored on must not be in the training record (refused with InputError).

    Outputs in ``out_dir`` besides those: ``stimuli.parquet`` (training record: every training subject's train
    and validation images), ``metrics.csv``, ``training_curve.png``, ``backbone.pt`` (the one weights file: the
    full model state, read by ``load_model`` as the image backbone, prefix ``image.backbone.``),
    ``summary.json``; with ``cfg.control == "shuffled"`` also ``shuffled_pairs.npz`` (the permutations). While
    training, ``checkpoints/{last,best}.pt``, removed once the run has succeeded unless ``cfg.keep_checkpoints``.

    Returns
    -------
    dict  (``summary.json``)
    """
    out_dir = Path(out_dir)
    if not stores:
        raise InputError("stores", "no training subject stores given")
    held_label = str(heldout.attrs.get("subject", "heldout")) if heldout is not None else None
    if held_label is not None and held_label in stores:
        raise InputError(held_label, f"the held-out subject is also a training subject ({sorted(stores)})")
    dist, device = engine.setup_devices(cfg.device)
    subjects = [prepare_subject(s, cfg, label, image_set.ids, cfg.seed) for label, s in stores.items()]
    held = prepare_subject(heldout, cfg, held_label, image_set.ids, cfg.seed,
                           split="heldout") if heldout is not None else None
    initial = initial_weights_provenance(cfg.weights, cfg.backbone, backbone_factory)
    record = combine_records([training_record(s.train_ids, s.val_ids, s.label) for s in subjects]
                             + [initial["record"]])
    if held is not None:  # the held-out subject is scored on its shared images: none may have been trained on
        check_disjoint(held.val_ids, [(f"NeuroFusionNet trained on {', '.join(s.label for s in subjects)}", record)],
                       where=f"stimuli the held-out subject {held.label} is scored on")
    perms = shuffle_subject_pairs(subjects, cfg.seed) if cfg.control == "shuffled" else None
    all_ids = sorted({str(i) for s in subjects + ([held] if held else []) for i in
                      list(s.train_ids) + list(s.val_ids)})
    by_str = {str(i): i for i in image_set.ids}
    tensor = load_images(image_set, [by_str[i] for i in all_ids], cfg.image_size, "images")
    images_by_id = dict(zip(all_ids, tensor))

    model = build_neurofusion(cfg, backbone_factory)
    meta = {"init_sha": engine.state_fingerprint(model.state_dict()), "subjects": [s.label for s in subjects],
            "heldout": held.label if held else None}
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_training_record(out_dir / TRAINING_RECORD, record)
        if perms is not None:
            with atomic_output(out_dir / "shuffled_pairs.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **perms)
    before = None
    if held is not None and dist.is_main:  # the model still has its initial weights here
        before = evaluate_heldout(model.to(device), held, images_by_id, cfg, device)
    task = NeuroFusionTask(model, subjects, images_by_id, cfg)
    result = engine.fit_best(task, cfg, out_dir, method="neurofusion", resume=resume, on_epoch_end=on_epoch_end,
                             meta=meta, dist=dist, device=device)
    if not dist.is_main:
        return {}
    summary = {"method": "neurofusion", "control": cfg.control, "best_epoch": result.best_epoch,
               "best_value": result.best_value, "epochs_run": result.epochs_run, "resumed_from": result.resumed_from,
               **meta, "n_voxels": {s.label: int(len(s.order)) for s in subjects},
               "initial_weights": initial["origin"], "training_record": record_info(record),
               "config": config_to_dict(cfg)}
    if held is not None:
        after = evaluate_heldout(model, held, images_by_id, cfg, device)
        voxel_index = np.flatnonzero(held.voxel_mask)[held.order]
        with atomic_output(out_dir / HELDOUT_VOXEL_PCC) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, trained=after.pop("voxel_pcc"), initial=before.pop("voxel_pcc"), voxel_index=voxel_index)
        # what a stimulus bootstrap of the trained-vs-initial (or vs a control) difference needs
        with atomic_output(out_dir / HELDOUT_PREDICTIONS) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, stimulus=np.asarray([str(i) for i in held.val_ids]), measured=held.x_val,
                         trained=after.pop("prediction"), initial=before.pop("prediction"), voxel_index=voxel_index,
                         roi_labels=held.roi_labels, rois=np.asarray(list(cfg.rois)))
        summary["heldout"] = after
        summary["heldout_initial"] = before
        summary["heldout_files"] = {"voxel_pcc": HELDOUT_VOXEL_PCC, "predictions": HELDOUT_PREDICTIONS}
    provenance = {"method": "neurofusion", "control": cfg.control, "epoch": result.best_epoch,
                  "subjects": meta["subjects"], "initial_weights": initial["origin"],
                  "training_record": record_info(record), "config": config_to_dict(cfg)}
    # one weights file: the full model state, read by load_model as the image backbone
    export_backbone(out_dir / "backbone.pt", model.image.backbone, cfg.backbone, extra=provenance,
                    image_size=cfg.image_size, model=model,
                    model_info={"kind": "neurofusionnet", "config": config_to_dict(cfg)})
    with atomic_output(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
    if not cfg.keep_checkpoints:  # the run has succeeded: its resumable state is no longer needed
        engine.discard_checkpoints(out_dir)
    return summary
