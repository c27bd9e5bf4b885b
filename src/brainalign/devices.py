"""Torch device resolution, one rule for every stage."""

from __future__ import annotations

from .errors import InputError


def resolve_device(device=None, local_rank: int | None = None):
    """The torch device a stage runs on.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` or ``"auto"``: CUDA when available, else CPU. Anything else is passed to
        ``torch.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    local_rank : int, optional
        Under ``torchrun``: a bare ``"cuda"`` (or ``"auto"`` resolving to CUDA) becomes ``cuda:<local_rank>``.

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        When CUDA is asked for and none is available (named ``--device``).
    """
    import torch

    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", f"{device} requested but CUDA is not available")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    return device
