"""``brainalign export RESULTS --out ARCHIVE.tar.gz``: pack a results folder for sharing.

The archive holds the results folder (one top-level directory named like it) with its run manifest
(``manifest.json``), plus the Snakemake HTML report when one is found (``RESULTS/report.html``, which
``make demo`` writes, or ``--report PATH``). The manifest's output checksums are recomputed at export,
so they describe exactly what is packed; the rest of an existing manifest (config, inputs, job graph)
is kept. Without a manifest (a folder made by an older run), one is built from ``--configfile``.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser):
    parser.add_argument("results", type=Path, help="results folder (config `results`, e.g. results/)")
    parser.add_argument("--out", type=Path, required=True, help="archive to write (*.tar.gz)")
    parser.add_argument("--report", type=Path, help="Snakemake HTML report to include (default: RESULTS/report.html if present)")
    parser.add_argument("--configfile", type=Path, help="pipeline config, used only when the folder has no manifest yet")
    parser.add_argument("--workdir", type=Path, default=Path("."), help="Snakemake working directory of the run (for its job records)")


def run(args) -> int:
    from .archive import export_results

    manifest = export_results(args.results, args.out, args.report, args.configfile, args.workdir)
    has_report = any(p.endswith(".html") for p in manifest["outputs"])
    print(f"wrote {args.out}: {len(manifest['outputs'])} files + manifest"
          + ("" if has_report else " (no HTML report found; make one with `snakemake --report RESULTS/report.html`)"))
    not_found = manifest.get("inputs_not_found") or []
    if not_found:
        print(f"warning: {len(not_found)} recorded input files were not found and cannot be checked by `verify` "
              f"(e.g. {not_found[0]})")
    return 0
