"""``brainalign stimulus-lists --dataset {nsd,bold5000} --root DIR --out IDS.txt --train-out TRAIN_IDS.txt``:
every stimulus of a dataset's design, and those that are not test images (one id per line)."""

from __future__ import annotations

from .stimulus_lists import DATASETS


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", required=True, help="dataset root in its real layout")
    parser.add_argument("--out", required=True, metavar="IDS.txt", help="every stimulus of the design")
    parser.add_argument("--train-out", required=True, metavar="TRAIN_IDS.txt",
                        help="the stimuli that are not test images (NSD shared / BOLD5000 repeated)")


def run(args) -> int:
    from .stimulus_lists import write_stimulus_lists

    write_stimulus_lists(args.dataset, args.root, args.out, args.train_out)
    print(f"stimulus-lists: {args.dataset} -> {args.out}, {args.train_out}")
    return 0
