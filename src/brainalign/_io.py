"""Atomic outputs, file fingerprints and progress bars used by every stage."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path

from tqdm.auto import tqdm


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(path):
    """Write a file or directory under a temporary name and rename it into place at the end.

    A killed or failed job therefore never leaves something at ``path`` that looks complete.
    The temporary sibling is ``.<name>.tmp-<pid>`` in the same directory (same filesystem, so the
    final rename is atomic for files; for directories an existing target is removed first).

    Parameters
    ----------
    path : str or Path
        Final output path (file or directory, e.g. a zarr store).

    Yields
    ------
    Path
        Temporary path to write to. It does not exist on entry.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise RuntimeError(f"{path}: nothing was written to the temporary path {tmp}")
    if path.exists() and tmp.is_dir():
        _remove(path)
    os.replace(tmp, path)


def file_fingerprint(path) -> dict:
    """Size and modification time of a file, for provenance records."""
    st = Path(path).stat()
    return {"path": str(path), "size": st.st_size, "mtime": st.st_mtime}


def sha256sum(path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr; silent when ``BRAINALIGN_PROGRESS=0``."""
    kwargs.setdefault("disable", os.environ.get("BRAINALIGN_PROGRESS", "1") == "0")
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
