"""Run manifests: what a results folder is, how it was made, and how to check a received copy.

A manifest (``<results>/manifest.json``) records

- ``config``: the resolved pipeline config (defaults filled in), ``seed``;
- ``packages`` (versions), ``git_commit``, ``code_fingerprints`` (per ``brainalign`` command, as the rules'
  ``params.code``);
- ``outputs``: ``{path relative to the results folder: {"size", "sha256"}}`` for every file in it;
- ``inputs``: ``{dataset: {"root": absolute root the files were found under, "files": {path relative to root:
  {"size", "sha256", "used_by": [result entries that read it]}}}}`` - the source files the ingestion stage
  recorded in the stores' ``provenance.source_files`` (only the files actually read, not whole dataset roots),
  by their absolute paths, so the manifest is the same from any working directory;
- ``inputs_not_found``: recorded source files that were not on disk when the manifest was built (they
  cannot be checked later; a warning is logged);
- ``steps``: ``{output path: {"rule", "inputs": [...]}}`` from Snakemake's own job records
  (``.snakemake/metadata`` of the run), so a receiver can tell what depends on what.

:func:`verify` checks a folder (or an unpacked archive) against its manifest, and, given the receiver's
dataset roots, says which steps would rerun on the receiver's data: those whose recorded inputs differ
(checksums) and everything downstream of them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_output, sha256sum
from ..layout import MANIFEST_NAME
from .code import code_fingerprint
from .environment import git_commit, package_versions

log = logging.getLogger(__name__)

FORMAT = "brainalign-run-manifest/1"
#: a store's ``dataset`` attr -> the config's dataset key
STORE_DATASETS = {"nsd": "nsd", "bold5000": "bold5000", "things-eeg2": "things_eeg2"}
#: names never listed as outputs: the manifest itself, temporaries of atomic_output, Snakemake state, and
#: training's resumable state (`checkpoints/`: optimizer + RNG, ~0.9 GB a run, left only with
#: `training.keep_checkpoints`; the trained weights are the run's one exported `backbone.pt` beside it)
SKIP_PARTS = {MANIFEST_NAME, ".snakemake", "__pycache__", "checkpoints"}


def to_json(obj) -> str:
    """Indented JSON with sorted keys (non-JSON values as ``str``): how manifests are written."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def _skip(rel: Path) -> bool:
    return any(p in SKIP_PARTS or ".tmp-" in p for p in rel.parts)


def list_files(folder) -> list[Path]:
    """Files under ``folder`` (relative, sorted), without the manifest, temporaries and Snakemake state."""
    folder = Path(folder)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = Path(dirpath).relative_to(folder)
        dirnames[:] = sorted(d for d in dirnames if not _skip(rel_dir / d))
        for name in filenames:
            rel = rel_dir / name
            if not _skip(rel) and not (folder / rel).is_symlink():
                out.append(rel)
    return sorted(out)


def checksum_tree(folder) -> dict:
    """``{relative path (posix): {"size", "sha256"}}`` for :func:`list_files`."""
    folder = Path(folder)
    return {
        rel.as_posix(): {"size": (folder / rel).stat().st_size, "sha256": sha256sum(folder / rel)}
        for rel in list_files(folder)
    }


def snakemake_steps(results, workdir=".") -> dict:
    """Snakemake's job records for outputs inside ``results``: ``{output: {"rule", "inputs"}}``.

    Read from ``<workdir>/.snakemake/metadata`` (one JSON record per output file, named by the urlsafe
    base64 of the output path, split into 255-character folders when long). Paths inside ``results`` are
    made relative to it; others (dataset roots) stay as recorded.
    """
    meta = Path(workdir) / ".snakemake" / "metadata"
    results = Path(results)
    steps = {}
    if not meta.is_dir():
        return steps
    for rec in meta.rglob("*"):
        if not rec.is_file():
            continue
        try:
            name = base64.urlsafe_b64decode("".join(rec.relative_to(meta).parts)).decode()
            data = json.loads(rec.read_text())
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        out = _relative_to(name, results, workdir)
        if out is None or data.get("incomplete"):
            continue
        steps[out] = {
            "rule": data.get("rule"),
            "inputs": sorted({_relative_to(i, results, workdir) or i for i in data.get("input", [])}),
        }
    return dict(sorted(steps.items()))


