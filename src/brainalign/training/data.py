"""Training data: brain targets from a voxel store and preprocessed image tensors from an image set."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from .._io import progress
from ..errors import InputError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BrainTargets:
    """Repetition-averaged, reduced brain responses split into train / val / test stimuli.

    Attributes
    ----------
    train_ids, val_ids, test_ids : ndarray (n,)
        Stimulus IDs as in the store (test = the store's ``shared`` stimuli, never used for selection).
    y_train, y_val, y_test : float32 ndarray (n, n_out)
    voxel_mask : bool ndarray (n_voxels,)
    mean, std : float32 ndarray (n_voxels_sel,)
        Voxel z-scoring statistics (training images only).
    components : float32 ndarray (n_out, n_voxels_sel) or None
        PCA axes (training images only); ``None`` when raw voxels are the targets.
    explained_variance_ratio : ndarray (n_out,) or None
    """

    train_ids: np.ndarray
    val_ids: np.ndarray
    test_ids: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    voxel_mask: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray | None = None
    pca_mean: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return self.y_train.shape[1]


def roi_voxel_mask(store, roi: str) -> np.ndarray:
    """Voxel mask for ``roi``: ``"all"``, one name accepted by ``store.roi_mask`` or a comma-separated union."""
    n_vox = store.betas.shape[1]
    if roi in ("all", "", None):
        return np.ones(n_vox, dtype=bool)
    mask = np.zeros(n_vox, dtype=bool)
    available = store.roi_names()
    for name in (r.strip() for r in roi.split(",")):
        try:
            mask |= np.asarray(store.roi_mask(name), dtype=bool)
        except (KeyError, ValueError, InputError):
            raise InputError(f"roi={name}", f"not in the store; available: {', '.join(available[:20])}") from None
    if not mask.any():
        raise InputError(f"roi={roi}", "selects no voxels in this store")
    return mask


def shared_stimuli(store) -> set:
    """Stimulus IDs flagged ``shared`` in the store's trial table (the test set)."""
    t = store.trials
    return set(t.loc[t["shared"].astype(bool), "stimulus"].tolist())


def split_train_val(ids, val_fraction: float, seed: int):
    """Seeded random split of training stimuli -> (train_ids, val_ids); order sorted within each part."""
    ids = np.asarray(ids)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ids))
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = max(1, min(n_val, len(ids) - 1))
    val = np.sort(ids[perm[:n_val]])
    train = np.sort(ids[perm[n_val:]])
    return train, val


def prepare_targets(store, roi: str = "nsdgeneral", n_components: int = 1024, zscore_voxels: bool = True,
                    val_fraction: float = 0.1, seed: int = 0, max_train_images: int = 0,
                    max_test_images: int = 0, available_ids=None) -> BrainTargets:
    """Brain targets for ReAlnet-fMRI from one subject's voxel store.

    Repetitions are averaged per stimulus; non-shared stimuli are split into train/val (seeded);
    shared stimuli are the test set. Voxel z-scoring and PCA are fitted on the training images only
    and applied unchanged to val and test.

    Parameters
    ----------
    store : brainalign.store voxel store
    roi : str
        See :func:`roi_voxel_mask`.
    n_components : int
        PCA components (clipped to the number of training images and voxels); 0 = raw voxels.
    available_ids : iterable, optional
        Stimulus IDs that have images (as ``str``); others are dropped with a log message.

    Raises
    ------
    InputError
        No usable stimuli, bad ROI.
    """
    mask = roi_voxel_mask(store, roi)
    ids, y, _ = store.mean_by_stimulus(voxels=mask)
    ids = np.asarray(ids)
    y = np.asarray(y, dtype=np.float32)
    if available_ids is not None:
        have = {str(i) for i in available_ids}
        keep = np.array([str(i) in have for i in ids], dtype=bool)
        if not keep.all():
            log.info("dropping %d stimuli without images", int((~keep).sum()))
        ids, y = ids[keep], y[keep]
    shared = shared_stimuli(store)
    is_test = np.array([i in shared for i in ids.tolist()], dtype=bool)
    pool = np.flatnonzero(~is_test)
    test_idx = np.flatnonzero(is_test)
    if max_train_images:
        pool = np.sort(np.random.default_rng(seed).permutation(pool)[:max_train_images])
    if max_test_images:
        test_idx = test_idx[:max_test_images]
    if len(pool) < 2:
        raise InputError("store", f"only {len(pool)} non-shared stimuli with images; need at least 2 to train")
    train_pos, val_pos = split_train_val(pool, val_fraction, seed)
    y_tr = y[train_pos]
    if zscore_voxels:
        mean = y_tr.mean(0)
        std = y_tr.std(0)
        std[std == 0] = 1.0
    else:
        mean = np.zeros(y.shape[1], np.float32)
        std = np.ones(y.shape[1], np.float32)

    def z(a):
        return ((a - mean) / std).astype(np.float32)

    components = pca_mean = evr = None
    if n_components:
        from sklearn.decomposition import PCA

        k = int(min(n_components, len(train_pos), y.shape[1]))
        pca = PCA(n_components=k, svd_solver="full", random_state=seed).fit(z(y_tr))
        components = pca.components_.astype(np.float32)
        pca_mean = pca.mean_.astype(np.float32)
        evr = pca.explained_variance_ratio_

        def reduce(a):
            return ((z(a) - pca_mean) @ components.T).astype(np.float32)
    else:
        reduce = z
    return BrainTargets(
        train_ids=ids[train_pos], val_ids=ids[val_pos], test_ids=ids[test_idx],
        y_train=reduce(y[train_pos]), y_val=reduce(y[val_pos]) if len(val_pos) else np.zeros((0, 0), np.float32),
        y_test=reduce(y[test_idx]) if len(test_idx) else np.zeros((0, 0), np.float32),
        voxel_mask=mask, mean=mean.astype(np.float32), std=std.astype(np.float32),
        components=components, pca_mean=pca_mean, explained_variance_ratio=evr,
        info={"roi": roi, "n_voxels": int(mask.sum()), "n_train": len(train_pos), "n_val": len(val_pos),
              "n_test": len(test_idx)},
    )


