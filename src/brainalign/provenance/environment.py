"""The software a results folder was made with: package versions and the git commit of the code."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess

from .code import PACKAGE_ROOT

#: distributions whose versions a results folder records
TRACKED_DISTRIBUTIONS = (
    "brainalign", "snakemake", "torch", "torchvision", "numpy", "scipy", "pandas", "pyarrow", "zarr",
    "nibabel", "nilearn", "h5py", "scikit-learn", "himalaya", "rsatoolbox",
)


def package_versions() -> dict:
    """Installed versions of the distributions that shape the results (None where not installed)."""
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
