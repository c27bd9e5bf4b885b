"""Stimulus image sets (NSD imgBrick, BOLD5000, THINGS-EEG2, plain folders) and model input pipelines.

One abstraction, :class:`ImageSet`, gives every source the same interface: ``.ids`` (stimulus IDs as in
the voxel / EEG stores: NSD 0-based ``int`` nsdId, otherwise ``str`` file name or relative path),
``len()``, ``load(id) -> uint8 (H, W, 3)`` and ``subset(ids)``. Images are read lazily; the NSD HDF5 file
is opened on first use in each process, so an ImageSet can be handed to DataLoader worker processes.

Preprocessing (:class:`Preprocessing`) is split in two halves so that the heavy part runs in parallel
decode workers and the cheap part on the accelerator: workers decode and resize to ``size`` on uint8
tensors (bilinear, antialiased); the device converts to float, scales to [0, 1] and normalises.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NSD_STIMULI_RELPATH = Path("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
BOLD5000_CATEGORIES = ("COCO", "ImageNet", "Scene")


# --------------------------------------------------------------------------------------------------
# image sets
# --------------------------------------------------------------------------------------------------
class ImageSet:
    """An ordered set of stimulus images addressed by stimulus ID.

    Subclasses implement :meth:`_load_all_ids`-independent storage; the public interface is

    - ``ids``: list of stimulus IDs (``int`` for NSD, ``str`` otherwise), in row order;
    - ``len(s)``; ``id in s``;
    - ``load(id) -> ndarray uint8 (H, W, 3)``;
    - ``subset(ids) -> ImageSet`` with rows in the order given (IDs must exist);
    - ``describe() -> dict`` (JSON-able provenance: kind, root, number of images).

    ``root_set`` is the unrestricted set a subset was taken from (itself for a full set), so
    e.g. a PCA training split can be looked up even when the output rows are restricted.
    """

    kind = "images"

    def __init__(self, ids, root_set=None):
        self._ids = list(ids)
        self._index = None
        self.root_set = self if root_set is None else root_set

    # -- interface ---------------------------------------------------------------------------------
    @property
    def ids(self) -> list:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, stimulus_id) -> bool:
        return self._normalise_id(stimulus_id) in self._id_index()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    def load(self, stimulus_id) -> np.ndarray:
        """Read one image.

        Returns
        -------
        ndarray, uint8, shape (H, W, 3)
        """
        raise NotImplementedError

    def subset(self, ids) -> "ImageSet":
        """The images with these IDs, rows in the order given.

        Raises
        ------
        InputError
            If an ID is not in the set, or an ID is repeated.
        """
        ids = [self._normalise_id(i) for i in ids]
        index = self._id_index()
        missing = [i for i in ids if i not in index]
        if missing:
            raise InputError(self.describe().get("root", self.kind),
                             f"{len(missing)} requested stimulus IDs are not in this image set, "
                             f"e.g. {missing[:5]}")
        if len(set(ids)) != len(ids):
            raise InputError(self.describe().get("root", self.kind), "repeated stimulus IDs in the subset")
        return self._make_subset(ids)

    def describe(self) -> dict:
        return {"kind": self.kind, "n_images": len(self)}

    # -- helpers -----------------------------------------------------------------------------------
    def _normalise_id(self, stimulus_id):
        return str(stimulus_id)

    def _id_index(self) -> dict:
        if self._index is None:
            self._index = {sid: row for row, sid in enumerate(self._ids)}
        return self._index

    def _make_subset(self, ids):
        raise NotImplementedError


class NSDImageSet(ImageSet):
    """NSD ``imgBrick``: HDF5 dataset uint8 (N, 425, 425, 3); row i = 0-based nsdId i.

    Parameters
    ----------
    path : str or Path
        ``nsd_stimuli.hdf5`` itself, or an NSD root containing
        ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5``.
    ids : sequence of int, optional
        nsdIds to expose (default: all rows of the brick).

    Only the requested rows are read (one h5py slice per image, or a sorted fancy read in
    :meth:`load_many`); the file is opened lazily once per process.
    """

    kind = "nsd"

    def __init__(self, path, ids=None, root_set=None):
        path = Path(path)
        if path.is_dir():
            path = path / NSD_STIMULI_RELPATH
        if not path.is_file():
            raise InputError(path, "NSD stimulus file not found (expected nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5)")
        self.path = path
        self._h5 = None
        self._pid = None
        import h5py

        try:
            with h5py.File(path, "r") as fh:
                if "imgBrick" not in fh:
                    raise InputError(path, "no dataset 'imgBrick' in this HDF5 file")
                ds = fh["imgBrick"]
                if ds.ndim != 4 or ds.shape[3] != 3 or ds.dtype != np.uint8:
                    raise InputError(path, f"imgBrick must be uint8 (N, H, W, 3), found {ds.dtype} {ds.shape}")
                self.brick_shape = tuple(ds.shape)
        except OSError as exc:
            raise InputError(path, f"cannot read as HDF5: {exc}") from exc
        n = self.brick_shape[0]
        if ids is None:
            ids = range(n)
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise InputError(path, f"nsdIds out of range 0..{n - 1}: {bad[:5]}")
        super().__init__(ids, root_set)

    def _normalise_id(self, stimulus_id):
        return int(stimulus_id)

    def _dataset(self):
        if self._h5 is None or self._pid != os.getpid():
            import h5py

            # a fresh handle per process: h5py handles must not cross a fork
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5["imgBrick"]

    def load(self, stimulus_id) -> np.ndarray:
        i = int(stimulus_id)
        if not 0 <= i < self.brick_shape[0]:
            raise KeyError(stimulus_id)
        return self._dataset()[i]

    def load_many(self, ids) -> np.ndarray:
        """Read several images with one sorted HDF5 read.

        Returns
        -------
        ndarray, uint8, shape (len(ids), H, W, 3), rows in the order of ``ids``.
        """
        ids = np.asarray([int(i) for i in ids], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        uniq, inverse = np.unique(ids[order], return_inverse=True)
        block = self._dataset()[uniq.tolist()]
        out = np.empty((len(ids),) + block.shape[1:], dtype=np.uint8)
        out[order] = block[inverse]
        return out

    def _make_subset(self, ids):
        return NSDImageSet(self.path, ids, root_set=self.root_set)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.path), "n_images": len(self),
                "brick_shape": list(self.brick_shape)}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state


class FileImageSet(ImageSet):
    """Images stored as files, ``id -> path``.

    Parameters
    ----------
    files : dict
        Ordered mapping stimulus ID (str) -> image file path.
    kind : str
        Source kind for provenance (``folder``, ``bold5000``, ``things-eeg2``).
    root : str or Path
        The folder the set was built from.
    """

    def __init__(self, files: dict, kind: str = "folder", root=None, root_set=None, extra=None):
        self._files = dict(files)
        self.kind = kind
        self.root = None if root is None else str(root)
        self._extra = dict(extra or {})
        super().__init__(self._files.keys(), root_set)

    def path_of(self, stimulus_id) -> Path:
        return Path(self._files[str(stimulus_id)])

    def load(self, stimulus_id) -> np.ndarray:
        from PIL import Image

        with Image.open(self.path_of(stimulus_id)) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy

    def _make_subset(self, ids):
        return FileImageSet({i: self._files[i] for i in ids}, self.kind, self.root, root_set=self.root_set,
                            extra=self._extra)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": self.root, "n_images": len(self), **self._extra}


def nsd_images(root, ids=None) -> NSDImageSet:
    """NSD stimuli from an NSD root or the ``nsd_stimuli.hdf5`` path (see :class:`NSDImageSet`)."""
    return NSDImageSet(root, ids)


def folder_images(root) -> FileImageSet:
    """Every image file below ``root`` (recursive, sorted); id = path relative to ``root`` (posix).

    Raises
    ------
    InputError
        If the folder does not exist or holds no image files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "image folder not found")
    files = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith("."):
            files[path.relative_to(root).as_posix()] = path
    if not files:
        raise InputError(root, f"no image files ({', '.join(IMAGE_EXTENSIONS)}) below this folder")
    return FileImageSet(files, "folder", root)


