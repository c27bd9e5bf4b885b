"""Backbone loading and export in the model-checkpoint format read by ``brainalign.models.load_model``."""

from __future__ import annotations

from pathlib import Path

import torch

from .._io import atomic_output

#: friendly layer name -> module path the feature cache / RSA read from an exported CORnet-S backbone
CORNET_LAYERS = {"V1": "V1", "V2": "V2", "V4": "V4", "IT": "IT", "avgpool": "decoder.avgpool"}


def load_backbone(name: str, weights: str, seed: int = 0):
    """``brainalign.models.load_model(name, weights, seed=seed)`` (``seed`` sets a ``random`` initialisation)."""
    from ..models import load_model

    return load_model(name, weights, seed=seed)


def export_backbone(path, backbone: torch.nn.Module, arch: str, layers=None, extra: dict | None = None,
                    image_size: int | None = None, head: torch.nn.Module | None = None,
                    head_info: dict | None = None) -> Path:
    """Write a checkpoint ``brainalign.models.load_model(path)`` reads (docs/features.md format), atomically.

    ``{"arch", "state_dict", "layers", "preprocessing", "meta"}``; with ``head`` the state dict is the whole
    ReAlnet model (``backbone.*`` and ``head.*`` keys) and ``state_dict_prefix="backbone."`` tells
    ``load_model`` to keep only the backbone.

    Parameters
    ----------
    path : path-like ``*.pt``
    backbone : nn.Module
        The trained backbone (not a DDP wrapper); saved as CPU tensors.
    arch : str
        Architecture name understood by ``brainalign.models.load_model`` (e.g. ``cornet_s``).
    layers : dict, optional
        Friendly layer name -> module path (default :data:`CORNET_LAYERS` for CORnet-S).
    extra : dict, optional
        Provenance (method, subject, epoch, config; plain data only), stored under ``"meta"``.
    image_size : int, optional
        Training input size, recorded as ``preprocessing.size`` so features use the same size.
    head, head_info : optional
        Also store the encoding head (``model.pt``).
    """
    path = Path(path)
    if layers is None and arch == "cornet_s":
        layers = dict(CORNET_LAYERS)
    if head is None:
        state = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()}
    else:
        state = {f"backbone.{k}": v.detach().cpu().clone() for k, v in backbone.state_dict().items()}
        state.update({f"head.{k}": v.detach().cpu().clone() for k, v in head.state_dict().items()})
    obj = {"arch": arch, "state_dict": state}
    if head is not None:
        obj["state_dict_prefix"] = "backbone."
        obj["head"] = dict(head_info or {})
    if layers:
        obj["layers"] = dict(layers)
    if image_size:
        from ..stimuli import IMAGENET_MEAN, IMAGENET_STD

        obj["preprocessing"] = {"size": [int(image_size), int(image_size)], "mean": list(IMAGENET_MEAN),
                                "std": list(IMAGENET_STD)}
    if extra:
        obj["meta"] = extra
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return path


def export_initial_backbone(path, preset: str = "tiny", overrides: dict | None = None) -> Path:
    """Export the backbone every ReAlnet-fMRI run of ``preset`` starts from (the untrained baseline).

    Same construction as :func:`brainalign.training.realnet_train.build_realnet` (``load_backbone`` of the
    configured backbone, weights and seed) and the same recorded image size, so the baseline's features are
    comparable with the trained models'.
    """
    from .config import make_config

    cfg = make_config("realnet", preset, overrides or {})
    backbone = load_backbone(cfg.backbone, cfg.weights, cfg.seed)
    return export_backbone(path, backbone, cfg.backbone, image_size=cfg.image_size,
                           extra={"method": "initial", "preset": preset, "seed": cfg.seed, "weights": cfg.weights})
