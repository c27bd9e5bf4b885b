"""Reading NIfTI files of the dataset releases: headers, small 3-D volumes (masks, ROIs, ncsnr) and the voxels
of big 4-D beta files, streamed a few volumes at a time (plain or gzip)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError

#: read this many volumes of a 4-D NIfTI at once (bounded buffer: block x one volume)
VOLUMES_PER_READ = 16


def load_nifti_header(path):
    """nibabel image (lazy) of a NIfTI file; InputError if unreadable."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        img = nib.load(str(path))
        img.header.get_data_dtype()
        return img
    except Exception as exc:
        raise InputError(path, f"cannot read NIfTI header ({type(exc).__name__}: {exc})") from exc


#: largest difference (mm) between two affines that still counts as the same grid: NIfTI keeps the affine
#: in float32, and one voxel is 1-2 mm
AFFINE_TOLERANCE_MM = 1e-3


def check_real_dtype(path, dtype) -> np.dtype:
    """The data dtype of an image file, refused (InputError) unless real numbers (int, uint or float)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise InputError(path, f"data type {dtype} is not a real number type (int, uint or float)")
    return dtype


def check_affine(path, affine, reference_affine, reference) -> None:
    """Refuse an image whose voxel-to-world affine differs from the reference grid's (another space).

    Parameters
    ----------
    path : path-like
        The image checked (named in the error).
    affine, reference_affine : (4, 4) arrays
    reference : str
        What defines the grid (named in the error), e.g. the mask file.
    """
    diff = float(np.max(np.abs(np.asarray(affine, dtype=np.float64) - np.asarray(reference_affine, dtype=np.float64))))
    if not diff <= AFFINE_TOLERANCE_MM:
        raise InputError(path, f"affine differs from that of {reference} by up to {diff:.4g} mm (another space "
                               "or a shifted origin); same shape is not the same grid")


def load_volume(path, expect_shape=None, expect_affine=None, reference=None, finite=True):
    """Read a small 3-D NIfTI (mask / ROI / ncsnr) as float64 ndarray and its affine.

    Parameters
    ----------
    path : path-like
    expect_shape : (X, Y, Z), optional
        Refused if the volume has another shape.
    expect_affine : (4, 4) array, optional
        Refused if the volume's affine differs (:func:`check_affine`); ``reference`` names the grid's source.
    finite : bool
        Refuse non-finite values (masks and label volumes hold numbers); False keeps them.

    Returns
    -------
    data : float64 ndarray (X, Y, Z)
    affine : float64 ndarray (4, 4)
    """
    img = load_nifti_header(path)
    shape = tuple(int(v) for v in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"expected a 3-D volume, got shape {img.shape}")
    if expect_shape is not None and shape != tuple(expect_shape):
        raise InputError(path, f"grid {shape} differs from the betas grid {tuple(expect_shape)}")
    check_real_dtype(path, img.get_data_dtype())
    affine = np.asarray(img.affine, dtype=np.float64)
    if expect_affine is not None:
        check_affine(path, affine, expect_affine, reference or "the betas grid")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float64)).reshape(shape)
    except Exception as exc:
        raise InputError(path, f"cannot read volume data, corrupt or truncated ({type(exc).__name__}: {exc})") from exc
    if finite and not np.isfinite(data).all():
        raise InputError(path, f"{int((~np.isfinite(data)).sum())} non-finite values; a mask or label volume "
                               "holds numbers")
    return data, affine


def fortran_flat_index(voxel_ijk, grid_shape):
    """Flat index of voxels in a Fortran-ordered (x fastest) volume, as stored in NIfTI files."""
    x, y, _ = grid_shape
    ijk = np.asarray(voxel_ijk, dtype=np.int64)
    return ijk[:, 0] + x * (ijk[:, 1] + y * ijk[:, 2])


class GzipStream:
    """Sequential reader of a (multi-member) gzip file with zlib and large input reads.

    Faster than :class:`gzip.GzipFile` for big sequential reads; zlib verifies each member's CRC-32
    and length when the member ends (call :meth:`drain` after the last read to reach it).
    """

    def __init__(self, fh, path, in_chunk=4 << 20):
        self.fh, self.path, self.in_chunk = fh, path, in_chunk
        self.d = zlib.decompressobj(wbits=31)
        self.in_buf = b""
        self.pending = memoryview(b"")
        self.pos = 0

    def _more(self, want):
        while True:
            if self.d.eof:
                rest = self.d.unused_data or self.fh.read(self.in_chunk)
                if not rest:
                    return b""
                self.d = zlib.decompressobj(wbits=31)
                self.in_buf = rest
            if not self.in_buf:
                self.in_buf = self.fh.read(self.in_chunk)
                if not self.in_buf:
                    raise InputError(self.path, "truncated gzip: the compressed stream ends early")
            out = self.d.decompress(self.in_buf, want)
            self.in_buf = self.d.unconsumed_tail
            if out:
                return out

    def readinto(self, view):
        n, got = len(view), 0
        while got < n:
            avail = len(self.pending) - self.pos
            if avail:
                k = min(n - got, avail)
                view[got:got + k] = self.pending[self.pos:self.pos + k]
                got += k
                self.pos += k
            else:
                self.pending = memoryview(self._more(max(n - got, 1 << 16)))
                self.pos = 0
                if not len(self.pending):
                    break
        return got

    def drain(self):
        """Read to the end of the file (verifies the CRC of the last member)."""
        self.pending, self.pos = memoryview(b""), 0
        while self._more(1 << 20):
            pass


def _readinto_full(fh, view, path):
    got = 0
    n = len(view)
    while got < n:
        k = fh.readinto(view[got:])
        if not k:
            raise InputError(path, f"file ends early: truncated (needed {n - got} more bytes of image data)")
        got += k


def read_nifti_voxels(path, flat_index, n_volumes=None, volumes_per_read=VOLUMES_PER_READ, volume_sum=None):
    """Stream a 4-D NIfTI (``.nii`` or ``.nii.gz``) and keep only some voxels.

    The file is read sequentially, a few volumes at a time, so memory is the output plus a small
    buffer (``volumes_per_read`` volumes). Raw stored values are returned (no ``scl_slope``).

    Parameters
    ----------
    path : Path
    flat_index : int (n_selected,)
        Fortran-order flat voxel indices (:func:`fortran_flat_index`).
    n_volumes : int, optional
        Expected length of the 4th axis.
    volume_sum : float64 ndarray (X*Y*Z,), optional
        Every volume read (all voxels, raw values, NaN skipped) is added into it, Fortran-flat: the whole
        grid's sum over trials in the same pass (the store's mean image, :mod:`brainalign.ingest.mean_volume`).

    Returns
    -------
    ndarray (n_volumes, n_selected) in the file's dtype (native byte order)
    """
    path = Path(path)
    img = load_nifti_header(path)
    shape = tuple(int(v) for v in img.shape)
    if len(shape) != 4:
        raise InputError(path, f"expected a 4-D (X, Y, Z, trials) image, got shape {shape}")
    if n_volumes is not None and shape[3] != n_volumes:
        raise InputError(path, f"{shape[3]} volumes, expected {n_volumes}")
    proxy = img.dataobj
    dtype = np.dtype(proxy.dtype)
    offset = int(proxy.offset)  # header.get_data_offset() can read 0 for single-file images
    if getattr(proxy, "order", "F") != "F":
        raise InputError(path, "unsupported NIfTI data order (expected Fortran order)")
    vol_items = shape[0] * shape[1] * shape[2]
    vol_bytes = vol_items * dtype.itemsize
    n_t = shape[3]
    out = np.empty((n_t, len(flat_index)), dtype=dtype.newbyteorder("="))
    block = max(1, min(volumes_per_read, n_t))
    buf = bytearray(block * vol_bytes)
    try:
        with open(path, "rb") as raw_fh:
            fh = GzipStream(raw_fh, path) if path.name.endswith(".gz") else raw_fh
            _readinto_full(fh, memoryview(bytearray(offset)), path)
            for t0 in range(0, n_t, block):
                nb = min(block, n_t - t0)
                view = memoryview(buf)[: nb * vol_bytes]
                _readinto_full(fh, view, path)
                vols = np.frombuffer(view, dtype=dtype).reshape(nb, vol_items)
                out[t0:t0 + nb] = vols[:, flat_index]
                if volume_sum is not None:
                    volume_sum += (np.nansum(vols, axis=0, dtype=np.float64) if dtype.kind == "f"
                                   else vols.sum(axis=0, dtype=np.float64))
                del vols, view
            if isinstance(fh, GzipStream):
                fh.drain()
    except InputError:
        raise
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(path, f"corrupt or truncated file ({type(exc).__name__}: {exc})") from exc
    return out


def nifti_scaling(img):
    """(slope, inter) from the header, or None if the header sets no scaling."""
    slope, inter = img.header.get_slope_inter()
    if slope is None or not np.isfinite(slope) or slope == 0 or (slope == 1 and not inter):
        return None
    return float(slope), float(inter or 0.0)
