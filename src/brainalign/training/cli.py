"""``brainalign train {realnet,neurofusion,initial-backbone} ...``: brain-aligned training (docs/training.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)


def _common(p):
    p.add_argument("--stimuli", required=True, help="image set spec: nsd:ROOT, bold5000:ROOT, things-eeg2:ROOT, folder:DIR")
    p.add_argument("--out", required=True, type=Path, help="output directory (one subdirectory per store if several)")
    p.add_argument("--config", default="tiny",
                   help="preset tiny|small|full (realnet also full-intent), or a YAML file of options (applied "
                        "over full)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt (exact resume)")
    p.add_argument("--keep-checkpoints", dest="keep_checkpoints", action="store_true", default=None,
                   help="keep OUT/checkpoints/ (optimizer and RNG state, for --resume) after the run succeeds; "
                        "by default it is removed once backbone.pt and summary.json are written")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--weights", help="initial backbone weights: imagenet | random | PATH")
    p.add_argument("--image-size", type=int)
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="disable bf16 autocast on CUDA")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    r = sub.add_parser("realnet", help="ReAlnet-fMRI: CORnet-S + multi-layer encoding head, one model per subject")
    r.add_argument("--store", required=True, action="append", type=Path,
                   help="subject voxel store (*.zarr); repeat for several subjects (OUT/<subject>/ each)")
    _common(r)
    r.add_argument("--beta", type=float, help="weight of the alignment loss (replaces the preset's beta_grid)")
    r.add_argument("--beta-grid", help="comma-separated candidate betas: one run each, the best validation "
                                       "alignment is kept (docs/training.md)")
    r.add_argument("--control", choices=["none", "beta0", "shuffled"], help="control model")
    r.add_argument("--loss", choices=["intent", "code"],
                   help="code: CE + beta*MSE, correlation detached (released code); intent: differentiable "
                        "Pearson term")
    r.add_argument("--roi", help="ROI(s) of the store, comma-separated union, or 'all'")
    r.add_argument("--n-components", type=int, help="PCA components of the ROI responses (0 = raw voxels)")
    r.add_argument("--val-fraction", type=float)
    r.add_argument("--max-train-images", type=int)

    n = sub.add_parser("neurofusion", help="NeuroFusionNet: multi-subject image-fMRI pre-training")
    n.add_argument("--store", required=True, action="append", type=Path, help="training subject store; repeat")
    n.add_argument("--heldout-store", type=Path,
                   help="held-out subject store for the brain-prediction evaluation (not a training subject)")
    _common(n)
    n.add_argument("--control", choices=["none", "shuffled"],
                   help="shuffled: image-fMRI pairs permuted within each training subject (control model)")
    n.add_argument("--max-train-images", type=int)

    b = sub.add_parser("initial-backbone",
                       help="export the untrained backbone every ReAlnet-fMRI run of a preset starts from")
    b.add_argument("--config", default="tiny", help="preset tiny|small|full, or a YAML file of options")
    b.add_argument("--out", required=True, type=Path, help="model checkpoint to write (*.pt)")


def _overrides(args, keys):
    return {k: getattr(args, k, None) for k in keys}


def run(args) -> int:
    if args.method == "initial-backbone":
        from .backbones import export_initial_backbone

        log.info("wrote %s", export_initial_backbone(args.out, args.config))
        return 0
    from ..stimuli import parse_stimulus_spec
    from ..store import open_voxel_store
    from .config import make_config

    common = ["epochs", "batch_size", "lr", "seed", "device", "weights", "image_size", "amp", "max_train_images",
              "keep_checkpoints"]
    if args.method == "realnet":
        overrides = _overrides(args, common + ["beta", "control", "loss", "roi", "n_components", "val_fraction"])
        if args.beta_grid is not None:
            overrides["beta_grid"] = [b for b in args.beta_grid.split(",") if b.strip()]
        elif args.beta is not None:
            overrides["beta_grid"] = []  # an explicit beta is used as given
        cfg = make_config("realnet", args.config, overrides)
    else:
        cfg = make_config("neurofusion", args.config, _overrides(args, common + ["control"]))
    for s in args.store + ([args.heldout_store] if getattr(args, "heldout_store", None) else []):
        if not Path(s).exists():
            raise InputError(s, "voxel store not found")
    stores = [open_voxel_store(s) for s in args.store]
    heldout = None
    if args.method == "neurofusion" and args.heldout_store:
        heldout = open_voxel_store(args.heldout_store)
        _refuse_trained_heldout(args.heldout_store, heldout, args.store, stores)
    image_set = parse_stimulus_spec(args.stimuli)
    if args.method == "realnet":
        from .realnet_train import train_realnet, train_realnet_subjects

        if len(stores) == 1:
            _report(train_realnet(stores[0], image_set, args.out, cfg, resume=args.resume))
        else:
            by_subject = dict(zip(_labels(args.store, stores), stores))
            for summary in train_realnet_subjects(by_subject, image_set, args.out, cfg, resume=args.resume).values():
                _report(summary)
        return 0
    from .neurofusion_train import train_neurofusion

    summary = train_neurofusion(dict(zip(_labels(args.store, stores), stores)), image_set, args.out, cfg,
                                heldout=heldout, resume=args.resume)
    if summary:
        log.info("NeuroFusionNet: best epoch %s, held-out PCC %s", summary.get("best_epoch"),
                 (summary.get("heldout") or {}).get("mean_pcc"))
    return 0


def _refuse_trained_heldout(heldout_path, heldout, paths, stores) -> None:
    """InputError when the held-out store is one of the training stores or has a training store's subject."""
    held_subject = str(heldout.attrs.get("subject") or "")
    for path, store in zip(paths, stores):
        same_file = Path(path).resolve() == Path(heldout_path).resolve()
        if same_file or (held_subject and str(store.attrs.get("subject") or "") == held_subject):
            raise InputError(heldout_path, f"the held-out subject {held_subject or '?'} is also a training subject "
                                           f"(--store {path}); a held-out subject must not be trained on")


def _labels(paths, stores):
    """Output subfolder per store: its ``subject`` attr (else the file stem), made unique."""
    labels = []
    for path, store in zip(paths, stores):
        label = str(store.attrs.get("subject") or Path(path).stem)
        label = label if label not in labels else f"{label}-{len(labels)}"
        labels.append(label)
    return labels


def _report(summary):
    if summary:
        log.info("subject %s (%s): best epoch %d, val pattern r %.3f, test pattern r %.3f", summary.get("subject"),
                 summary.get("control"), summary.get("best_epoch", 0), summary["val"].get("pattern_r", float("nan")),
                 summary["test"].get("pattern_r", float("nan")))
