"""``brainalign verify ARCHIVE_OR_DIR [--data-root ...]``: check a received results folder.

Checks every file against the manifest's SHA-256 checksums (exit status 1 and the names of missing or
modified files when any differ; 2 when the archive or folder cannot be read at all). With ``--data-root``, the source files the run read (as recorded by
the ingestion stage) are looked up in the receiver's copies of the datasets, and the steps that would
rerun on the receiver's data are listed: those reading a missing or different file, and everything
downstream of them in the run's recorded job graph. "inputs match" is said only over at least one checked
file: with ``--data-root`` and nothing to check (a manifest that records no source file), the exit status is 1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InputError


def add_arguments(parser):
    parser.add_argument("source", type=Path, help="results folder or an archive made by `brainalign export`")
    parser.add_argument(
        "--data-root", action="append", default=[], metavar="[DATASET=]PATH",
        help="the receiver's dataset root, as DATASET=PATH (nsd=/data/NSD; repeatable) or a PATH holding "
             "one folder per dataset (nsd/, bold5000/, things_eeg2/)",
    )


def parse_data_roots(values, datasets) -> dict[str, str]:
    roots = {}
    for value in values:
        if "=" in value:
            name, path = value.split("=", 1)
            if name not in datasets:
                raise InputError("--data-root", f"unknown dataset {name!r} (the manifest has {sorted(datasets)})")
            roots[name] = path
        else:
            if not Path(value).is_dir():
                raise InputError(value, "data root not found")
            for name in datasets:
                if (Path(value) / name).is_dir():
                    roots[name] = str(Path(value) / name)
    return roots


def run(args) -> int:
    from .archive import unpack_results
    from .manifest import read_manifest, verify

    src = args.source
    if not src.exists():
        raise InputError(src, "not found")
    with tempfile.TemporaryDirectory(prefix="brainalign-verify-") as tmp:
        folder = unpack_results(src, Path(tmp)) if src.is_file() else src
        manifest = read_manifest(folder)
        datasets = {k for k in manifest.get("inputs", {}) if not k.startswith("_")}
        roots = parse_data_roots(args.data_root, datasets)
        rep = verify(folder, roots)
    n = len(manifest["outputs"])
    for rel in rep.missing:
        print(f"MISSING  {rel}")
    for rel in rep.changed:
        print(f"MODIFIED {rel}")
    for rel in rep.unrecorded:
        print(f"extra    {rel} (not in the manifest)")
    if rep.ok:
        print(f"OK: {n} files match the manifest (git {manifest.get('git_commit')}, seed {manifest.get('seed')})")
    else:
        print(f"FAILED: {len(rep.missing)} missing, {len(rep.changed)} modified of {n} files")
    if roots:
        print(f"inputs: {rep.inputs_checked} recorded source files checked under {', '.join(f'{k}={v}' for k, v in sorted(roots.items()))}")
        for name in rep.inputs_unchecked:
            print(f"input    {name}: NOT CHECKED (the manifest records no source file of it)")
        not_found = manifest.get("inputs_not_found") or []
        if not_found:
            print(f"input    {len(not_found)} source files were not found when the results were exported, so they "
                  f"cannot be checked (e.g. {not_found[0]})")
        if rep.inputs_changed:
            for item in rep.inputs_changed:
                print(f"input    {item}")
            print("would rerun on this data: " + ", ".join(rep.rerun_entries))
            if rep.rerun_rules:
                print("rules: " + ", ".join(rep.rerun_rules))
        elif rep.inputs_checked == 0:
            print("inputs NOT VERIFIED: no recorded source file could be checked, so nothing can be said about "
                  "reruns on this data")
            return 1
        else:
            print("inputs match: nothing would rerun on this data"
                  + (" (of the recorded files; see the lines above)" if rep.inputs_unchecked or not_found else ""))
    return 0 if rep.ok else 1
