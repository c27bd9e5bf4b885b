"""The inputs of an ingest run: checking the dataset root, the output store path and the session selection,
and recording them with the files read (the store's ``provenance`` attribute)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import check_replaceable
from ..errors import InputError


def check_root(root) -> Path:
    """The dataset root as a Path; InputError if it is not a directory."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset root not found (not a directory)")
    return root


def check_out(out) -> Path:
    """The output store path as a Path; InputError unless it is named ``*.zarr`` and replaceable.

    Checked before any data are read: a path holding something brainalign did not write (a user's folder,
    a regular file named ``*.zarr``) is refused (``_io.check_replaceable``).
    """
    out = Path(out)
    if out.suffix != ".zarr":
        raise InputError(out, "output store must be a directory named *.zarr")
    check_replaceable(out, directory=True)
    return out


def parse_sessions(spec):
    """Parse a session selection: None, an int list, or a string like ``"1,2,5-8"`` -> sorted ints."""
    if spec is None or spec == "" or spec == "all":
        return None
    if isinstance(spec, (list, tuple, set)):
        items = []
        for s in spec:
            items.extend(parse_sessions(s) if isinstance(s, str) else [int(s)])
        return sorted(set(items))
    if isinstance(spec, (int, np.integer)):
        return [int(spec)]
    out = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        try:
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                out.update(range(min(a, b), max(a, b) + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise InputError("--sessions", f"cannot parse {spec!r} (use e.g. 1,2,5-8)") from None
    if not out or min(out) < 1:
        raise InputError("--sessions", f"{spec!r}: sessions are 1-based positive integers")
    return sorted(out)


def select_sessions(found: dict, wanted, where):
    """Pick the wanted sessions (default all found) from ``{session: path}``; InputError if missing."""
    if not found:
        raise InputError(where, "no sessions found")
    if wanted is None:
        return sorted(found)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise InputError(where, f"sessions {missing} not found (found {sorted(found)})")
    return list(wanted)


def provenance(files, options, command, root):
    """Provenance record of an ingest: the source files read, the options, the package version.

    Each source file is recorded by its absolute, resolved path, the dataset root it was found under
    (resolved) and its path relative to that root (None for a file outside it, e.g. a custom mask), with
    size and mtime: so a manifest built from any working directory finds the files again.
    """
    root = Path(root).resolve()
    seen, records = set(), []
    for f in files:
        p = Path(f).resolve()
        if p in seen:
            continue
        seen.add(p)
        st = p.stat()
        records.append({"path": str(p), "root": str(root),
                        "relpath": p.relative_to(root).as_posix() if p.is_relative_to(root) else None,
                        "size": st.st_size, "mtime": st.st_mtime})
    return {
        "command": command,
        "root": str(root),
        "source_files": records,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
        "package": "brainalign",
        "package_version": __version__,
    }
