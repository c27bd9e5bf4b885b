"""Training configurations: the published-recipe ``full`` presets, CPU-sized ``tiny`` presets (the code runs)
and ``small`` presets (the smallest runs that show each method's effect on the demo simulator).

Every field is an option (CLI flag or YAML key) and is documented in ``docs/training.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from ..errors import InputError


@dataclass
class TrainConfig:
    """Options shared by every trainer (loop, checkpointing, devices)."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.0
    optimizer: str = "adam"          # adam | adamw
    scheduler: str = "none"          # none | cosine (warm-up epochs: warmup_epochs)
    warmup_epochs: int = 0
    seed: int = 2024
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    amp: bool = True                 # bf16 autocast on CUDA (ignored on CPU)
    num_workers: int = 0
    select_metric: str = "val_loss"  # lower is better
    grad_clip: float = 0.0           # 0 = off
    keep_checkpoints: bool = False   # keep checkpoints/ (resumable state) after a successful run; False removes it


@dataclass
class RealnetConfig(TrainConfig):
    """ReAlnet-fMRI (methods.md §1). Defaults = ``full`` preset (§1.5)."""

    backbone: str = "cornet_s"
    weights: str = "imagenet"         # imagenet | random | path to a checkpoint
    image_size: int = 224
    hidden: int = 128                 # per-layer encoder width
    layers: tuple = ("V1", "V2", "V4", "IT")
    beta: float = 100.0
    loss: str = "code"                # code (released code: CE + beta*MSE, correlation detached) | intent
                                      # (differentiable batch-Pearson term)
    beta_grid: tuple = ()             # non-empty: train once per beta, keep the one with the best validation
                                      # alignment (mean val pattern r; docs/training.md); beta is then ignored
    control: str = "none"             # none | beta0 | shuffled
    roi: str = "nsdgeneral"           # ROI name(s) for the store's roi_mask, comma-separated = union; "all" = every voxel
    n_components: int = 1024          # PCA components of the ROI responses (0 = raw voxels)
    zscore_voxels: bool = True        # z-score voxels with training-image statistics before PCA
    val_fraction: float = 0.1
    max_train_images: int = 0         # 0 = all non-shared images
    max_test_images: int = 0          # 0 = all shared images
    teacher_eval: bool = True         # teacher BN in eval mode (fMRI notebook); False = train mode (EEG notebook)
    freeze_bn_stats: bool = False     # student BN layers use and keep their running statistics (eval mode)
    head_pool: int = 0                # head reads each layer flattened (0, ReAlnet) or average-pooled to k x k


@dataclass
class NeuroFusionConfig(TrainConfig):
    """NeuroFusionNet (methods.md §3). Defaults = ``full`` preset (§3.4)."""

    backbone: str = "cornet_s"
    weights: str = "imagenet"
    image_size: int = 224
    dim: int = 512
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    kernel: int = 32
    stride: int = 16
    window: int = 64
    window_stride: int = 32
    depth: int = 2                    # transformer layers per scale
    fusion_depth: int = 2
    tau: float = 0.07
    lambda_con: float = 1.0
    lambda_bfg: float = 1.0
    lambda_match: float = 1.0         # L_task: image-fMRI matching through the fusion block
    rois: tuple = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
    voxel_roi: str = "nsdgeneral"     # voxels fed to the fMRI branch ("all" = every voxel)
    max_train_images: int = 0
    ridge_alphas: tuple = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6)
    val_fraction: float = 0.1
    control: str = "none"             # none | shuffled (image-fMRI pairs permuted within each training subject)


PRESETS = {
    "realnet": {
        # the released code's recipe (the default): CE + beta*MSE with the correlation terms detached, beta = 100
        # as tuned for it (docs/training.md, "The full presets")
        "full": {},
        # the paper's differentiable loss, with beta chosen on the validation split among these candidates
        "full-intent": dict(loss="intent", beta_grid=(1.0, 10.0, 100.0)),
        "tiny": dict(epochs=3, batch_size=8, lr=1e-4, weights="random", image_size=64, hidden=32, beta=1.0,
                     loss="intent", n_components=16, roi="all", max_train_images=48, max_test_images=16,
                     val_fraction=0.25, seed=0),
        # every training image, 4 epochs, BN statistics frozen: aligned > beta0, shuffled and the initial
        # CORnet-S in held-out encoding and RSA on the demo simulator (docs/training.md), minutes on 2 CPU cores
        "small": dict(epochs=4, batch_size=16, lr=1e-4, weights="random", image_size=64, hidden=32, beta=1.0,
                      loss="intent", n_components=16, roi="all", max_train_images=0, max_test_images=0,
                      val_fraction=0.2, seed=0, freeze_bn_stats=True),
    },
    "neurofusion": {
        "full": dict(epochs=100, batch_size=64, lr=1e-4, optimizer="adamw", weight_decay=0.05,
                     scheduler="cosine", warmup_epochs=5),
        "tiny": dict(epochs=2, batch_size=8, lr=1e-4, optimizer="adamw", weight_decay=0.05, weights="random",
                     image_size=64, dim=32, heads=2, voxel_roi="all", max_train_images=32, val_fraction=0.25,
                     seed=0),
        # every training image, 6 epochs: the held-out subject's prediction improves over the initial weights
        # on the demo simulator (docs/training.md), a few minutes on 2 CPU cores
        "small": dict(epochs=6, batch_size=16, lr=1e-4, optimizer="adamw", weight_decay=0.05, weights="random",
                      image_size=64, dim=32, heads=2, voxel_roi="all", max_train_images=0, val_fraction=0.2,
                      seed=0),
    },
}