def shuffle_pairs(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled-pairing control: rows of ``y`` permuted with a seeded derangement-like permutation.

    Returns
    -------
    y_shuffled : ndarray, same shape
    perm : int ndarray (n,)  with ``y_shuffled[i] = y[perm[i]]``; no fixed points when n > 1.
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    if n < 2:
        return y.copy(), np.arange(n)
    perm = rng.permutation(n)
    # remove fixed points by a cyclic shift of them among themselves (or swap a lone one)
    fixed = np.flatnonzero(perm == np.arange(n))
    if len(fixed) > 1:
        perm[fixed] = perm[np.roll(fixed, 1)]
    elif len(fixed) == 1:
        i = fixed[0]
        j = (i + 1) % n
        perm[i], perm[j] = perm[j], perm[i]
    return y[perm], perm


def preprocess_image(img: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 Tensor (3, size, size): the feature stage's resize (bilinear, antialiased,
    no crop; ``brainalign.stimuli.Preprocessing``), as ReAlnet (§1.4)."""
    from ..stimuli import Preprocessing

    img = np.array(img, dtype=np.uint8)  # writable copy
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return Preprocessing(size=(size, size)).resize_uint8(img[..., :3])


def normalize_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) with ImageNet mean/std."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def load_images(image_set, ids, size: int, desc: str = "images") -> torch.Tensor:
    """Preload images ``ids`` (store IDs, matched to the image set by ``str``) -> uint8 Tensor (n, 3, size, size)."""
    by_str = {str(i): i for i in image_set.ids}
    out = torch.empty((len(ids), 3, size, size), dtype=torch.uint8)
    for k, i in enumerate(progress(list(ids), desc=desc, leave=False)):
        key = by_str.get(str(i))
        if key is None:
            raise InputError(f"stimulus {i}", "not in the image set")
        out[k] = preprocess_image(image_set.load(key), size)
    return out


class PairDataset(torch.utils.data.Dataset):
    """(uint8 image (3, S, S), target float32 (n_out,), teacher label int64 ()) triples held in memory.

    Parameters
    ----------
    images : uint8 Tensor (n, 3, S, S)
    targets : float array (n, n_out)
    labels : int array (n,), optional
        The frozen teacher's pseudo-label of each image (computed once, see
        :func:`brainalign.training.realnet_train.teacher_labels`); ``-1`` is yielded when absent, and
        the teacher is then run on every batch.
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray, labels=None):
        if len(images) != len(targets):
            raise ValueError("images and targets differ in length")
        self.images = images
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        self.set_labels(labels)

    def set_labels(self, labels) -> None:
        """Attach (or with ``None`` remove) the cached teacher pseudo-labels, int (n,)."""
        if labels is None:
            self.labels = torch.full((len(self.images),), -1, dtype=torch.int64)
        else:
            labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
            if len(labels) != len(self.images):
                raise ValueError("images and labels differ in length")
            self.labels = labels

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.targets[i], self.labels[i]
