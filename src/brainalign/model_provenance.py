"""What a model's weights are: random, ImageNet (from which file), or a ``brainalign train`` checkpoint, where its
weights ultimately came from, and which stimuli it was trained on (its training record, :mod:`brainalign.heldout`).

Feature caches record this in their attrs (``weights``, ``weights_origin``, ``training``) and copy the training
record, so that the report can name every baseline's weights and every evaluation can refuse stimuli a model saw
(docs/features.md, docs/training.md).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import InputError
from .heldout import TRAINING_RECORD, read_training_record

#: ``meta["method"]`` of checkpoints written by a training run (they must name their training record)
TRAINED_METHODS = ("realnet", "neurofusion")


def checkpoint_meta(path) -> dict | None:
    """``meta`` of a ``brainalign train`` checkpoint (a dict with ``arch`` and ``state_dict``; ``{}`` when it has
    no meta), or None when ``path`` is not such a checkpoint (a plain state dict, or not loadable)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # mmap needs the zip format: read it plainly
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None
    if isinstance(obj, dict) and "arch" in obj and "state_dict" in obj:
        return dict(obj.get("meta") or {})
    return None


def describe_weights(weights: str, arch: str | None = None, weights_file: str | None = None) -> str:
    """Name the weights a model was loaded with.

    Parameters
    ----------
    weights : str
        ``random``, ``imagenet``, or a path (a ``brainalign train`` checkpoint or a plain state-dict file).
    arch : str, optional
        Architecture, to name the ImageNet file (``cornet_s`` -> ``cornet_s-1d3f7974.pth``).
    weights_file : str, optional
        The file the ImageNet weights were read from (``ModelInfo.weights_file``), if known.

    Returns
    -------
    str
        ``random`` | ``imagenet:<file name>`` | ``checkpoint:<path>`` (written by ``brainalign train``) |
        ``file:<path>`` (any other weights file).
    """
    weights = str(weights)
    if weights == "random":
        return "random"
    if weights == "imagenet":
        if weights_file:
            return f"imagenet:{Path(weights_file).name}"
        if arch is None:
            return "imagenet"
        from .models.loading import imagenet_weights_file

        try:
            return f"imagenet:{imagenet_weights_file(arch)[0].name}"
        except InputError:
            return "imagenet"
    return f"checkpoint:{weights}" if checkpoint_meta(weights) is not None else f"file:{weights}"


def weights_origin(weights: str, arch: str | None = None, weights_file: str | None = None) -> str:
    """Where a model's weights come from before any brain-aligned training.

    :func:`describe_weights` for random and ImageNet weights and plain files; for a ``brainalign train``
    checkpoint the origin it recorded (``meta["initial_weights"]``), so the untrained CORnet-S every ReAlnet run
    starts from, and every model trained from it, name ``random`` or ``imagenet:cornet_s-1d3f7974.pth``. A
    checkpoint that recorded none is its own origin.
    """
    described = describe_weights(weights, arch, weights_file)
    if described.startswith("checkpoint:"):
        meta = checkpoint_meta(weights) or {}
        return str(meta.get("initial_weights") or described)
    return described


def checkpoint_training_record(path) -> tuple[pd.DataFrame | None, dict]:
    """The training record of a checkpoint (read from next to it and verified against the hash it recorded), and
    the checkpoint's meta.

    Returns
    -------
    (DataFrame or None, dict)
        ``None`` for an untrained checkpoint or a plain weights file (no ``training_record`` in its meta).

    Raises
    ------
    InputError
        The record the checkpoint names is missing or is not the one it was trained with; or the checkpoint comes
        from a training run but names no record (what it was trained on is unknown).
    """
    meta = checkpoint_meta(path)
    if meta is None:
        return None, {}
    info = meta.get("training_record")
    if not info:
        if meta.get("method") in TRAINED_METHODS:
            raise InputError(path, "a trained checkpoint without a training record: the stimuli it was trained and "
                                   "selected on are unknown, so no evaluation could be shown to be held out; retrain "
                                   "it with this version of brainalign")
        return None, meta
    record = read_training_record(Path(path).parent / info.get("file", TRAINING_RECORD), info.get("sha256"))
    return record, meta


def model_provenance(model) -> tuple[dict, pd.DataFrame | None]:
    """Weights provenance of a model from :func:`brainalign.models.load_model` (``model.brainalign``).

    Returns
    -------
    attrs : dict
        ``weights`` (:func:`describe_weights`), ``weights_origin`` (:func:`weights_origin`), ``training``
        (for a trained checkpoint: method, control, subject(s), selected epoch, record summary; else None).
    record : DataFrame or None
        The training record of a trained checkpoint.
    """
    info = getattr(model, "brainalign", None)
    if info is None:
        return {"weights": "unknown", "weights_origin": "unknown", "training": None}, None
    weights, arch, weights_file = str(info.weights), info.arch, info.weights_file
    described = describe_weights(weights, arch, weights_file)
    record, meta, training = None, {}, None
    if described.startswith("checkpoint:"):
        record, meta = checkpoint_training_record(weights)
        if record is not None:
            training = {k: meta.get(k) for k in ("method", "control", "subject", "subjects", "epoch", "beta")
                        if meta.get(k) is not None}
            training["record"] = dict(meta["training_record"])
    origin = str(meta.get("initial_weights") or described) if described.startswith("checkpoint:") else described
    return {"weights": described, "weights_origin": origin, "training": training}, record
