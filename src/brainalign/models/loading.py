"""Building a model by name and loading its weights, and the friendly layer names of each architecture.

See :mod:`brainalign.models` for what :func:`load_model` returns and the checkpoint format it reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..stimuli import IMAGENET_MEAN, IMAGENET_STD
from .cornet_s import CORNET_S_CHECKPOINT, CORNET_S_URL, CORnetS

#: friendly layer name -> module path, per architecture. AlexNet layers are post-ReLU.
LAYERS = {
    "alexnet": {
        "conv1": "features.1", "conv2": "features.4", "conv3": "features.7", "conv4": "features.9",
        "conv5": "features.11", "fc6": "classifier.2", "fc7": "classifier.5",
    },
    "cornet_s": {"V1": "V1", "V2": "V2", "V4": "V4", "IT": "IT", "avgpool": "decoder.avgpool"},
}

#: default layers extracted when none are requested
DEFAULT_LAYERS = {
    "alexnet": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"],
    "cornet_s": ["V1", "V2", "V4", "IT"],
}

_ALIASES = {"cornet-s": "cornet_s", "cornets": "cornet_s", "CORnet-S": "cornet_s", "CORnet_S": "cornet_s"}


@dataclasses.dataclass
class ModelInfo:
    """What :func:`load_model` loaded (stored in feature-cache attributes).

    ``weights_file_sha256`` and ``state_dict_sha256`` are computed on first access (hashing a
    200 MB state dict takes a noticeable fraction of a second) and then cached.
    """

    arch: str
    weights: str                      # "imagenet", "random", or a path
    weights_file: str | None          # file the weights came from
    seed: int | None
    layers: dict                      # friendly name -> module path
    default_layers: list
    preprocessing: dict               # size, mean, std
    _model: object = dataclasses.field(default=None, repr=False, compare=False)
    _hashes: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def weights_file_sha256(self) -> str | None:
        if self.weights_file is None:
            return None
        if "file" not in self._hashes:
            self._hashes["file"] = _file_sha256(self.weights_file)
        return self._hashes["file"]

    @property
    def state_dict_sha256(self) -> str:
        """Hash of the state dict, taken at first access (so before any fine-tuning) and cached."""
        if "state" not in self._hashes:
            self._hashes["state"] = state_dict_sha256(self._model)
        return self._hashes["state"]

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        out.update(weights_file_sha256=self.weights_file_sha256, state_dict_sha256=self.state_dict_sha256)
        return out


def state_dict_sha256(model: nn.Module) -> str:
    """SHA-256 over the state dict (keys in order, dtype, shape and raw bytes of every tensor)."""
    h = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _file_sha256(path) -> str:
    from .._io import sha256sum

    return sha256sum(path)


def _canonical_arch(name: str) -> str:
    return _ALIASES.get(name, _ALIASES.get(name.lower(), name.lower() if name.lower() in LAYERS else name))


def _build(arch: str) -> nn.Module:
    if arch == "cornet_s":
        return CORnetS()
    import torchvision

    try:
        return torchvision.models.get_model(arch, weights=None)
    except (ValueError, KeyError) as exc:
        raise InputError(arch, "unknown model: not alexnet, cornet_s, a torchvision model name, or a checkpoint file") from exc


def imagenet_weights_file(arch: str) -> tuple[Path, str]:
    """Where ImageNet weights for ``arch`` must be (hub checkpoint dir) and the URL they come from."""
    if arch == "cornet_s":
        file_name, url = CORNET_S_CHECKPOINT, CORNET_S_URL
    else:
        import torchvision

        try:
            url = torchvision.models.get_model_weights(arch).DEFAULT.url
        except (ValueError, KeyError, AttributeError) as exc:
            raise InputError(arch, "no torchvision ImageNet weights are defined for this model") from exc
        file_name = url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name, url


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or pickled non-tensor objects
        raise InputError(path, f"cannot read weights with torch.load(weights_only=True): {exc}") from exc


def _extract_state_dict(obj, path, prefix: str | None = None) -> dict:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        prefix = prefix if prefix is not None else obj.get("state_dict_prefix")
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state dict (expected a dict of tensors, or a dict with key 'state_dict')")
    if prefix:
        obj = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
    if obj and all(k.startswith("module.") for k in obj):  # DataParallel checkpoints
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _load_state_dict(model: nn.Module, state_dict: dict, path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or wrong:
        raise InputError(path, f"weights do not fit {type(model).__name__}: {len(missing)} missing keys "
                               f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
                               f"{len(wrong)} with wrong shape {wrong[:3]}")
    model.load_state_dict(state_dict, strict=True)


def load_model(name: str, weights: str = "imagenet", *, seed: int = 0, device="cpu") -> nn.Module:
    """Build a model and load its weights; returned in eval mode with ``model.brainalign`` set.

    Parameters
    ----------
    name : str
        ``alexnet``, ``cornet_s``, any ``torchvision.models`` name (layers = module names), or a
        checkpoint path written by ``brainalign train`` (``.pt`` dict with ``arch`` and ``state_dict``).
    weights : str
        ``imagenet`` (from ``torch.hub.get_dir()/checkpoints/<file>``; never downloaded),
        ``random`` (initialised with ``seed``), or a path to a state dict / checkpoint file.
        Ignored (must be ``imagenet`` or the same path) when ``name`` is a checkpoint.
    seed : int
        Seed for random initialisation.
    device : str or torch.device

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    InputError
        Unknown model, missing weights file (the message names the file and where to put it),
        or weights that do not fit the architecture.
    """
    layers_override, preprocessing_override = None, None
    checkpoint = None
    if Path(str(name)).suffix in (".pt", ".pth", ".ckpt") or Path(str(name)).is_file():
        path = Path(name)
        if not path.is_file():
            raise InputError(path, "model checkpoint not found")
        checkpoint = _torch_load(path)
        if not isinstance(checkpoint, dict) or "arch" not in checkpoint or "state_dict" not in checkpoint:
            raise InputError(path, "a model checkpoint must be a dict with keys 'arch' and 'state_dict'")
        arch = _canonical_arch(str(checkpoint["arch"]))
        layers_override = checkpoint.get("layers")
        preprocessing_override = checkpoint.get("preprocessing")
        weights, weights_path = str(path), path
    else:
        arch = _canonical_arch(str(name))
        weights_path = None

    # find the weights before building anything, so a missing file fails fast
    weights_file = None
    if checkpoint is not None:
        weights_file = weights_path
    elif weights == "imagenet":
        weights_file, url = imagenet_weights_file(arch)
        if not weights_file.is_file():
            raise InputError(weights_file, f"ImageNet weights for {arch} not found. Put {weights_file.name} "
                                           f"(from {url}) at {weights_file}, or pass --weights PATH; "
                                           "nothing is downloaded at run time")
    elif weights != "random":
        weights_file = Path(weights)
        if not weights_file.is_file():
            raise InputError(weights_file, "weights file not found (weights must be imagenet, random or a path)")

    torch.manual_seed(seed)
    model = _build(arch)
    if checkpoint is not None:
        _load_state_dict(model, _extract_state_dict(checkpoint, weights_path), weights_path)
    elif weights_file is not None:
        _load_state_dict(model, _extract_state_dict(_torch_load(weights_file), weights_file), weights_file)

    layers = dict(LAYERS.get(arch, {}))
    if layers_override:
        layers.update({str(k): str(v) for k, v in dict(layers_override).items()})
    preprocessing = {"size": [224, 224], "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    if preprocessing_override:
        preprocessing.update(dict(preprocessing_override))
    model.eval().to(device)
    model.brainalign = ModelInfo(
        arch=arch,
        weights=str(weights),
        weights_file=None if weights_file is None else str(weights_file),
        seed=seed if weights == "random" else None,
        layers=layers,
        default_layers=list(DEFAULT_LAYERS.get(arch, layers.keys())),
        preprocessing=preprocessing,
    )
    # plain attribute, not a registered submodule: keep the back-reference out of nn.Module bookkeeping
    object.__setattr__(model.brainalign, "_model", model)
    return model


def resolve_layers(model: nn.Module, layers=None) -> dict:
    """Friendly layer names -> submodules.

    Parameters
    ----------
    layers : list of str, optional
        Friendly names from the model's layer map, or module paths (``features.7``, ``decoder.avgpool``).
        Default: the architecture's default layers.

    Returns
    -------
    dict
        ``{name: nn.Module}`` in the order requested.
    """
    info = getattr(model, "brainalign", None)
    layer_map = info.layers if info else {}
    if not layers:
        layers = info.default_layers if info else []
        if not layers:
            raise InputError("--layers", "no default layers for this model; name module paths explicitly")
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        path = layer_map.get(name, name)
        if path not in modules:
            known = ", ".join(list(layer_map)[:10]) or "module paths such as " + ", ".join(list(modules)[1:6])
            raise InputError(name, f"not a layer of {info.arch if info else type(model).__name__} (known: {known})")
        out[name] = modules[path]
    return out