def _find_presented_stimuli(root: Path) -> Path:
    direct = root / "BOLD5000_Stimuli" / "Scene_Stimuli" / "Presented_Stimuli"
    if direct.is_dir():
        return direct
    if root.name == "Presented_Stimuli" and root.is_dir():
        return root
    found = sorted(p for p in root.rglob("Presented_Stimuli") if p.is_dir())
    if not found:
        raise InputError(root, "no BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli folder below this root")
    return found[0]


def bold5000_images(root) -> FileImageSet:
    """BOLD5000 presented stimuli: ``.../Presented_Stimuli/{COCO,ImageNet,Scene}/<name>``; id = file name.

    Rows: COCO, then ImageNet, then Scene, each sorted by name. The root is searched recursively for
    the ``Presented_Stimuli`` folder.

    Raises
    ------
    InputError
        If the folder is missing, empty, or a file name occurs in two categories.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "BOLD5000 root not found")
    presented = _find_presented_stimuli(root)
    files, categories = {}, {}
    for category in BOLD5000_CATEGORIES:
        folder = presented / category
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                if path.name in files:
                    raise InputError(path, f"image name also present under {categories[path.name]}")
                files[path.name] = path
                categories[path.name] = category
    if not files:
        raise InputError(presented, "no images under COCO/, ImageNet/ or Scene/")
    return FileImageSet(files, "bold5000", root)


def things_images(root, split: str | None = None) -> FileImageSet:
    """THINGS-EEG2 ``image_set/{training,test}_images/{IIIII}_{concept}/{file}``; id = file name.

    Parameters
    ----------
    root : str or Path
        THINGS-EEG2 root (containing ``image_set/``) or the ``image_set`` folder itself.
    split : {"training", "test", None}
        One split, or both (training rows first).

    Row order follows ``image_set/image_metadata.npy`` (``{train,test}_img_concepts`` /
    ``{train,test}_img_files``) when present, so row i = EEG image condition i; otherwise concept
    folders in sorted order, files sorted within each.
    """
    root = Path(root)
    image_set = root / "image_set" if (root / "image_set").is_dir() else root
    if not image_set.is_dir():
        raise InputError(root, "THINGS-EEG2 root not found")
    if split not in (None, "training", "test"):
        raise InputError(split, "THINGS-EEG2 split must be 'training' or 'test'")
    splits = ["training", "test"] if split is None else [split]
    meta_path = image_set / "image_metadata.npy"
    meta = np.load(meta_path, allow_pickle=True).item() if meta_path.is_file() else None
    files = {}
    for name in splits:
        folder = image_set / f"{name}_images"
        if meta is not None:
            key = "train" if name == "training" else "test"
            pairs = zip(meta[f"{key}_img_concepts"], meta[f"{key}_img_files"])
            entries = [(str(f), folder / str(c) / str(f)) for c, f in pairs]
            absent = [p for _, p in entries if not p.is_file()]
            if absent:
                raise InputError(absent[0], f"listed in {meta_path.name} but missing ({len(absent)} files missing)")
        else:
            if not folder.is_dir():
                raise InputError(folder, "THINGS-EEG2 image folder not found")
            entries = [(p.name, p) for concept in sorted(d for d in folder.iterdir() if d.is_dir())
                       for p in sorted(concept.iterdir())
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        for file_name, path in entries:
            if file_name in files:
                raise InputError(path, "file name occurs twice in the THINGS image set")
            files[file_name] = path
    if not files:
        raise InputError(image_set, "no THINGS images found")
    return FileImageSet(files, "things-eeg2", root, extra={"split": split or "training+test"})


def read_ids_file(path, numeric: bool = False) -> list:
    """Stimulus IDs from a text file, one per line; the one reader of id lists in the package.

    ``#`` starts a comment anywhere on a line; blank lines are ignored; surrounding white space is stripped.
    ``.npy`` files (1-D array) are accepted too. ``numeric=True`` parses integers (NSD nsdIds).

    Parameters
    ----------
    path : str or Path
    numeric : bool

    Returns
    -------
    list of str (list of int with ``numeric``)

    Raises
    ------
    InputError
        If the file does not exist, or ``numeric`` and an id is not an integer.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ids file not found")
    if path.suffix == ".npy":
        values = [str(v) for v in np.load(path, allow_pickle=False).ravel().tolist()]
    else:
        values = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        values = [v for v in values if v]
    if numeric:
        try:
            return [int(v) for v in values]
        except ValueError as exc:
            raise InputError(path, f"ids must be integers (0-based nsdIds): {exc}") from exc
    return values


