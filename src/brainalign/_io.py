"""Atomic outputs, file fingerprints and progress bars used by every stage."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .errors import InputError

log = logging.getLogger(__name__)

#: file that every directory written through :func:`atomic_output` carries: "brainalign wrote this", so a
#: later run may replace it. Constant content, so that result checksums do not depend on who wrote them.
OUTPUT_MARKER = ".brainalign-output"
_MARKER_TEXT = "written by brainalign (atomic_output); a later run may replace this folder\n"
#: kinds of hidden siblings ``.<name>.<kind>-<host>-<pid>``: a write in progress, an old output set aside
_SIBLING_KINDS = ("tmp", "old")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _host() -> str:
    """This machine's short host name (no dots, so that temporary names keep their suffix-free form)."""
    return (socket.gethostname().split(".")[0] or "localhost").replace("-", "_")


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{_host()}-{os.getpid()}")


def _parse_sibling(path: Path, name: str):
    """``(kind, host, pid)`` of a hidden sibling of output ``name`` (host "" for the old ``.tmp-<pid>`` form)."""
    for kind in _SIBLING_KINDS:
        prefix = f".{name}.{kind}-"
        if path.name.startswith(prefix):
            host, _, pid = path.name[len(prefix):].rpartition("-")
            if pid.isdigit():
                return kind, host, int(pid)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover_output(path) -> None:
    """Finish or undo what a killed :func:`atomic_output` left beside ``path``.

    Hidden siblings of this host whose process is dead are stale: a temporary write (``.<name>.tmp-*``) is
    removed; an old output set aside during a replacement (``.<name>.old-*``) is put back when ``path`` is
    missing (the kill fell between the two renames) and removed otherwise. Siblings of live processes and of
    other hosts (a shared filesystem) are left alone.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return
    stale = []
    for entry in parent.iterdir():
        parsed = _parse_sibling(entry, path.name)
        if parsed is None:
            continue
        kind, host, pid = parsed
        if host not in ("", _host()) or _pid_alive(pid):
            continue
        stale.append((kind != "old", entry))  # old ones first: they may have to be put back
    for _, entry in sorted(stale):
        if entry.name.startswith(f".{path.name}.old-") and not os.path.lexists(path):
            log.warning("%s: restoring the previous output from %s (a replacement was interrupted)", path, entry.name)
            os.rename(entry, path)
        else:
            log.info("%s: removing %s left by a killed run", path, entry.name)
            _remove(entry)


def _is_brainalign_zarr(path: Path) -> bool:
    """A zarr group whose attrs name a brainalign format (stores and caches written before markers existed)."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    fmt = (meta.get("attributes") or {}).get("format") if isinstance(meta, dict) else None
    return isinstance(fmt, str) and fmt.startswith("brainalign.")


def is_our_output(path, legacy=None) -> bool:
    """Whether an existing directory was written by brainalign (so a new output may replace it).

    True for a directory with the :data:`OUTPUT_MARKER`, a zarr group in a brainalign format, or one that
    ``legacy(path)`` (a stage's own test for outputs written before the marker existed) accepts.
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    return (path / OUTPUT_MARKER).is_file() or _is_brainalign_zarr(path) or bool(legacy and legacy(path))


def check_replaceable(path, directory: bool | None = None, legacy=None) -> None:
    """Refuse (InputError) to write ``path`` where that would replace something brainalign did not write.

    Absent paths and empty folders may be written. An existing folder must be one of our outputs
    (:func:`is_our_output`); an existing regular file may be replaced by a file, never by a folder; a
    regular file named ``*.zarr`` is never ours (stores are folders); symbolic links are never replaced.

    Parameters
    ----------
    path : Path
    directory : bool, optional
        Whether the new output is a folder (None: not known yet).
    legacy : callable, optional
        ``legacy(path) -> bool`` for a stage's outputs written before markers existed.
    """
    path = Path(path)
    if path.is_symlink():
        raise InputError(path, "is a symbolic link; refusing to replace it (remove it or choose another output)")
    if not path.exists():
        return
    if path.is_dir():
        if directory is False:
            if any(path.iterdir()):
                raise InputError(path, "is a folder; refusing to replace it with a file")
            return
        if any(path.iterdir()) and not is_our_output(path, legacy):
            raise InputError(path, f"exists and was not written by brainalign (no {OUTPUT_MARKER} marker); "
                                   "refusing to replace it (remove it or choose another output)")
        return
    if directory or path.suffix == ".zarr":
        raise InputError(path, "is a regular file, not an output folder of brainalign; refusing to replace it")


# renameat2(2) flag: swap two paths atomically (Linux >= 3.15; ext4, xfs, btrfs, tmpfs; not NFS)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the OS or filesystem cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace_folder(tmp: Path, path: Path) -> None:
    """Put the complete folder ``tmp`` at ``path``, which holds a complete old folder.

    At every instant ``path`` holds the old or the new folder: the two are swapped atomically where the
    filesystem allows it; otherwise the old one is renamed aside and the new one renamed in (a kill in
    between leaves ``path`` missing, and :func:`recover_output` puts the old one back on the next run).
    The old folder is deleted last.
    """
    if _exchange(tmp, path):
        _remove(tmp)  # now the old folder; a kill here leaves a stale .tmp- sibling, removed on the next run
        return
    aside = _sibling(path, "old")
    os.rename(path, aside)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _remove(aside)


@contextlib.contextmanager
def atomic_output(path, legacy=None):
    """Write a file or directory under a temporary name and move it into place at the end.

    A killed or failed job therefore never leaves something at ``path`` that looks complete, and never
    replaces what brainalign did not write:

    - before writing, temporary siblings of killed runs are cleaned up (:func:`recover_output`) and
      ``path`` is checked (:func:`check_replaceable`): an existing folder must be an earlier brainalign
      output (it carries the :data:`OUTPUT_MARKER`), a regular file is never replaced by a folder;
    - the output is written to ``.<name>.tmp-<host>-<pid>`` in the same directory (same filesystem);
    - a finished folder gets the marker, then replaces ``path`` so that ``path`` always holds the complete
      old or the complete new output (:func:`_replace_folder`); a file is renamed over ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Final output path (file or directory, e.g. a zarr store).
    legacy : callable, optional
        ``legacy(path) -> bool``: accepts a stage's outputs written before markers existed.

    Yields
    ------
    Path
        Temporary path to write to. It does not exist on entry.

    Raises
    ------
    InputError
        If ``path`` holds something brainalign did not write, or its folder cannot be created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(path.parent, "cannot create the output folder: part of its path is a file") from None
    except OSError as exc:
        raise InputError(path.parent, f"cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(path.parent, "output folder is not writable")
    recover_output(path)
    check_replaceable(path, directory=True if path.suffix == ".zarr" else None, legacy=legacy)
    tmp = _sibling(path, "tmp")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{path}: nothing was written to the temporary path {tmp}")
        is_dir = tmp.is_dir()
        check_replaceable(path, directory=is_dir, legacy=legacy)  # the path may have changed meanwhile
        if is_dir:
            (tmp / OUTPUT_MARKER).write_text(_MARKER_TEXT)
            if path.is_dir() and any(path.iterdir()):
                _replace_folder(tmp, path)
                return
        os.replace(tmp, path)  # atomic; also over an empty folder
    except BaseException:
        _remove(tmp)
        raise


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
