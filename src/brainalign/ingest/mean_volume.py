"""The subject's mean image a voxel store carries (``mean_volume``, the background of brain maps; docs/store.md).

The dataset's own mean image when the release has one on the betas' grid (NSD: ``mean.nii.gz`` of the space,
docs/datasets.md §1.9); otherwise the mean of the betas over the ingested trials, before z-scoring (percent
signal change), accumulated while the betas stream past: over the whole grid when they are read as whole
volumes (NIfTI files), over the selected voxels otherwise (NSD's HDF5 files).
"""

from __future__ import annotations

import numpy as np

from .nifti import load_volume


class MeanBeta:
    """Running mean of beta volumes over trials, in percent signal change.

    Parameters
    ----------
    grid : (X, Y, Z)
        The betas' grid; sums are kept Fortran-flat, as NIfTI stores voxels.
    """

    def __init__(self, grid):
        self.grid = tuple(int(v) for v in grid)
        self.sum = np.zeros(int(np.prod(self.grid)), dtype=np.float64)
        self.n_trials = 0
        self.whole_grid = True

    def session_buffer(self) -> np.ndarray:
        """A zeroed float64 (X*Y*Z,) array for ``read_nifti_voxels(..., volume_sum=...)`` to sum one session into."""
        return np.zeros_like(self.sum)

    def add_session_sum(self, raw_sum, n_trials: int, slope: float = 1.0, inter: float = 0.0) -> None:
        """Add one session's sum over its trials of the raw stored values of every voxel (float64 (X*Y*Z,)),
        converted to percent signal change with ``value = raw * slope + inter``."""
        self.sum += raw_sum * slope + n_trials * inter
        self.n_trials += int(n_trials)

    def add_voxels(self, block, flat_index) -> None:
        """Add a block of trials of the selected voxels only: float (n_trials, n_selected) in percent signal
        change, ``flat_index`` their Fortran-flat positions. The mean is then known in those voxels only."""
        self.sum[flat_index] += np.nansum(np.asarray(block, dtype=np.float64), axis=0)
        self.n_trials += len(block)
        self.whole_grid = False

    def volume(self) -> np.ndarray:
        """The mean, float32 (X, Y, Z) (0 where unknown or non-finite)."""
        mean = self.sum / max(self.n_trials, 1)
        return np.nan_to_num(mean).reshape(self.grid, order="F").astype(np.float32)

    def source(self) -> str:
        where = "the whole grid" if self.whole_grid else "the stored voxels"
        return f"mean beta over {self.n_trials} trials before z-scoring (percent signal change), {where}"


def read_mean_image(path, grid, affine, reference: str) -> np.ndarray:
    """A release's mean image on the betas' grid (refused if another grid): float32 (X, Y, Z), NaN as 0."""
    volume, _ = load_volume(path, expect_shape=grid, expect_affine=affine, reference=reference, finite=False)
    return np.nan_to_num(volume).astype(np.float32)
