"""Multi-layer voxelwise encoders: fit one ridge per layer, pick a layer per voxel (or ROI) by CV,
save/load the result so ``brainalign synthesize`` can apply it.

On-disk layout of an encoder directory (``DIR/encoder/`` of ``brainalign encode``)::

    encoder.json          layers, selection mode, split, provenance, chosen layer per ROI
    geometry.npz          voxel_ijk, grid_shape, affine, store_voxel (index in the source store),
                          ncsnr (if any), voxel_layer (index into layers, per voxel), roi_matrix (n_rois, n_voxels)
    layer-<k>.npz         for layer k: voxels (encoder voxel indices using that layer), coef (p, n),
                          x_mean, x_scale (p,), y_mean, y_scale, alpha, cv_r2 (n,); for a banded model also
                          band_weights (n, n_bands), candidates, candidate, band_sizes

Predictions: ``y = y_mean + y_scale · ((x - x_mean) / x_scale) @ coef`` with the training statistics.
A banded model (``encoder.json`` ``composite``: model name -> list of layers, e.g. ``{"banded": ["conv1",
"conv5", "fc6"]}``) reads ``x`` = its layers' features concatenated in that order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .banded import BandedRidgeFit
from .ridge import RidgeFit, fit_voxelwise_ridge


def fit_layers(features_train: dict, Y_train, alphas, n_folds: int = 5, backend: str = "torch", **kwargs) -> dict:
    """Fit one voxelwise ridge per layer on the same targets and folds.

    Parameters
    ----------
    features_train : dict layer -> ndarray (n_train, n_features_layer)
    Y_train : ndarray (n_train, n_voxels)

    Returns
    -------
    dict layer -> RidgeFit
    """
    return {name: fit_voxelwise_ridge(X, Y_train, alphas, n_folds, backend, **kwargs)
            for name, X in features_train.items()}


def select_layers(fits: dict, roi_masks: dict | None = None, mode: str = "voxel"):
    """Choose a layer per voxel from training-set CV scores only.

    Parameters
    ----------
    fits : dict layer -> RidgeFit (same voxels)
    roi_masks : dict name -> bool (n_voxels,), needed for ``mode="roi"``
    mode : {"voxel", "roi"}
        ``voxel``: each voxel takes the layer with its best CV R². ``roi``: every voxel of an ROI takes the
        layer with the best mean CV R² over that ROI (ROIs applied in order; voxels in no ROI fall back to
        the per-voxel choice).

    Returns
    -------
    voxel_layer : ndarray int (n_voxels,) index into ``list(fits)``
    roi_layer : dict roi -> layer name (empty for ``mode="voxel"``)
    """
    names = list(fits)
    cv = np.stack([np.nan_to_num(fits[n].cv_r2, nan=-np.inf) for n in names])  # (n_layers, n_voxels)
    voxel_layer = np.argmax(cv, axis=0)
    roi_layer = {}
    if roi_masks:
        for roi, mask in roi_masks.items():
            mask = np.asarray(mask, bool)
            if mask.any():
                best = int(np.argmax(np.where(np.isfinite(cv[:, mask]), cv[:, mask], np.nan).mean(1)))
                roi_layer[roi] = names[best]
                if mode == "roi":
                    voxel_layer[mask] = best
    elif mode == "roi":
        raise ValueError("mode='roi' needs roi_masks")
    return voxel_layer, roi_layer


@dataclass
class VoxelwiseEncoder:
    """Per-voxel linear read-outs of CNN layer features.

    Attributes
    ----------
    layers : list of str
    voxel_layer : ndarray int (n_voxels,)
    models : dict layer -> RidgeFit restricted to the voxels that use it
    voxels : dict layer -> ndarray int (encoder voxel indices of ``models[layer]``)
    geometry : dict with voxel_ijk, grid_shape, affine, store_voxel, ncsnr (optional), roi_names, roi_matrix
    meta : dict (JSON-serialisable)
    """

    layers: list
    voxel_layer: np.ndarray
    models: dict
    voxels: dict
    geometry: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return int(len(self.voxel_layer))

    @property
    def composite(self) -> dict:
        """Models that read several layers: model name -> list of layers (concatenated in order)."""
        return dict(self.meta.get("composite", {}))

    def input_layers(self, name) -> list:
        """Feature-cache layers that model ``name`` reads (itself, or a banded model's bands)."""
        return list(self.composite.get(name, [name]))

    def required_layers(self) -> list:
        """Every feature-cache layer needed by the models in use, in first-use order."""
        out = []
        for name in self.models:
            out += [b for b in self.input_layers(name) if b not in out]
        return out

    @classmethod
    def from_fits(cls, fits: dict, voxel_layer, geometry=None, meta=None) -> "VoxelwiseEncoder":
        layers = list(fits)
        voxel_layer = np.asarray(voxel_layer, dtype=int)
        models, voxels = {}, {}
        for k, name in enumerate(layers):
            v = np.flatnonzero(voxel_layer == k)
            if v.size:
                models[name] = fits[name].subset(v)
                voxels[name] = v
        return cls(layers, voxel_layer, models, voxels, dict(geometry or {}), dict(meta or {}))

    def predict(self, features) -> np.ndarray:
        """Predicted responses in the units of the training targets.

        Parameters
        ----------
        features : dict layer -> ndarray (n_stimuli, n_features_layer), or callable layer -> ndarray
            Only the layers actually used are requested.

        Returns
        -------
        ndarray (n_stimuli, n_voxels) float32
        """
        get = features if callable(features) else features.__getitem__
        out = None
        for name, model in self.models.items():
            parts = self.input_layers(name)
            X = np.asarray(get(parts[0])) if len(parts) == 1 else np.hstack([np.asarray(get(b)) for b in parts])
            if X.shape[1] != model.coef.shape[0]:
                raise ValueError(f"layer {name}: features have {X.shape[1]} columns, encoder expects {model.coef.shape[0]}")
            if out is None:
                out = np.zeros((X.shape[0], self.n_voxels), dtype=np.float32)
            out[:, self.voxels[name]] = model.predict(X)
        if out is None:
            raise ValueError("encoder has no voxels")
        return out

    def save(self, path) -> None:
        """Write into directory ``path`` (created; use inside ``atomic_output``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, layers=self.layers, n_voxels=self.n_voxels,
                    layer_files={name: f"layer-{k}.npz" for k, name in enumerate(self.layers) if name in self.models},
                    roi_names=list(self.geometry.get("roi_names", [])))
        (path / "encoder.json").write_text(json.dumps(meta, indent=1, default=_json_default))
        g = {k: np.asarray(v) for k, v in self.geometry.items() if k != "roi_names" and v is not None}
        np.savez(path / "geometry.npz", voxel_layer=self.voxel_layer, **g)
        for name, fname in meta["layer_files"].items():
            m = self.models[name]
            extra = {}
            if isinstance(m, BandedRidgeFit):
                extra = dict(band_weights=m.band_weights, candidates=m.candidates, candidate=m.candidate,
                             band_sizes=np.asarray(m.band_sizes), bands=np.asarray(m.bands))
            np.savez(path / fname, voxels=self.voxels[name], coef=m.coef, x_mean=m.x_mean, x_scale=m.x_scale,
                     y_mean=m.y_mean, y_scale=m.y_scale, alpha=m.alpha, alphas=m.alphas, cv_r2=m.cv_r2, **extra)

    @classmethod
    def load(cls, path) -> "VoxelwiseEncoder":
        from ..errors import InputError

        path = Path(path)
        if not (path / "encoder.json").exists() and (path / "encoder" / "encoder.json").exists():
            path = path / "encoder"
        if not (path / "encoder.json").exists() or not (path / "geometry.npz").exists():
            raise InputError(path, "not an encoder directory (encoder.json / geometry.npz missing)")
        meta = json.loads((path / "encoder.json").read_text())
        with np.load(path / "geometry.npz") as z:
            geometry = {k: z[k] for k in z.files}
        voxel_layer = geometry.pop("voxel_layer")
        geometry["roi_names"] = meta.get("roi_names", [])
        models, voxels = {}, {}
        for name, fname in meta["layer_files"].items():
            if not (path / fname).exists():
                raise InputError(path / fname, "layer weights missing")
            with np.load(path / fname) as z:
                voxels[name] = z["voxels"]
                n = len(z["voxels"])
                common = dict(coef=z["coef"], alpha=z["alpha"], alphas=z["alphas"], cv_r2=z["cv_r2"],
                              x_mean=z["x_mean"], x_scale=z["x_scale"], y_mean=z["y_mean"], y_scale=z["y_scale"])
                if "band_weights" in z.files:
                    models[name] = BandedRidgeFit(
                        cv_mse=np.full((len(z["candidates"]), n), np.nan), bands=[str(b) for b in z["bands"]],
                        band_sizes=[int(k) for k in z["band_sizes"]], band_weights=z["band_weights"],
                        candidates=z["candidates"], candidate=z["candidate"], **common)
                else:
                    models[name] = RidgeFit(cv_mse=np.full((len(z["alphas"]), n), np.nan), **common)
        return cls(list(meta["layers"]), voxel_layer, models, voxels, geometry, meta)

    def roi_masks(self) -> dict:
        names = self.geometry.get("roi_names", [])
        mat = self.geometry.get("roi_matrix")
        if mat is None or len(names) == 0:
            return {}
        return {n: np.asarray(mat[i], bool) for i, n in enumerate(names)}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
