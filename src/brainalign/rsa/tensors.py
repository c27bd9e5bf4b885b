"""Torch helpers of the RSA core: numpy/tensor conversion on a device, and CPU threads for small work."""

from __future__ import annotations

import numpy as np
import torch

from ..devices import resolve_device


#: numpy dtype of each torch dtype the RSA core converts to
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
                 torch.int64: np.int64, torch.int32: np.int32, torch.bool: np.bool_}


def as_numpy_for_torch(x, dtype=None) -> np.ndarray:
    """``x`` as a numpy array that ``torch.from_numpy`` accepts, whatever its layout.

    torch refuses negative strides (``a[::-1]``) and non-native byte order (``>f8``), and warns on read-only
    memory (pandas copy-on-write views, ``np.broadcast_to``); such arrays are copied, others pass unchanged.

    Parameters
    ----------
    x : array-like
    dtype : torch.dtype, optional
        Convert to the matching numpy dtype on the way (one copy at most).

    Returns
    -------
    ndarray, native byte order, non-negative strides, writeable
    """
    arr = np.asarray(x)
    target = _NUMPY_DTYPES.get(dtype)
    if target is not None and arr.dtype != target:
        arr = arr.astype(target)  # a fresh C-ordered, native, writeable copy
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = np.array(arr, order="C", copy=True)
    return arr


def as_tensor(x, device=None, dtype=torch.float32) -> torch.Tensor:
    """Convert a numpy array / tensor / sequence to a tensor of ``dtype`` on ``device``.

    ``device`` follows :func:`brainalign.devices.resolve_device` (``None``/"auto": CUDA when available).
    A tensor input keeps its own device when ``device`` is None. Any numpy layout is accepted (negative
    strides, Fortran order, big-endian, read-only; see :func:`as_numpy_for_torch`).
    """
    if isinstance(x, torch.Tensor):
        dev = x.device if device is None else resolve_device(device)
        return x.to(device=dev, dtype=dtype)
    return torch.as_tensor(as_numpy_for_torch(x, dtype), dtype=dtype, device=resolve_device(device))


def like_input(t: torch.Tensor, template):
    """Return ``t`` as a tensor if ``template`` is one, else as a numpy array."""
    if isinstance(template, torch.Tensor):
        return t
    return t.detach().cpu().numpy()


class small_work_threads:
    """Context manager: run torch CPU ops single-threaded when the work is small.

    Intra-op thread start-up dominates tiny tensor ops (and is very slow on a loaded machine), so
    below ``threshold`` elements the CPU thread count is set to 1 and restored afterwards.
    """

    def __init__(self, n_elements: int, device=None, threshold: int = 1 << 20):
        dev = resolve_device(device) if not isinstance(device, torch.device) else device
        self.active = dev.type == "cpu" and n_elements < threshold and torch.get_num_threads() > 1
        self.saved = None

    def __enter__(self):
        if self.active:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.set_num_threads(self.saved)
        return False
