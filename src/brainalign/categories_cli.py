"""``brainalign categories (--table FILE | --simulated DIR --dataset NAME [--with-unseen]) --out TABLE.parquet``:
a stimulus -> category table, from a user's table or from the simulator's ground truth."""

from __future__ import annotations

from .categories import SIMULATED_DATASETS


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", metavar="FILE", help="a stimulus -> category table (parquet, csv or tsv)")
    source.add_argument("--simulated", metavar="DIR", help="output folder of `brainalign simulate`")
    parser.add_argument("--dataset", choices=SIMULATED_DATASETS, help="with --simulated: whose images")
    parser.add_argument("--with-unseen", action="store_true",
                        help="with --simulated: also the simulator's unseen images (ids relative to their folder)")
    parser.add_argument("--out", required=True, metavar="TABLE.parquet", help="table to write")


def run(args) -> int:
    from .categories import read_category_file, simulated_category_table, write_category_table
    from .errors import InputError

    if args.table:
        if args.dataset or args.with_unseen:
            raise InputError("--table", "--dataset and --with-unseen only apply to --simulated")
        table = read_category_file(args.table)
    else:
        if not args.dataset:
            raise InputError("--simulated", "needs --dataset")
        table = simulated_category_table(args.simulated, args.dataset, unseen=args.with_unseen)
    write_category_table(table, args.out)
    print(f"categories: {len(table)} stimuli, {table['category'].nunique()} categories -> {args.out}")
    return 0
