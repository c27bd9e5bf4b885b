"""Vision models with named layers: AlexNet, CORnet-S, any torchvision model, pipeline checkpoints.

``load_model(name, weights)`` returns a ``torch.nn.Module`` in eval mode with an attribute
``model.brainalign`` (:class:`ModelInfo`): architecture, weights description and hashes, the
friendly layer map and the expected preprocessing. Weights are never downloaded: ImageNet weights
are read from ``torch.hub.get_dir()/checkpoints/<file>`` (or a path given by the user).

Checkpoint format written by ``brainalign train`` (documented in docs/features.md)::

    torch.save({"arch": "cornet_s",                 # a name load_model understands
                "state_dict": model.state_dict(),   # keys of load_model(arch) (a "module." prefix is ok)
                "layers": {"V1": "V1", ...},       # optional friendly name -> module path
                "state_dict_prefix": "backbone.",  # optional: keep only keys under this prefix, strip it
                "preprocessing": {"size": [224, 224], "mean": [...], "std": [...]},  # optional
                "meta": {...}}, path)               # optional free-form provenance
"""

from .cornet_s import CORnetS
from .loading import (DEFAULT_LAYERS, LAYERS, ModelInfo, imagenet_weights_file, load_model, resolve_layers,
                      state_dict_sha256)

__all__ = ["LAYERS", "DEFAULT_LAYERS", "ModelInfo", "CORnetS", "load_model", "resolve_layers",
           "imagenet_weights_file", "state_dict_sha256"]
