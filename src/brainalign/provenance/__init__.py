"""Provenance: code fingerprints for rerun triggers, and run manifests for shareable results."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

#: distributions whose versions a results folder records
TRACKED_DISTRIBUTIONS = (
    "brainalign", "snakemake", "torch", "torchvision", "numpy", "scipy", "pandas", "pyarrow", "zarr",
    "nibabel", "nilearn", "h5py", "scikit-learn", "himalaya", "rsatoolbox",
)


def code_fingerprint(*parts: str) -> str:
    """Hash of the package source files a stage runs.

    Used as a rule ``params`` entry so that Snakemake's ``params`` rerun trigger fires when the library
    code of a stage changes, not only when the rule text does.

    Parameters
    ----------
    *parts : str
        Paths relative to ``src/brainalign`` (a module file such as ``"store.py"`` or a subpackage
        directory such as ``"ingest"``). Shared helpers (``_io.py``, ``errors.py``) are always included.

    Returns
    -------
    str
        First 16 hex digits of a SHA-256 over the sorted file names and contents.
    """
    h = hashlib.sha256()
    files = set()
    for part in ("_io.py", "errors.py", *parts):
        p = PACKAGE_ROOT / part
        if p.is_dir():
            files.update(f for f in p.rglob("*.py"))
        elif p.exists():
            files.add(p)
        else:
            raise FileNotFoundError(f"code_fingerprint: {p} does not exist")
    for f in sorted(files):
        h.update(str(f.relative_to(PACKAGE_ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def package_versions() -> dict:
    """Installed versions of the distributions that shape the results."""
    out = {"python": platform.python_version()}
    for name in TRACKED_DISTRIBUTIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path=PACKAGE_ROOT) -> str | None:
    """The git commit of the checkout the code runs from (with ``-dirty`` if modified), or None."""
    try:
        rev = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