def _relative_to(path, results: Path, workdir) -> str | None:
    p = Path(path)
    if not p.is_absolute():
        p = Path(workdir) / p
    try:
        return p.resolve().relative_to(results.resolve()).as_posix()
    except ValueError:
        return None


def _store_source_files(results: Path) -> dict[str, dict]:
    """``{source file: {"dataset", "root", "relpath", "used_by"}}`` from the provenance of every zarr group.

    Paths are as recorded: absolute, with the dataset root they were found under, for stores written by
    this version; as typed (possibly relative, no root) for older stores.
    """
    used = {}
    for zj in sorted(results.rglob("zarr.json")):
        try:
            attrs = json.loads(zj.read_text()).get("attributes", {})
        except (OSError, ValueError, AttributeError):
            continue
        prov = attrs.get("provenance") or {}
        files = prov.get("source_files") or []
        entry = zj.parent.relative_to(results).as_posix()
        for rec in files:
            rec = rec if isinstance(rec, dict) else {"path": str(rec)}
            info = used.setdefault(rec["path"], {"dataset": STORE_DATASETS.get(attrs.get("dataset")),
                                                 "root": rec.get("root") or prov.get("root"),
                                                 "relpath": rec.get("relpath"), "used_by": []})
            info["used_by"].append(entry)
    return used


def dataset_roots(config: dict) -> dict[str, str]:
    return {name: ds["root"] for name, ds in (config.get("datasets") or {}).items() if ds and "root" in ds}


def _input_records(results: Path, config: dict, workdir) -> tuple[dict, list[str]]:
    """The ``inputs`` of a manifest and the recorded source files not found on disk."""
    configured = {name: Path(workdir, root).resolve() for name, root in dataset_roots(config).items()}
    inputs = {name: {"root": str(root), "files": {}} for name, root in configured.items()}
    other, missing = {}, []
    for path, info in _store_source_files(results).items():
        p = Path(path) if Path(path).is_absolute() else Path(workdir, path)  # older stores: as typed
        p = p.resolve()
        if not p.is_file():
            missing.append(str(p))
            continue
        rec = {"size": p.stat().st_size, "sha256": sha256sum(p), "used_by": sorted(set(info["used_by"]))}
        # the dataset and root the ingestion recorded; else (older stores) the configured root holding the file
        name, root = info["dataset"], Path(info["root"]).resolve() if info["root"] else None
        if root is None or not p.is_relative_to(root):
            name, root = next(((n, r) for n, r in configured.items() if p.is_relative_to(r)), (None, None))
        if name is None:
            other[str(p)] = rec
            continue
        section = inputs.setdefault(name, {"root": str(root), "files": {}})
        if Path(section["root"]) != root:
            if section["files"]:  # another copy of the dataset: keep these by absolute path
                other[str(p)] = rec
                continue
            section["root"] = str(root)
        section["files"][p.relative_to(root).as_posix()] = rec
    if other:
        inputs["_other"] = {"root": None, "files": other}
    for path in missing:
        log.warning("%s: recorded as an input of the results but not found; it cannot be checked later", path)
    return inputs, sorted(missing)


def build_manifest(results, config: dict | None = None, workdir=".") -> dict:
    """The manifest of a finished results folder (see the module docstring for the fields)."""
    from ..cli import COMMANDS

    results = Path(results)
    config = config or {}
    inputs, missing = _input_records(results, config, workdir)
    return {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": config.get("seed"),
        "config": config,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "code_fingerprints": {command: code_fingerprint(command) for command in COMMANDS},
        "inputs": inputs,
        "inputs_not_found": missing,
        "steps": snakemake_steps(results, workdir),
        "outputs": checksum_tree(results),
    }


