"""``brainalign manifest RESULTS [--config-json JSON | --configfile FILE]``: write ``RESULTS/manifest.json``.

With a config (the pipeline's ``manifest`` rule passes the resolved one as JSON) a new manifest is built:
config, seed, package versions, git commit, code fingerprints, the input files the stores recorded, the job
graph from ``WORKDIR/.snakemake`` and checksums of every output. Without one, an existing manifest keeps all
that and only its output checksums are recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .manifest import MANIFEST_NAME


def add_arguments(parser):
    parser.add_argument("results", type=Path, help="results folder (config `results`, e.g. results/)")
    config = parser.add_mutually_exclusive_group()
    config.add_argument("--config-json", metavar="JSON", help="the resolved pipeline config, as a JSON object")
    config.add_argument("--configfile", type=Path, help="pipeline config file (validated, defaults filled in)")
    parser.add_argument("--workdir", type=Path, default=Path("."),
                        help="Snakemake working directory of the run (for its job records)")


def _config(args) -> dict | None:
    if args.config_json is not None:
        try:
            config = json.loads(args.config_json)
        except ValueError as exc:
            raise InputError("--config-json", f"not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise InputError("--config-json", "must be a JSON object")
        return config
    if args.configfile is not None:
        from .archive import load_config

        return load_config(args.configfile)
    return None


def run(args) -> int:
    from .archive import refresh_manifest

    if not args.results.is_dir():
        raise InputError(args.results, "results folder not found")
    config = _config(args)
    # said before the checksums are taken: the job's log lies in the results folder, and must not change after
    print(f"manifest: writing {args.results / MANIFEST_NAME}", flush=True)
    refresh_manifest(args.results, config, args.workdir)
    return 0
