"""``brainalign simulate``: write simulated NSD / BOLD5000 / THINGS-EEG2 trees with a planted brain."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .config import DATASETS, PRESETS


def _grid(text: str) -> tuple:
    try:
        g = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must be X,Y,Z integers, got {text!r}") from None
    if len(g) != 3:
        raise argparse.ArgumentTypeError(f"grid must have three sizes, got {text!r}")
    return g


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created; an earlier simulator output is replaced)")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="size preset (default: demo)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    parser.add_argument("--datasets", default=None,
                        help=f"comma-separated subset of {','.join(DATASETS)} (default: the preset's)")
    g = parser.add_argument_group("size overrides (default: the preset's)")
    g.add_argument("--nsd-subjects", type=int)
    g.add_argument("--nsd-sessions", type=int, help="750 trials each; images per subject = 250 x sessions")
    g.add_argument("--nsd-shared", type=int, help="images shared by all subjects")
    g.add_argument("--nsd-grid", type=_grid, help="subj01 func1pt8mm grid X,Y,Z (full size: 81,104,83)")
    g.add_argument("--b5k-subjects", type=int)
    g.add_argument("--b5k-sessions", type=int)
    g.add_argument("--b5k-grid", type=_grid, help="CSI1 grid X,Y,Z (full size: 71,89,72)")
    g.add_argument("--things-subjects", type=int)
    g.add_argument("--things-train-concepts", type=int, help="training concepts (10 images each)")
    g.add_argument("--things-test-concepts", type=int, help="test concepts (1 image each)")
    g.add_argument("--things-test-reps", type=int, help="test repetitions (80 in the real data)")
    g.add_argument("--unseen-per-category", type=int)


def run(args) -> int:
    from . import simulate

    overrides = {k: getattr(args, k) for k in (
        "nsd_subjects", "nsd_sessions", "nsd_shared", "nsd_grid", "b5k_subjects", "b5k_sessions", "b5k_grid",
        "things_subjects", "things_train_concepts", "things_test_concepts", "things_test_reps", "unseen_per_category")}
    if args.datasets:
        names = tuple(d.strip() for d in args.datasets.split(",") if d.strip())
        bad = [d for d in names if d not in DATASETS]
        if bad:
            raise InputError("--datasets", f"unknown dataset(s) {', '.join(bad)}; choose from {', '.join(DATASETS)}")
        overrides["datasets"] = names
    summary = simulate(args.out, preset=args.preset, seed=args.seed, **overrides)
    print(f"simulated {', '.join(summary['config']['datasets'])} (preset {args.preset}, seed {args.seed}) -> {args.out}")
    return 0
