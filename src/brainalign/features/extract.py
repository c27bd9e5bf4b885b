"""Feature extraction: one forward pass per batch, forward hooks on every requested layer,
reduction on the device (none / spatial pooling / PCA fitted on a training split), chunked resumable
writes into a zarr v3 feature cache.

GPU path: decode + resize in DataLoader workers (uint8), pinned host memory, non-blocking copies,
normalisation on the device, channels_last, bf16 autocast, ``torch.inference_mode``, zarr writes in a
background thread. CPU path: the same code in fp32.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from .._io import atomic_output, progress
from ..devices import resolve_device
from ..errors import InputError
from ..heldout import write_training_record
from ..model_provenance import model_provenance
from ..models import resolve_layers
from ..stimuli import ImageSet, Preprocessing, make_loader
from .cache import CACHE_FORMAT, TRAINING_STIMULI_FILE, write_stimulus_ids

log = logging.getLogger(__name__)

REDUCTIONS = ("none", "pool", "pca")
PCA_METHODS = ("auto", "exact", "randomized")
_DONE_DIR = "_done"
_RUN_FILE = "_run.json"


# --------------------------------------------------------------------------------------------------
# model wrapper
# --------------------------------------------------------------------------------------------------

def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"layer output is not a tensor: {type(output).__name__}")


def flatten_raw(name, out: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, n) copy in the computed dtype (C-major order: channel, then rows, then columns)."""
    flat = out.flatten(1)  # already a copy when the activation is channels_last
    return flat.clone() if flat.data_ptr() == out.data_ptr() else flat


