"""Run manifests: what a results folder is, how it was made, and how to check a received copy.

A manifest (``<results>/manifest.json``) records

- ``config``: the resolved pipeline config (defaults filled in), ``seed``;
- ``packages`` (versions), ``git_commit``, ``code_fingerprints`` (per ``brainalign`` command, as the rules'
  ``params.code``);
- ``outputs``: ``{path relative to the results folder: {"size", "sha256"}}`` for every file in it;
- ``inputs``: ``{dataset: {"root": path as configured, "files": {path relative to root: {"size", "sha256",
  "used_by": [result entries that read it]}}}}`` - the source files the ingestion stage recorded in the
  stores' ``provenance.source_files`` (only the files actually read, not whole dataset roots);
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
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_output, sha256sum
from ..layout import MANIFEST_NAME
from .code import code_fingerprint
from .environment import git_commit, package_versions

FORMAT = "brainalign-run-manifest/1"
#: names never listed as outputs: the manifest itself, temporaries of atomic_output, Snakemake state, and
#: training's resumable state (`checkpoints/`: optimizer + RNG, ~0.8 GB a run; the trained weights are
#: the exported `backbone.pt` / `model.pt` beside it)
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


def _store_source_files(results: Path) -> dict[str, list[str]]:
    """``{source file: [result entries whose provenance lists it]}`` from every zarr group's attrs."""
    used = {}
    for zj in sorted(results.rglob("zarr.json")):
        try:
            attrs = json.loads(zj.read_text()).get("attributes", {})
        except (OSError, ValueError):
            continue
        prov = attrs.get("provenance") or {}
        files = prov.get("source_files") or []
        entry = zj.parent.relative_to(results).as_posix()
        for rec in files:
            path = rec["path"] if isinstance(rec, dict) else str(rec)
            used.setdefault(path, []).append(entry)
    return used


def dataset_roots(config: dict) -> dict[str, str]:
    return {name: ds["root"] for name, ds in (config.get("datasets") or {}).items() if ds and "root" in ds}


def _input_records(results: Path, config: dict, workdir) -> dict:
    roots = {name: Path(workdir, root).resolve() for name, root in dataset_roots(config).items()}
    inputs = {name: {"root": root, "files": {}} for name, root in dataset_roots(config).items()}
    other = {}
    for path, used_by in _store_source_files(results).items():
        p = Path(workdir, path).resolve()
        if not p.is_file():
            continue
        rec = {"size": p.stat().st_size, "sha256": sha256sum(p), "used_by": sorted(set(used_by))}
        for name, root in roots.items():
            if p.is_relative_to(root):
                inputs[name]["files"][p.relative_to(root).as_posix()] = rec
                break
        else:
            other[str(path)] = rec
    if other:
        inputs["_other"] = {"root": None, "files": other}
    return inputs


def build_manifest(results, config: dict | None = None, workdir=".") -> dict:
    """The manifest of a finished results folder (see the module docstring for the fields)."""
    from ..cli import COMMANDS

    results = Path(results)
    config = config or {}
    return {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": config.get("seed"),
        "config": config,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "code_fingerprints": {command: code_fingerprint(command) for command in COMMANDS},
        "inputs": _input_records(results, config, workdir),
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
        steps = manifest.get("steps", {})
        entries = _downstream(seeds, steps)
        rep.rerun_entries = sorted(entries)
        rep.rerun_rules = sorted({steps[e]["rule"] for e in entries if e in steps} | {
            steps[o]["rule"] for o in steps for e in seeds if o.startswith(e + "/") or e.startswith(o + "/")
        } - {None})
    return rep
