"""Torch helpers of the RSA core: numpy/tensor conversion on a device, and CPU threads for small work."""

from __future__ import annotations

import numpy as np
import torch

from ..devices import resolve_device


def as_tensor(x, device=None, dtype=torch.float32) -> torch.Tensor:
    """Convert a numpy array / tensor / sequence to a tensor of ``dtype`` on ``device``.

    ``device`` follows :func:`brainalign.devices.resolve_device` (``None``/"auto": CUDA when available).
    A tensor input keeps its own device when ``device`` is None.
    """
    if isinstance(x, torch.Tensor):
        dev = x.device if device is None else resolve_device(device)
        return x.to(device=dev, dtype=dtype)
    arr = np.asarray(x)
    if not arr.flags.writeable:  # e.g. pandas copy-on-write views; torch warns on read-only memory
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype, device=resolve_device(device))


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