def write_manifest(results, config: dict | None = None, workdir=".") -> Path:
    """Write ``<results>/manifest.json`` (atomically) and return its path."""
    path = Path(results) / MANIFEST_NAME
    manifest = build_manifest(results, config, workdir)
    with atomic_output(path) as tmp:
        tmp.write_text(to_json(manifest) + "\n")
    return path


def read_manifest(folder) -> dict:
    from ..errors import InputError

    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise InputError(path, "no run manifest in this results folder (was it made by `brainalign export`?)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(path, f"manifest is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise InputError(path, f"unknown manifest format {manifest.get('format')!r} (expected {FORMAT})")
    return manifest


@dataclass
class Verification:
    """Outcome of :func:`verify`. ``ok`` is False when any recorded output is missing or differs."""

    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    inputs_checked: int = 0
    inputs_changed: list[str] = field(default_factory=list)   # "dataset:relpath (why)"
    inputs_unchecked: list[str] = field(default_factory=list)  # datasets given a root with no recorded file
    rerun_entries: list[str] = field(default_factory=list)     # result entries that would be rebuilt
    rerun_rules: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed)


def _downstream(seeds: set[str], steps: dict) -> set[str]:
    """Outputs that (transitively) take any of ``seeds`` (or something inside them) as input."""
    hit = set(seeds)
    changed = True
    while changed:
        changed = False
        for out, step in steps.items():
            if out in hit:
                continue
            if any(i == h or i.startswith(h + "/") or h.startswith(i + "/") for i in step["inputs"] for h in hit):
                hit.add(out)
                changed = True
    return hit


def verify(folder, data_roots: dict[str, str] | None = None) -> Verification:
    """Check a results folder against its manifest; optionally compare the receiver's dataset files.

    Parameters
    ----------
    folder : path-like
        A results folder containing ``manifest.json`` (e.g. an unpacked export).
    data_roots : dict, optional
        ``{dataset name: root on this machine}``. Each recorded input file is looked up under the root
        of its dataset and its checksum compared; steps reading a missing or different file, and all
        steps downstream of them (by the recorded Snakemake job graph), are reported as reruns.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    rep = Verification()
    recorded = manifest["outputs"]
    present = {p.as_posix() for p in list_files(folder)}
    for rel, rec in sorted(recorded.items()):
        p = folder / rel
        if rel not in present:
            rep.missing.append(rel)
        elif p.stat().st_size != rec["size"] or sha256sum(p) != rec["sha256"]:
            rep.changed.append(rel)
    rep.unrecorded = sorted(present - set(recorded))

    if data_roots:
        seeds = set()
        for name, ds in manifest.get("inputs", {}).items():
            root = data_roots.get(name)
            if root is None:
                continue
            if not ds["files"]:
                rep.inputs_unchecked.append(name)
            for rel, rec in ds["files"].items():
                rep.inputs_checked += 1
                p = Path(root) / rel
                why = None
                if not p.is_file():
                    why = "missing"
                elif p.stat().st_size != rec["size"] or sha256sum(p) != rec["sha256"]:
                    why = "differs"
                if why:
                    rep.inputs_changed.append(f"{name}:{rel} ({why})")
                    seeds.update(rec.get("used_by", []))
        rep.inputs_unchecked += sorted(set(data_roots) - set(manifest.get("inputs", {})))
        steps = manifest.get("steps", {})
        entries = _downstream(seeds, steps)
        rep.rerun_entries = sorted(entries)
        rep.rerun_rules = sorted({steps[e]["rule"] for e in entries if e in steps} | {
            steps[o]["rule"] for o in steps for e in seeds if o.startswith(e + "/") or e.startswith(o + "/")
        } - {None})
    return rep
