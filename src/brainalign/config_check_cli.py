"""``brainalign check-config [FILE] [--profile PROFILE]``: check a pipeline config without running anything.

Checks the schema and the rules across keys, that every configured subject is on disk in the layout the
loaders read (real data), and, with ``--profile``, that the GPUs the config asks for are ones the profile
gives the rules that use them. Prints one line per problem (exit status 2) or one ``OK`` line (0). The
workflow runs the same checks at its start.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("config", nargs="?", type=Path, default=Path("config.yaml"), metavar="FILE",
                        help="pipeline config (default: config.yaml)")
    parser.add_argument("--profile", metavar="PROFILE",
                        help="Snakemake profile the run will use: a folder with config.yaml, or a name under "
                             "workflow/profiles/ (local, slurm); checks training.gpus and cuda devices against it")


def run(args) -> int:
    from .config_check import check_config_file

    problems = check_config_file(args.config, profile=args.profile)
    for problem in problems:
        print(f"brainalign check-config: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    checked = "schema, roots, subjects on disk" + (f", GPUs vs profile {args.profile}" if args.profile else "")
    print(f"{args.config}: OK ({checked})")
    return 0