def parse_stimulus_spec(spec: str, ids_file=None) -> ImageSet:
    """Build an image set from a command-line spec.

    Specs: ``nsd:ROOT`` (NSD root or the hdf5 file), ``bold5000:ROOT``,
    ``things-eeg2:ROOT[:training|test]``, ``folder:DIR``. ``ids_file`` (one ID per line)
    restricts and orders the rows.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise InputError(spec, "stimulus spec must look like nsd:ROOT, bold5000:ROOT, things-eeg2:ROOT[:split] or folder:DIR")
    kind = kind.lower()
    if kind == "nsd":
        image_set = nsd_images(rest)
    elif kind == "bold5000":
        image_set = bold5000_images(rest)
    elif kind in ("things-eeg2", "things"):
        split = None
        head, _, tail = rest.rpartition(":")
        if head and tail in ("training", "test"):
            rest, split = head, tail
        image_set = things_images(rest, split)
    elif kind == "folder":
        image_set = folder_images(rest)
    else:
        raise InputError(spec, f"unknown stimulus set kind {kind!r} (nsd, bold5000, things-eeg2, folder)")
    if ids_file is not None:
        image_set = image_set.subset(read_ids_file(ids_file, numeric=isinstance(image_set, NSDImageSet)))
    return image_set


# --------------------------------------------------------------------------------------------------
# preprocessing and loading
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Model input preprocessing.

    Workers: uint8 (H, W, 3) -> uint8 (3, size[0], size[1]) by bilinear antialiased resize
    (``torchvision.transforms.v2.functional.resize`` on the uint8 tensor, no crop).
    Device: ``x.float() / 255``, then ``(x - mean) / std`` per channel.
    """

    size: tuple = (224, 224)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    antialias: bool = True

    def resize_uint8(self, image: np.ndarray):
        """uint8 (H, W, 3) ndarray -> uint8 torch tensor (3, size[0], size[1])."""
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        if tuple(tensor.shape[1:]) == tuple(self.size):
            return tensor.contiguous()
        mode = InterpolationMode(self.interpolation)
        return TF.resize(tensor, list(self.size), interpolation=mode, antialias=self.antialias).contiguous()

    def normalise(self, batch_uint8, dtype=None):
        """uint8 (B, 3, H, W) tensor on any device -> normalised float tensor (same device)."""
        import torch

        dtype = dtype or torch.float32
        x = batch_uint8.to(dtype=torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).to(dtype)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "antialias": self.antialias,
                "resize_on": "uint8", "crop": None, "scale": "x/255"}


