"""The ``brainalign`` command line: every pipeline stage, usable without Snakemake.

Each command is a module exposing ``add_arguments(parser)`` and ``run(args) -> int``; the table below maps
command names to those modules. A command's module is imported only when that command runs (or shows its
own ``--help``), so ``brainalign --help`` imports no stage and a broken stage does not break the others.
Commands that do several things take a subcommand (``brainalign ingest nsd``, ``brainalign train realnet``,
``brainalign synthesize evaluate``).

Exit status (README, "Exit codes"): 0 done; 1 ``verify`` found the results (or their inputs) not as recorded;
2 user error (a bad option, config or input file, an output that cannot be written), reported as one line
per problem naming the file or key; 3 internal error (a bug: the traceback is printed, then one line);
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from . import __version__
from .errors import InputError

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: command name -> (module, one-line help)
COMMANDS = {
    "simulate": ("brainalign.simulate.cli", "write simulated NSD / BOLD5000 / THINGS-EEG2 trees with a planted brain"),
    "ingest": ("brainalign.ingest.cli", "read a real dataset layout into a zarr voxel (or EEG) store"),
    "init-config": ("brainalign.init_config_cli", "write a commented config for local copies of the datasets"),
    "stimulus-lists": ("brainalign.stimulus_lists_cli", "list a dataset design's stimuli (all, and those not tested)"),
    "categories": ("brainalign.categories_cli", "write a stimulus -> category table"),
    "features": ("brainalign.features.cli", "extract CNN layer features for a stimulus set into a zarr cache"),
    "encode": ("brainalign.encoding.cli", "fit voxelwise ridge encoding models and score them"),
    "compare-encoders": ("brainalign.encoding.compare_cli", "paired stimulus-bootstrap comparison of encoders"),
    "synthesize": ("brainalign.synthetic.cli", "synthetic fMRI for unseen images, and its evaluations"),
    "train": ("brainalign.training.cli", "train brain-aligned models (ReAlnet-fMRI, NeuroFusionNet)"),
    "rsa": ("brainalign.rsa.cli", "RDMs and model-brain comparisons (fMRI and time-resolved EEG)"),
    "report": ("brainalign.report.cli", "findings, figures and summary tables for a results folder"),
    "manifest": ("brainalign.provenance.manifest_cli", "write the run manifest of a results folder"),
    "export": ("brainalign.provenance.export_cli", "pack a results folder for sharing"),
    "verify": ("brainalign.provenance.verify_cli", "check a received results folder"),
    "check-config": ("brainalign.config_check_cli", "check a pipeline config (schema, data on disk, GPUs vs profile)"),
    "profile": ("brainalign.profile_cli", "write the SLURM profile for `snakemake --profile slurm`"),
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
        return EXIT_USER_ERROR
    prefix = f"brainalign {args.command}"
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except InputError as exc:
        for line in str(exc).splitlines() or [str(exc)]:  # one line per problem
            print(f"{prefix}: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a file that cannot be read or written: permissions, a full disk, a missing folder
        where = exc.filename if exc.filename is not None else None
        what = exc.strerror or str(exc)
        print(f"{prefix}: error: {where}: {what}" if where else f"{prefix}: error: {what}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(f"{prefix}: error: out of memory (give the job more memory, or process less at once)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        print(f"{prefix}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} (a bug in brainalign; "
              "please report it with the traceback above)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
