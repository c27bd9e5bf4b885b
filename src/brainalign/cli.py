"""The ``brainalign`` command line: every pipeline stage, usable without Snakemake.

Each stage module exposes ``add_arguments(parser)`` and ``run(args) -> int``; the table below
maps command names to those modules, which are imported only when their command runs (so
``brainalign --help`` stays fast and a broken optional stage does not break the others).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from . import __version__
from .errors import InputError

#: command name -> (module, one-line help)
COMMANDS = {
    "simulate": ("brainalign.simulate.cli", "write simulated NSD / BOLD5000 / THINGS-EEG2 trees with a planted brain"),
    "ingest": ("brainalign.ingest.cli", "read a real dataset layout into a zarr voxel (or EEG) store"),
    "features": ("brainalign.features.cli", "extract CNN layer features for a stimulus set into a zarr cache"),
    "encode": ("brainalign.encoding.cli", "fit voxelwise ridge encoding models and score them"),
    "synthesize": ("brainalign.synthetic.cli", "synthetic fMRI for unseen images, and its evaluations"),
    "train": ("brainalign.training.cli", "train brain-aligned models (ReAlnet-fMRI, NeuroFusionNet)"),
    "rsa": ("brainalign.rsa.cli", "RDMs and model-brain comparisons (fMRI and time-resolved EEG)"),
    "report": ("brainalign.report.cli", "figures and summary tables for a results folder"),
    "export": ("brainalign.provenance.cli_export", "pack a results folder for sharing"),
    "verify": ("brainalign.provenance.cli_verify", "check a received results folder"),
}


def _available():
    for name, (module, help_) in COMMANDS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # parent package not written yet
            found = False
        if found:
            yield name, module, help_


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"brainalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in _available():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except InputError as exc:
        print(f"brainalign {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