class ImageDataset:
    """``torch.utils.data.Dataset`` over an :class:`ImageSet`: item i -> (i, uint8 tensor (3, H, W)).

    ``rows`` selects positions of the image set (default all); item i is row ``rows[i]``.
    """

    def __init__(self, image_set: ImageSet, preprocessing: Preprocessing | None = None, rows=None):
        self.image_set = image_set
        self.preprocessing = preprocessing or Preprocessing()
        self._ids = image_set.ids
        self.rows = list(range(len(image_set))) if rows is None else list(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        image = self.image_set.load(self._ids[row])
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(self._ids[row], f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return row, self.preprocessing.resize_uint8(image)


def make_loader(image_set: ImageSet, preprocessing: Preprocessing | None = None, batch_size: int = 64,
                workers: int = 4, pin_memory: bool = False, rows=None, batch_sampler=None):
    """A DataLoader yielding ``(rows int64 (B,), images uint8 (B, 3, H, W))`` in row order.

    Parameters
    ----------
    batch_sampler : iterable of lists of dataset positions, optional
        Custom batching (e.g. only unfinished chunks); overrides ``batch_size``.
    """
    import torch

    dataset = ImageDataset(image_set, preprocessing, rows)
    kwargs = dict(num_workers=workers, pin_memory=pin_memory)
    if workers > 0:
        kwargs.update(persistent_workers=False, prefetch_factor=4)
    if batch_sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **kwargs)