def flatten_float(name, out: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> float32 (B, n) copy."""
    return out.flatten(1).to(torch.float32, copy=True)


def spatial_pool(name, out: torch.Tensor) -> torch.Tensor:
    """Average over space: (B, C, H, W) -> (B, C); (B, T, D) -> (B, D) (token mean); (B, n) unchanged."""
    out = out.to(torch.float32)
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out.mean(dim=1)
    return out.flatten(1).clone()


class FeatureExtractor:
    """A model with forward hooks on named layers.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`brainalign.models.load_model` (uses ``model.brainalign`` for layers/preprocessing).
    layers : list of str, optional
        Friendly layer names or module paths (default: the architecture's default layers).
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
    precision : {"auto", "fp32", "bf16"}
        ``auto`` = bf16 autocast on CUDA, fp32 on CPU.
    channels_last : bool, optional
        Default: True on CUDA.
    """

    def __init__(self, model, layers=None, device="auto", precision="auto", channels_last=None,
                 preprocessing: Preprocessing | None = None):
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        if precision not in ("auto", "fp32", "bf16"):
            raise InputError("--precision", "must be auto, fp32 or bf16")
        self.precision = ("bf16" if cuda else "fp32") if precision == "auto" else precision
        self.channels_last = cuda if channels_last is None else bool(channels_last)
        self.model = model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.modules = resolve_layers(model, layers)
        info = getattr(model, "brainalign", None)
        name_of = {id(m): path for path, m in model.named_modules()}
        self.layer_paths = {name: name_of[id(m)] for name, m in self.modules.items()}
        if preprocessing is None:
            pre = info.preprocessing if info else {}
            preprocessing = Preprocessing(size=tuple(pre.get("size", (224, 224))),
                                          mean=tuple(pre.get("mean", Preprocessing.mean)),
                                          std=tuple(pre.get("std", Preprocessing.std)))
        self.preprocessing = preprocessing
        self._transform = flatten_float
        self._outputs = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules.items()]

    @property
    def layers(self) -> list:
        return list(self.modules)

    def _hook(self, name):
        def hook(module, inputs, output):
            # reduce right here: later in-place ops (ReLU(inplace=True)) must not alter what we keep
            self._outputs[name] = self._transform(name, _first_tensor(output))
        return hook

    def close(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, images_uint8: torch.Tensor, transform=flatten_float) -> dict:
        """Run one batch.

        Parameters
        ----------
        images_uint8 : uint8 tensor (B, 3, H, W), already resized (host, ideally pinned, or device).
        transform : callable(name, output) -> tensor
            Applied inside each hook on the device (reduction).

        Returns
        -------
        dict name -> tensor on the device, first axis B.
        """
        x = images_uint8.to(self.device, non_blocking=True)
        x = self.preprocessing.normalise(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self._transform, self._outputs = transform, {}
        with torch.inference_mode(), self._autocast():
            self.model(x)
        outputs, self._outputs = self._outputs, {}
        missing = [n for n in self.modules if n not in outputs]
        if missing:
            raise RuntimeError(f"layers {missing} were not reached in the forward pass")
        return outputs

    def probe_shapes(self) -> dict:
        """Per-layer output shape (without the batch axis) for one blank image."""
        h, w = self.preprocessing.size
        blank = torch.zeros((1, 3, h, w), dtype=torch.uint8)
        shapes = {}

        def record(name, out):
            shapes[name] = tuple(out.shape[1:])
            return out.new_zeros(1)

        self.forward(blank, record)
        return shapes


# --------------------------------------------------------------------------------------------------
# PCA (torch, on the device)
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PCAFit:
    """``transform(X) = (X - mean) @ components.T``; components (k, p) orthonormal rows."""

    mean: torch.Tensor                 # (p,)
    components: torch.Tensor           # (k, p)
    explained_variance: torch.Tensor   # (k,)
    method: str

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return (x.to(torch.float32) - self.mean) @ self.components.T


def _column_blocks(p: int, block: int):
    return [slice(s, min(p, s + block)) for s in range(0, p, block)]


def fit_pca(x: torch.Tensor, n_components: int, method: str = "auto", seed: int = 0,
            n_oversamples: int = 10, n_iter: int = 4, block: int = 16384) -> PCAFit:
    """PCA of the rows of ``x`` (n, p), any float dtype, on its device; memory ~ n·block extra.

    Parameters
    ----------
    method : {"auto", "exact", "randomized"}
        ``exact``: eigendecomposition of the float64 Gram (n <= p) or covariance (n > p) matrix,
        accumulated over column blocks. ``randomized``: Halko et al. range finder with ``n_iter``
        power iterations and ``n_oversamples`` extra columns, in float32. ``auto``: exact when
        min(n, p) <= 12000.

    Returns
    -------
    PCAFit
        Components sign-fixed so that each row's largest-magnitude entry is positive.
    """
    n, p = x.shape
    k = int(min(n_components, n, p))
    if k < 1:
        raise ValueError("PCA needs at least one component and one row")
    if method == "auto":
        method = "exact" if min(n, p) <= 12000 else "randomized"
    mean = torch.zeros(p, dtype=torch.float64, device=x.device)
    for b in _column_blocks(p, block):
        mean[b] = x[:, b].to(torch.float64).mean(0)
    mean32 = mean.to(torch.float32)

    def xc(b, dtype=torch.float32):
        return x[:, b].to(dtype) - mean[b].to(dtype)

    blocks = _column_blocks(p, block)
    if method == "exact":
        if n <= p:
            gram = torch.zeros((n, n), dtype=torch.float64, device=x.device)
            for b in blocks:
                xb = xc(b, torch.float64)
                gram += xb @ xb.T
            evals, evecs = torch.linalg.eigh(gram)
            order = torch.argsort(evals, descending=True)[:k]
            evals, u = evals[order].clamp_min(0), evecs[:, order]
            s = evals.sqrt().clamp_min(torch.finfo(torch.float64).tiny)
            comps = torch.empty((k, p), dtype=torch.float64, device=x.device)
            for b in blocks:
                comps[:, b] = (xc(b, torch.float64).T @ u / s).T
        else:
            cov = torch.zeros((p, p), dtype=torch.float64, device=x.device)
            for r in _column_blocks(n, block):
                xr = x[r].to(torch.float64) - mean
                cov += xr.T @ xr
            evals, evecs = torch.linalg.eigh(cov)
            order = torch.argsort(evals, descending=True)[:k]
            evals, comps = evals[order].clamp_min(0), evecs[:, order].T
        variance = evals / max(n - 1, 1)
        comps = comps.to(torch.float32)
    elif method == "randomized":
        l = int(min(k + n_oversamples, n, p))
        gen = torch.Generator(device=x.device).manual_seed(seed)
        omega = torch.randn((p, l), generator=gen, device=x.device, dtype=torch.float32)

        def times(mat):   # Xc @ mat, mat (p, l)
            out = torch.zeros((n, mat.shape[1]), dtype=torch.float32, device=x.device)
            for b in blocks:
                out += xc(b) @ mat[b]
            return out

        def t_times(q):   # Xc.T @ q, q (n, l)
            out = torch.empty((p, q.shape[1]), dtype=torch.float32, device=x.device)
            for b in blocks:
                out[b] = xc(b).T @ q
            return out

        y = times(omega)
        for _ in range(n_iter):
            q = torch.linalg.qr(y).Q
            z = torch.linalg.qr(t_times(q)).Q
            y = times(z)
        q = torch.linalg.qr(y).Q
        bmat = t_times(q).T                           # (l, p) = Q.T @ Xc
        _, sv, vt = torch.linalg.svd(bmat, full_matrices=False)
        comps = vt[:k]
        variance = (sv[:k].to(torch.float64) ** 2) / max(n - 1, 1)
    else:
        raise InputError("--pca-method", f"unknown PCA method {method!r} ({', '.join(PCA_METHODS)})")
    idx = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(k, device=comps.device), idx])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    return PCAFit(mean32, comps.contiguous(), variance.to(torch.float32), method)


# --------------------------------------------------------------------------------------------------
# the cache writer
# --------------------------------------------------------------------------------------------------
def _sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _default_chunk_rows(total_features: int) -> int:
    rows = (256 << 20) // max(1, 4 * total_features)
    return int(max(16, min(1024, 2 ** int(math.log2(max(rows, 1))))))


def _feature_dims(shapes: dict, reduce: str, n_components: int | None, n_train: int) -> dict:
    dims = {}
    for name, shape in shapes.items():
        flat = int(np.prod(shape)) if shape else 1
        if reduce == "none":
            dims[name] = flat
        elif reduce == "pool":
            dims[name] = int(shape[0]) if len(shape) == 3 else int(shape[-1]) if len(shape) == 2 else flat
        else:
            dims[name] = int(min(n_components, n_train, flat))
    return dims


class _ChunkWriter:
    """Writes finished row chunks in a background thread; a marker file records each finished chunk."""

    def __init__(self, group, done_dir: Path, max_pending: int = 2):
        self.arrays = {}
        self.group = group
        self.done_dir = done_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.pending = []
        self.max_pending = max_pending

    def _write(self, chunk: int, start: int, buffers: dict):
        for name, data in buffers.items():
            arr = self.arrays.get(name)
            if arr is None:
                arr = self.arrays[name] = self.group[f"layers/{name}"]
            arr[start:start + data.shape[0]] = data
        (self.done_dir / f"chunk-{chunk:07d}").touch()

    def submit(self, chunk: int, start: int, buffers: dict):
        while len(self.pending) >= self.max_pending:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._write, chunk, start, buffers))

    def close(self):
        try:
            for fut in self.pending:
                fut.result()
        finally:
            self.pending = []
            self.pool.shutdown(wait=True)


def _done_chunks(done_dir: Path) -> set:
    if not done_dir.is_dir():
        return set()
    return {int(p.name.split("-", 1)[1]) for p in done_dir.iterdir() if p.name.startswith("chunk-")}


def _batches(rows: list, batch_size: int) -> list:
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


def extract_features(image_set: ImageSet, model, out, *, layers=None, reduce: str = "none",
                     pca_components: int | None = None, pca_train_ids=None, pca_method: str = "auto",
                     pca_fit_images: int | None = None, batch_size: int = 64, workers: int = 4, device="auto", precision: str = "auto",
                     channels_last=None, chunk_rows: int | None = None, seed: int = 0,
                     input_size=None, pca_from=None, show_progress: bool = True, on_batch=None) -> Path:
    """Extract layer features for every image of ``image_set`` into a zarr feature cache.

    Parameters
    ----------
    image_set : ImageSet
        Rows of the cache, in order (``image_set.ids``).
    model : torch.nn.Module
        From :func:`brainalign.models.load_model`. Its weights provenance (``weights``, ``weights_origin``,
        ``training``; :func:`brainalign.model_provenance.model_provenance`) goes into the cache's attrs, and the
        training record of a trained checkpoint into ``training_stimuli.parquet`` (a trained checkpoint whose
        record is missing or altered is refused).
    out : str or Path
        The ``*.zarr`` cache to write. A partial run is kept next to it in ``.<name>.partial`` and
        resumed if the configuration is unchanged; a finished cache with the same configuration is
        left alone.
    layers : list of str, optional
        Friendly layer names or module paths (default: the model's default layers).
    reduce : {"none", "pool", "pca"}
        ``none``: flattened activations (C, H, W order); ``pool``: spatial average (C,); ``pca``:
        projection on the first ``pca_components`` principal components fitted on the rows with IDs
        ``pca_train_ids`` only (looked up in ``image_set.root_set``), applied to every row.
    pca_method : {"auto", "exact", "randomized"}
        See :func:`fit_pca`.
    pca_fit_images : int, optional
        Fit the PCA on at most this many of ``pca_train_ids`` (a random subset drawn with ``seed``): the
        raw activations of the fit images are held in device memory (AlexNet: ~1 MB per image in bf16), so
        this bounds memory on NSD's 72,000 training images. Default: all of them.
    batch_size, workers : int
        Images per forward pass; DataLoader decode processes (0 = in the main process).
    device, precision, channels_last
        See :class:`FeatureExtractor`.
    chunk_rows : int, optional
        Rows per zarr chunk and per resume unit (default: as many as fit in ~256 MB, 16..1024).
    pca_from : str or Path, optional
        A finished PCA cache of the same model weights and layers: apply its PCA (fitted on its own
        training split) instead of fitting one, e.g. to project unseen images into the same space.
    input_size : (int, int), optional
        Override the model's input size (default 224 x 224 from ``model.brainalign.preprocessing``).
    on_batch : callable(batch_index), optional
        Called after every written batch (testing / monitoring).

    Returns
    -------
    Path
        ``out``; each layer array is float32 (n_stimuli, n_features).
    """
    import zarr

    out = Path(out)
    if reduce not in REDUCTIONS:
        raise InputError("--reduce", f"must be one of {', '.join(REDUCTIONS)}")
    if pca_method not in PCA_METHODS:
        raise InputError("--pca-method", f"must be one of {', '.join(PCA_METHODS)}")
    ids = image_set.ids
    n = len(ids)
    if n == 0:
        raise InputError(out, "the stimulus set is empty")
    train_set, pca_source = None, None
    if reduce == "pca" and pca_from is not None:
        from .cache import open_feature_cache

        pca_source = open_feature_cache(pca_from)
        if pca_source.attrs.get("reduction", {}).get("method") != "pca":
            raise InputError(pca_from, "--pca-from must be a cache written with --reduce pca")
    elif reduce == "pca":
        if not pca_components or pca_components < 1:
            raise InputError("--pca-components", "reduce=pca needs a positive number of components")
        if not pca_train_ids:
            raise InputError("--pca-train-ids", "reduce=pca needs the IDs of the training split to fit on")
        pca_train_ids = list(pca_train_ids)
        if pca_fit_images is not None and len(pca_train_ids) > pca_fit_images:
            pick = np.random.default_rng(seed).choice(len(pca_train_ids), pca_fit_images, replace=False)
            pca_train_ids = [pca_train_ids[i] for i in np.sort(pick)]
        train_set = image_set.root_set.subset(pca_train_ids)
        if len(train_set) < 2:
            raise InputError("--pca-train-ids", "PCA needs at least 2 training images")
    if batch_size < 1:
        raise InputError("--batch-size", "must be >= 1")

    extractor = FeatureExtractor(model, layers, device, precision, channels_last)
    if input_size is not None:
        extractor.preprocessing = dataclasses.replace(extractor.preprocessing,
                                                      size=tuple(int(v) for v in input_size))
    try:
        if pca_source is not None:
            missing = [n for n in extractor.layers if n not in pca_source.layers]
            if missing:
                raise InputError(pca_from, f"has no PCA for layers {missing}")
            model_hash = getattr(model, "brainalign").state_dict_sha256 if hasattr(model, "brainalign") else None
            if pca_source.attrs["model"].get("state_dict_sha256") != model_hash:
                raise InputError(pca_from, "its PCA was fitted on features of different model weights")
            if pca_source.attrs["preprocessing"] != extractor.preprocessing.to_dict():
                raise InputError(pca_from, "its PCA was fitted on differently preprocessed images")
            pca_source = {n: pca_source for n in extractor.layers}
        return _extract(extractor, image_set, train_set, pca_source, out, ids, reduce, pca_components, pca_method,
                        batch_size, workers, chunk_rows, seed, show_progress, on_batch, zarr)
    finally:
        extractor.close()


def _extract(ex: FeatureExtractor, image_set, train_set, pca_source, out, ids, reduce, pca_components, pca_method,
             batch_size, workers, chunk_rows, seed, show_progress, on_batch, zarr):
    n = len(ids)
    info = getattr(ex.model, "brainalign", None)
    shapes = ex.probe_shapes()
    n_train = len(train_set) if train_set is not None else 0
    dims = _feature_dims(shapes, reduce, pca_components or 1, n_train)
    source_fits = None
    if pca_source is not None:
        source_fits = {n: c.pca(n) for n, c in pca_source.items()}
        dims = {n: int(source_fits[n]["components"].shape[0]) for n in shapes}
    chunk_rows = int(chunk_rows or _default_chunk_rows(sum(dims.values())))
    cuda = ex.device.type == "cuda"
    reduction = {"method": reduce}
    if source_fits is not None:
        cache = next(iter(pca_source.values()))
        reduction.update(pca_from=str(cache.path), pca_from_fingerprint=cache.attrs.get("fingerprint"),
                         n_components=dims, source_reduction=cache.attrs.get("reduction"))
    elif reduce == "pca":
        reduction.update(n_components_requested=int(pca_components), n_components=dims, pca_method=pca_method,
                         n_train=n_train, train_ids_sha256=_sha256_json([str(i) for i in train_set.ids]),
                         seed=seed, fitted_on="training split only, then applied to every row")
    model_attrs = info.to_dict() if info else {"arch": type(ex.model).__name__}
    # which weights, and (for a trained checkpoint) which stimuli the model saw: its training record is copied in
    provenance, training_record = model_provenance(ex.model)
    config = {
        "stimulus_set": image_set.describe(),
        "stimulus_ids_sha256": _sha256_json([str(i) for i in ids]),
        "model": {k: model_attrs.get(k) for k in ("arch", "weights", "weights_file_sha256", "state_dict_sha256", "seed")},
        **provenance,
        "layer_modules": ex.layer_paths,
        "preprocessing": ex.preprocessing.to_dict(),
        "precision": ex.precision,
        "reduction": reduction,
        "chunk_rows": chunk_rows,
    }
    fingerprint = _sha256_json(config)
    if (out / "zarr.json").is_file():
        try:
            attrs = dict(zarr.open_group(str(out), mode="r").attrs)
        except Exception:  # unreadable: rebuild
            attrs = {}
        if attrs.get("complete") and attrs.get("fingerprint") == fingerprint:
            log.info("%s is up to date (same stimuli, model, layers and reduction); nothing to do", out)
            return out

    partial = out.with_name(f".{out.name}.partial")
    run_file, done_dir = partial / _RUN_FILE, partial / _DONE_DIR
    if partial.exists():
        try:
            same = json.loads(run_file.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            log.info("discarding %s (from a run with a different configuration)", partial)
            shutil.rmtree(partial)
    if not partial.exists():
        partial.mkdir(parents=True)
        group = zarr.open_group(str(partial), mode="w", zarr_format=3)
        compressor = zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
        for name, f in dims.items():
            group.create_array(f"layers/{name}", shape=(n, f), dtype="float32",
                               chunks=(chunk_rows, min(f, 1 << 16)), compressors=compressor, fill_value=0.0)
        write_stimulus_ids(partial, ids)
        if training_record is not None:
            write_training_record(partial / TRAINING_STIMULI_FILE, training_record)
        group.attrs.update({
            "format": CACHE_FORMAT, "complete": False, "brainalign_version": __version__,
            **config, "model": model_attrs, "n_stimuli": n, "layers": list(dims), "layer_shapes": {
                k: list(v) for k, v in shapes.items()}, "n_features": dims, "fingerprint": fingerprint,
            "channels_last": ex.channels_last,
        })
        done_dir.mkdir()
        run_file.write_text(json.dumps({"fingerprint": fingerprint, "pid": os.getpid()}))
    group = zarr.open_group(str(partial), mode="r+")

    n_chunks = math.ceil(n / chunk_rows)
    pending = [c for c in range(n_chunks) if c not in _done_chunks(done_dir)]
    if pending:
        log.info("%s: %d of %d chunks to compute (%d rows per chunk)", out, len(pending), n_chunks, chunk_rows)
    precomputed = {}  # row -> {layer: float32 (f,)}, rows already projected during the PCA fit
    transform = {"none": flatten_float, "pool": spatial_pool}.get(reduce)
    total_fit = 0
    if reduce == "pca":
        if source_fits is not None and not (done_dir / "pca").exists():
            fits = {n: PCAFit(method="from " + str(next(iter(pca_source.values())).path),
                              **{k: torch.as_tensor(v, device=ex.device) for k, v in f.items()})
                    for n, f in source_fits.items()}
            _save_pca(group, fits, done_dir)
        fits = _load_pca(group, done_dir, ex.device)
        if fits is None:
            total_fit = n_train
    rows_needed_estimate = sum(min(n, (c + 1) * chunk_rows) - c * chunk_rows for c in pending)
    bar_kwargs = {} if show_progress else {"disable": True}
    bar = progress(total=total_fit + rows_needed_estimate, unit="img",
                   desc=f"features {out.name}", **bar_kwargs)
    try:
        if reduce == "pca":
            if fits is None:
                fits, precomputed = _fit_pca_pass(ex, train_set, ids, pending, chunk_rows, pca_components,
                                                  pca_method, seed, batch_size, workers, cuda, bar)
                _save_pca(group, fits, done_dir)
                bar.total -= len(precomputed)
                bar.refresh()

            def transform(name, out_tensor):
                return fits[name].transform(out_tensor.flatten(1))

        _write_pass(ex, image_set, group, done_dir, pending, n, chunk_rows, precomputed, transform,
                    batch_size, workers, cuda, bar, on_batch)
    finally:
        bar.close()

    missing = sorted(set(range(n_chunks)) - _done_chunks(done_dir))
    if missing:
        raise RuntimeError(f"{partial}: chunks {missing[:5]} were not written")
    group.attrs.update({"complete": True})
    shutil.rmtree(done_dir)
    run_file.unlink()
    with atomic_output(out) as tmp:
        os.replace(partial, tmp)
    return out


def _fit_pca_pass(ex, train_set, ids, pending, chunk_rows, k, method, seed, batch_size, workers, cuda, bar):
    """Forward the training images, keep their raw features on the device, fit one PCA per layer.

    Returns the fits and the projected features of training rows that are also output rows of a
    pending chunk (so those images are not run through the model a second time).
    """
    with torch.inference_mode():
        return _fit_pca_pass_inner(ex, train_set, ids, pending, chunk_rows, k, method, seed, batch_size,
                                   workers, cuda, bar)


def _fit_pca_pass_inner(ex, train_set, ids, pending, chunk_rows, k, method, seed, batch_size, workers, cuda, bar):
    n_train = len(train_set)
    store = {}
    loader = make_loader(train_set, ex.preprocessing, batch_size=batch_size, workers=workers, pin_memory=cuda)
    for rows, images in loader:
        outs = ex.forward(images, flatten_raw)
        for name, t in outs.items():
            if name not in store:
                store[name] = torch.empty((n_train, t.shape[1]), dtype=t.dtype, device=t.device)
            store[name][rows.to(t.device)] = t
        bar.update(len(rows))
    fits = {name: fit_pca(x, k, method, seed) for name, x in store.items()}

    row_of = {str(sid): r for r, sid in enumerate(ids)}
    pending_set = set(pending)
    train_pos, out_rows = [], []
    for j, sid in enumerate(train_set.ids):
        r = row_of.get(str(sid))
        if r is not None and r // chunk_rows in pending_set:
            train_pos.append(j)
            out_rows.append(r)
    precomputed = {r: {} for r in out_rows}
    if train_pos:
        sel = torch.as_tensor(train_pos, device=ex.device)
        for name, x in store.items():
            proj = fits[name].transform(x[sel]).cpu().numpy()
            for i, r in enumerate(out_rows):
                precomputed[r][name] = proj[i]
    del store
    return fits, precomputed


def _save_pca(group, fits, done_dir):
    for name, fit in fits.items():
        for key in ("mean", "components", "explained_variance"):
            data = getattr(fit, key).detach().cpu().numpy().astype(np.float32)
            arr = group.create_array(f"pca/{name}/{key}", shape=data.shape, dtype="float32",
                                     chunks=data.shape, overwrite=True)
            arr[...] = data
        group[f"pca/{name}"].attrs.update({"method": fit.method, "n_components": int(fit.components.shape[0])})
    (done_dir / "pca").touch()


def _load_pca(group, done_dir, device):
    if not (done_dir / "pca").exists():
        return None
    fits = {}
    for name in group.attrs["layers"]:
        sub = group[f"pca/{name}"]
        arrays = {k: torch.as_tensor(np.asarray(sub[k][...]), device=device)
                  for k in ("mean", "components", "explained_variance")}
        fits[name] = PCAFit(method=sub.attrs.get("method", "?"), **arrays)
    return fits


def _write_pass(ex, image_set, group, done_dir, pending, n, chunk_rows, precomputed, transform,
                batch_size, workers, cuda, bar, on_batch):
    layer_names = list(group.attrs["layers"])
    dims = dict(group.attrs["n_features"])
    writer = _ChunkWriter(group, done_dir)
    buffers, remaining = {}, {}

    def chunk_range(c):
        return c * chunk_rows, min(n, (c + 1) * chunk_rows)

    def buffer(c):
        if c not in buffers:
            start, stop = chunk_range(c)
            buffers[c] = {name: np.empty((stop - start, dims[name]), dtype=np.float32) for name in layer_names}
            for r in range(start, stop):
                if r in precomputed:
                    for name in layer_names:
                        buffers[c][name][r - start] = precomputed[r][name]
        return buffers[c]

    def flush(c):
        start, _ = chunk_range(c)
        writer.submit(c, start, buffers.pop(c))
        remaining.pop(c, None)

    needed = []
    for c in pending:
        start, stop = chunk_range(c)
        rows = [r for r in range(start, stop) if r not in precomputed]
        remaining[c] = len(rows)
        needed.extend(rows)
    try:
        for c in [c for c in pending if remaining[c] == 0]:
            buffer(c)
            flush(c)
        if needed:
            loader = make_loader(image_set, ex.preprocessing, workers=workers, pin_memory=cuda,
                                 batch_sampler=_batches(needed, batch_size))
            for b, (rows, images) in enumerate(loader):
                outs = ex.forward(images, transform)
                host = {name: t.to(torch.float32).cpu().numpy() for name, t in outs.items()}
                rows = rows.numpy()
                chunks = rows // chunk_rows
                for c in np.unique(chunks):
                    c = int(c)
                    mask = chunks == c
                    buf = buffer(c)
                    local = rows[mask] - c * chunk_rows
                    for name in layer_names:
                        buf[name][local] = host[name][mask]
                    remaining[c] -= int(mask.sum())
                    if remaining[c] == 0:
                        flush(c)
                bar.update(len(rows))
                if on_batch is not None:
                    on_batch(b)
    finally:
        writer.close()