_CLASSES = {"realnet": RealnetConfig, "neurofusion": NeuroFusionConfig}


def make_config(method: str, preset: str = "tiny", overrides: dict | None = None):
    """Build a config from a preset name (see :data:`PRESETS`) or a YAML file, then apply overrides.

    Parameters
    ----------
    method : {"realnet", "neurofusion"}
    preset : str
        ``tiny``, ``small``, ``full`` or a path to a YAML mapping of field -> value (applied over ``full``).
    overrides : dict, optional
        Field -> value; ``None`` values are ignored (unset CLI flags).

    Raises
    ------
    InputError
        Unknown preset, unreadable YAML, or an unknown / ill-typed key.
    """
    cls = _CLASSES[method]
    values = {}
    if preset in PRESETS[method]:
        values.update(PRESETS[method][preset])
    else:
        path = Path(preset)
        if not path.is_file():
            raise InputError(preset, f"not a preset ({', '.join(PRESETS[method])}) nor a YAML file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise InputError(preset, "a training config file must be a mapping of option -> value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(cls, values, preset)


def _build(cls, values, source):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{source}: {unknown[0]}", f"unknown training option; allowed: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default
        if name == "beta_grid":
            try:
                value = tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
            except (TypeError, ValueError):
                raise InputError(f"{source}: {name}", f"expected a list of numbers, got {value!r}") from None
        elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"{source}: {name}", f"expected true/false, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            try:
                value = type(default)(value)
            except (TypeError, ValueError):
                raise InputError(f"{source}: {name}", f"expected a number, got {value!r}") from None
        kwargs[name] = value
    cfg = cls(**kwargs)
    _check(cfg, source)
    return cfg


def _check(cfg, source):
    def bad(key, msg):
        raise InputError(f"{source}: {key}", msg)

    if cfg.epochs < 0:
        bad("epochs", "must be >= 0")
    if cfg.batch_size < 1:
        bad("batch_size", "must be >= 1")
    if cfg.optimizer not in ("adam", "adamw"):
        bad("optimizer", "must be adam or adamw")
    if cfg.scheduler not in ("none", "cosine"):
        bad("scheduler", "must be none or cosine")
    if not 0.0 <= getattr(cfg, "val_fraction", 0.1) < 1.0:
        bad("val_fraction", "must be in [0, 1)")
    if isinstance(cfg, NeuroFusionConfig) and cfg.control not in ("none", "shuffled"):
        bad("control", "must be none or shuffled")
    if isinstance(cfg, RealnetConfig):
        if cfg.loss not in ("intent", "code"):
            bad("loss", "must be 'intent' (differentiable batch Pearson) or 'code' (CE + beta*MSE)")
        if cfg.control not in ("none", "beta0", "shuffled"):
            bad("control", "must be none, beta0 or shuffled")
        if cfg.beta < 0:
            bad("beta", "must be >= 0")
        if any(b <= 0 for b in cfg.beta_grid) or len(set(cfg.beta_grid)) != len(cfg.beta_grid):
            bad("beta_grid", "candidates must be distinct and > 0 (beta = 0 is the beta0 control)")
        if cfg.beta_grid and cfg.val_fraction == 0:
            bad("beta_grid", "choosing beta needs a validation split (val_fraction > 0)")
        if cfg.head_pool < 0:
            bad("head_pool", "must be >= 0 (0 = flattened layers, k = average-pooled to k x k)")


def config_to_dict(cfg) -> dict:
    """Plain-data view of a config (tuples as lists), for checkpoints and JSON."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(method: str, values: dict):
    """Inverse of :func:`config_to_dict`."""
    return _build(_CLASSES[method], dict(values), "checkpoint config")
