"""Deterministic NIfTI-1 writing (gzip mtime 0), including volume-by-volume streaming for big 4D files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np


def centred_affine(shape, voxel_size: float) -> np.ndarray:
    """nsdcode-style affine: diag(res) with the origin at the volume centre. float64 (4, 4)."""
    aff = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    aff[:3, 3] = -voxel_size * (np.asarray(shape[:3], float) - 1) / 2
    return aff


def _header(shape, dtype, affine, tr=None) -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.dtype(dtype))
    hdr.set_data_shape(tuple(int(s) for s in shape))
    zooms = list(np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)))
    if len(shape) == 4:
        zooms.append(float(tr) if tr is not None else 1.0)
    hdr.set_zooms(zooms)
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    hdr["vox_offset"] = 352
    # scl_slope / scl_inter stay NaN: no intensity scaling, the stored integers are the data
    return hdr


class _Writer:
    def __init__(self, path, shape, dtype, affine, tr=None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self._raw = open(self.path, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=1, mtime=0)
        _header(shape, self.dtype, affine, tr).write_to(self._gz)

    def write(self, volume: np.ndarray) -> None:
        self._gz.write(np.asarray(volume, dtype=self.dtype).tobytes(order="F"))

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def write_nifti(path, data: np.ndarray, affine, tr=None) -> None:
    """Write a whole 3D/4D array (stored as its dtype, no scaling) to ``path`` (.nii.gz)."""
    w = _Writer(path, data.shape, data.dtype, affine, tr)
    try:
        if data.ndim == 4:
            for t in range(data.shape[3]):
                w.write(data[..., t])
        else:
            w.write(data)
    finally:
        w.close()


def stream_nifti(path, shape, dtype, affine, volumes, tr=None) -> None:
    """Write a 4D NIfTI from an iterable of 3D volumes (last axis), holding one volume at a time."""
    w = _Writer(path, shape, dtype, affine, tr)
    try:
        n = 0
        for vol in volumes:
            w.write(vol)
            n += 1
        if n != shape[3]:
            raise ValueError(f"{path}: got {n} volumes, expected {shape[3]}")
    finally:
        w.close()
