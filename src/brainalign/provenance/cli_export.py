"""``brainalign export RESULTS --out ARCHIVE.tar.gz``: pack a results folder for sharing.

The archive holds the results folder (one top-level directory named like it) with its run manifest
(``manifest.json``), plus the Snakemake HTML report when one is found (``RESULTS/report.html``, which
``make demo`` writes, or ``--report PATH``). The manifest's output checksums are recomputed at export,
so they describe exactly what is packed; the rest of an existing manifest (config, inputs, job graph)
is kept. Without a manifest (a folder made by an older run), one is built from ``--configfile``.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import yaml

from .._io import atomic_output
from ..errors import InputError
from . import to_json
from .manifest import MANIFEST_NAME, build_manifest, checksum_tree, list_files



def add_arguments(parser):
    parser.add_argument("results", type=Path, help="results folder (config `results`, e.g. results/)")
    parser.add_argument("--out", type=Path, required=False, help="archive to write (*.tar.gz)")
    parser.add_argument("--report", type=Path, help="Snakemake HTML report to include (default: RESULTS/report.html if present)")
    parser.add_argument("--configfile", type=Path, help="pipeline config, used only when the folder has no manifest yet")
    parser.add_argument("--workdir", type=Path, default=Path("."), help="Snakemake working directory of the run (for its job records)")
    parser.add_argument("--manifest-only", action="store_true", help="(re)write RESULTS/manifest.json and stop")


def _load_config(path):
    if path is None:
        return {}
    from ..config import validate_config

    config = yaml.safe_load(Path(path).read_text()) or {}
    return validate_config(config, source=str(path))


def refresh_manifest(results: Path, configfile=None, workdir=Path(".")) -> dict:
    """The folder's manifest with output checksums recomputed (or a new one), written back in place."""
    path = results / MANIFEST_NAME
    if path.is_file():
        manifest = json.loads(path.read_text())
        manifest["outputs"] = checksum_tree(results)
    else:
        manifest = build_manifest(results, _load_config(configfile), workdir)
    with atomic_output(path) as tmp:
        tmp.write_text(to_json(manifest) + "\n")
    return manifest


def run(args) -> int:
    results = args.results
    if not results.is_dir():
        raise InputError(results, "results folder not found")
    if args.report is not None and not args.report.is_file():
        raise InputError(args.report, "report not found")
    if not args.manifest_only:
        if args.out is None:
            raise InputError("--out", "an archive path is required (or use --manifest-only)")
        if not args.out.name.endswith((".tar.gz", ".tgz")):
            raise InputError(args.out, "archive name must end in .tar.gz or .tgz")
    if args.report is not None and args.report.resolve().parent != results.resolve():
        # the report goes inside the packed folder so that the manifest covers it
        shutil.copy2(args.report, results / args.report.name)
    manifest = refresh_manifest(results, args.configfile, args.workdir)
    if args.manifest_only:
        print(f"wrote {results / MANIFEST_NAME} ({len(manifest['outputs'])} files)")
        return 0
    top = results.resolve().name
    with atomic_output(args.out) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(results / MANIFEST_NAME, arcname=f"{top}/{MANIFEST_NAME}")
            for rel in list_files(results):
                tar.add(results / rel, arcname=f"{top}/{rel.as_posix()}", recursive=False)
    has_report = any(p.endswith(".html") for p in manifest["outputs"])
    print(f"wrote {args.out}: {len(manifest['outputs'])} files + manifest"
          + ("" if has_report else " (no HTML report found; make one with `snakemake --report RESULTS/report.html`)"))
    return 0
