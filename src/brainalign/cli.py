"""The ``brainalign`` command line: every pipeline stage, usable without Snakemake.

Each command is a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; the table below maps
command names to those modules. A command's module is imported only when that command runs (or shows its
own ``--help``), so ``brainalign --help`` imports no stage and a broken stage does not break the others.
Commands that do several things take a subcommand (``brainalign ingest nsd``, ``brainalign train realnet``,
``brainalign synthesize evaluate``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import InputError

#: command name -> (module, one-line help)
COMMANDS = {
    "simulate": ("brainalign.simulate.cli", "write simulated NSD / BOLD5000 / THINGS-EEG2 trees with a planted brain"),
    "ingest": ("brainalign.ingest.cli", "read a real dataset layout into a zarr voxel (or EEG) store"),
    "stimulus-lists": ("brainalign.stimulus_lists_cli", "list a dataset design's stimuli (all, and those not tested)"),
    "categories": ("brainalign.categories_cli", "write a stimulus -> category table"),
    "features": ("brainalign.features.cli", "extract CNN layer features for a stimulus set into a zarr cache"),
    "encode": ("brainalign.encoding.cli", "fit voxelwise ridge encoding models and score them"),
    "synthesize": ("brainalign.synthetic.cli", "synthetic fMRI for unseen images, and its evaluations"),
    "train": ("brainalign.training.cli", "train brain-aligned models (ReAlnet-fMRI, NeuroFusionNet)"),
    "rsa": ("brainalign.rsa.cli", "RDMs and model-brain comparisons (fMRI and time-resolved EEG)"),
    "report": ("brainalign.report.cli", "findings, figures and summary tables for a results folder"),
    "manifest": ("brainalign.provenance.manifest_cli", "write the run manifest of a results folder"),
    "export": ("brainalign.provenance.export_cli", "pack a results folder for sharing"),
    "verify": ("brainalign.provenance.verify_cli", "check a received results folder"),
}


def command_of(argv) -> str | None:
    """The command an argument list names: its first positional argument (top-level options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported, to add that command's arguments."""
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"brainalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except InputError as exc:
        print(f"brainalign {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
