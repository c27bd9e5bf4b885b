"""Packing a results folder for sharing and unpacking a received one (``brainalign export`` / ``verify``)."""

from __future__ import annotations

import json
import shutil
import tarfile
import zlib
from pathlib import Path

from .._io import atomic_output
from ..errors import InputError
from .manifest import MANIFEST_NAME, build_manifest, checksum_tree, list_files, to_json

#: archive names ``brainalign export`` writes
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def load_config(path) -> dict:
    """A pipeline config file, validated and with defaults filled in (``{}`` for None)."""
    if path is None:
        return {}
    from ..config import load_config_file, validate_config

    return validate_config(load_config_file(path), source=str(path))


def refresh_manifest(results, config: dict | None = None, workdir=".") -> dict:
    """Write ``RESULTS/manifest.json`` and return it.

    With ``config`` (or without an existing manifest) a new manifest is built (:func:`build_manifest`);
    otherwise the existing one keeps its config, inputs and job graph and only its output checksums are
    recomputed, so that they describe the folder as it is now.
    """
    results = Path(results)
    path = results / MANIFEST_NAME
    if config is None and path.is_file():
        manifest = json.loads(path.read_text())
        manifest["outputs"] = checksum_tree(results)
    else:
        manifest = build_manifest(results, config or {}, workdir)
    with atomic_output(path) as tmp:
        tmp.write_text(to_json(manifest) + "\n")
    return manifest


def export_results(results, out, report=None, configfile=None, workdir=".") -> dict:
    """Pack a results folder, its refreshed manifest and an HTML report into ``out`` (``*.tar.gz``).

    Parameters
    ----------
    results : path-like
        The results folder; packed as one top-level directory named like it, without the files
        :func:`~brainalign.provenance.manifest.list_files` leaves out (temporaries, resumable training state).
    out : path-like
        Archive to write (atomically).
    report : path-like, optional
        HTML report to include (copied into the folder first, so the manifest covers it).
    configfile : path-like, optional
        Pipeline config to build the manifest from when the folder has none yet.
    workdir : path-like
        Snakemake working directory of the run (for its job records).

    Returns
    -------
    dict
        The manifest that was packed.
    """
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise InputError(results, "results folder not found")
    if report is not None and not Path(report).is_file():
        raise InputError(report, "report not found")
    if not out.name.endswith(ARCHIVE_SUFFIXES):
        raise InputError(out, f"archive name must end in {' or '.join(ARCHIVE_SUFFIXES)}")
    if report is not None and Path(report).resolve().parent != results.resolve():
        shutil.copy2(report, results / Path(report).name)
    has_manifest = (results / MANIFEST_NAME).is_file()
    manifest = refresh_manifest(results, None if has_manifest else load_config(configfile), workdir)
    top = results.resolve().name
    with atomic_output(out) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(results / MANIFEST_NAME, arcname=f"{top}/{MANIFEST_NAME}")
            for rel in list_files(results):
                tar.add(results / rel, arcname=f"{top}/{rel.as_posix()}", recursive=False)
    return manifest


def unpack_results(archive, dest) -> Path:
    """Unpack an archive made by :func:`export_results` into ``dest``; return the results folder in it."""
    archive = Path(archive)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (EOFError, zlib.error) as exc:  # gzip stream cut short or damaged
        raise InputError(archive, f"truncated or corrupt archive ({exc})") from None
    except (tarfile.TarError, OSError) as exc:
        raise InputError(archive, f"cannot unpack archive: {exc}") from None
    found = sorted(p.parent for p in Path(dest).glob(f"*/{MANIFEST_NAME}"))
    if not found:
        raise InputError(archive, f"archive holds no */{MANIFEST_NAME}")
    return found[0]
