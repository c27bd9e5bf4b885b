"""``brainalign compare-encoders --encoders DIR ... --stores S.zarr ... --pairs MODEL:BASELINE ... --out T.parquet``:
paired stimulus-bootstrap comparison of encoders on the same held-out stimuli and voxels
(:func:`brainalign.encoding.compare.compare_encoders`; docs/encoding.md, docs/methods.md §6.2)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--encoders", nargs="+", required=True, metavar="DIR",
                        help="output folders of `brainalign encode` (model = feature-cache stem, subject = store stem)")
    parser.add_argument("--stores", nargs="+", required=True, metavar="STORE.zarr",
                        help="the voxel stores the encoders were fitted on (the held-out responses are read there)")
    parser.add_argument("--pairs", nargs="+", required=True, metavar="MODEL:BASELINE",
                        help="model names to compare, model minus baseline, in every subject that has both")
    parser.add_argument("--roi", help="compare the voxels of this store ROI only (default: every encoded voxel)")
    parser.add_argument("--n-boot", type=int, default=1000, help="stimulus-bootstrap draws (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="TABLE.parquet", help="comparison table to write")


def run(args) -> int:
    from ..errors import InputError
    from .compare import compare_encoders

    pairs = []
    for text in args.pairs:
        model, sep, baseline = text.partition(":")
        if not sep or not model or not baseline:
            raise InputError("--pairs", f"{text!r} is not MODEL:BASELINE")
        pairs.append((model, baseline))
    table = compare_encoders(args.encoders, args.stores, pairs, args.out, roi=args.roi, n_boot=args.n_boot,
                             seed=args.seed)
    print(f"compare-encoders: {len(table)} comparisons -> {args.out}")
    return 0
