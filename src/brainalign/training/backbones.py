"""Backbone loading and export in the model-checkpoint format read by ``brainalign.models.load_model``."""

from __future__ import annotations

from pathlib import Path

import torch

from .._io import atomic_output

#: friendly layer name -> module path the feature cache / RSA read from an exported CORnet-S backbone
CORNET_LAYERS = {"V1": "V1", "V2": "V2", "V4": "V4", "IT": "IT", "avgpool": "decoder.avgpool"}


def initial_weights_provenance(weights: str, arch: str, backbone_factory=None) -> dict:
    """What a training run starts from: ``{"spec", "origin", "record"}``.

    ``spec`` is the configured ``weights`` (``imagenet`` | ``random`` | path), ``origin`` where those weights come
    from before any brain-aligned training (:func:`brainalign.model_provenance.weights_origin`: ``random``,
    ``imagenet:<file name>``, ...; ``backbone_factory`` when a factory replaces the configured backbone), and
    ``record`` the training record of a trained checkpoint used as initial weights (what the new model has
    then seen too), else None.
    """
    from ..model_provenance import checkpoint_training_record, weights_origin

    if backbone_factory is not None:
        return {"spec": "backbone_factory", "origin": "backbone_factory", "record": None}
    record = None
    if weights not in ("imagenet", "random"):
        record, _ = checkpoint_training_record(weights)
    return {"spec": str(weights), "origin": weights_origin(weights, arch), "record": record}


def load_backbone(name: str, weights: str, seed: int = 0):
    """``brainalign.models.load_model(name, weights, seed=seed)`` (``seed`` sets a ``random`` initialisation)."""
    from ..models import load_model

    return load_model(name, weights, seed=seed)


def backbone_prefix(model: torch.nn.Module, backbone: torch.nn.Module) -> str:
    """Key prefix of ``backbone``'s entries in ``model.state_dict()`` (``"backbone."`` for ReAlnet-fMRI,
    ``"image.backbone."`` for NeuroFusionNet), found by identity among ``model``'s submodules.

    Raises
    ------
    ValueError
        ``backbone`` is not a proper submodule of ``model``.
    """
    for name, module in model.named_modules():
        if module is backbone and name:
            return f"{name}."
    raise ValueError(f"{type(backbone).__name__} is not a submodule of {type(model).__name__}")


def export_backbone(path, backbone: torch.nn.Module, arch: str, layers=None, extra: dict | None = None,
                    image_size: int | None = None, model: torch.nn.Module | None = None,
                    model_info: dict | None = None) -> Path:
    """Write a checkpoint ``brainalign.models.load_model(path)`` reads (docs/features.md format), atomically.

    ``{"arch", "state_dict", "layers", "preprocessing", "meta"}``. With ``model`` (the trained model that contains
    ``backbone``) the state dict is the full model's and ``state_dict_prefix`` the backbone's key prefix
    (:func:`backbone_prefix`), so ``load_model`` keeps only the backbone while the one file also keeps the rest of
    the model (ReAlnet-fMRI's encoding head, NeuroFusionNet's fMRI branch and fusion block), described by
    ``model_info`` under ``"full_model"``.

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
    model : nn.Module, optional
        The full trained model (unwrapped) of which ``backbone`` is a submodule: store its whole state.
    model_info : dict, optional
        What the full state is (plain data: ``kind`` and the options that rebuild the model); with ``model``.
    """
    path = Path(path)
    if layers is None and arch == "cornet_s":
        layers = dict(CORNET_LAYERS)
    source = backbone if model is None else model
    obj = {"arch": arch, "state_dict": {k: v.detach().cpu().clone() for k, v in source.state_dict().items()}}
    if model is not None:
        obj["state_dict_prefix"] = backbone_prefix(model, backbone)
        obj["full_model"] = dict(model_info or {})
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
    origin = initial_weights_provenance(cfg.weights, cfg.backbone)["origin"]
    backbone = load_backbone(cfg.backbone, cfg.weights, cfg.seed)
    return export_backbone(path, backbone, cfg.backbone, image_size=cfg.image_size,
                           extra={"method": "initial", "preset": preset, "seed": cfg.seed, "weights": cfg.weights,
                                  "initial_weights": origin})
