"""``brainalign categories (--table FILE [--stimuli IDS.txt] [--unseen-images DIR] | --simulated DIR --dataset NAME
[--with-unseen]) --out TABLE.parquet``: a stimulus -> category table, from a user's table (csv, tsv or parquet,
checked against the dataset's stimuli and the unseen images) or from the simulator's ground truth."""

from __future__ import annotations

from .categories import MIN_CATEGORIES, SIMULATED_DATASETS


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", metavar="FILE", help="a stimulus -> category table (parquet, csv or tsv)")
    source.add_argument("--simulated", metavar="DIR", help="output folder of `brainalign simulate`")
    parser.add_argument("--dataset", choices=SIMULATED_DATASETS, help="with --simulated: whose images")
    parser.add_argument("--with-unseen", action="store_true",
                        help="with --simulated: also the simulator's unseen images (ids relative to their folder)")
    parser.add_argument("--stimuli", metavar="IDS.txt",
                        help="with --table: every stimulus of the dataset's design (`brainalign stimulus-lists`); "
                             "each must have a category")
    parser.add_argument("--unseen-images", metavar="DIR",
                        help="with --table: folder of images never shown in the scanner; each must have a category, "
                             "listed by its path relative to DIR")
    parser.add_argument("--min-images", type=int, default=1, metavar="N",
                        help="with --unseen-images: unseen images a category needs to count for decoding (default 1)")
    parser.add_argument("--min-categories", type=int, default=MIN_CATEGORIES, metavar="K",
                        help=f"with --stimuli: categories the dataset's stimuli must span (default {MIN_CATEGORIES})")
    parser.add_argument("--out", required=True, metavar="TABLE.parquet", help="table to write")


def run(args) -> int:
    from .categories import check_category_table, read_category_file, simulated_category_table, write_category_table
    from .errors import InputError

    if args.table:
        if args.dataset or args.with_unseen:
            raise InputError("--table", "--dataset and --with-unseen only apply to --simulated")
        table = read_category_file(args.table)
        if args.stimuli:
            from .stimuli import folder_images, read_ids_file

            unseen = folder_images(args.unseen_images).ids if args.unseen_images else None
            check_category_table(table, args.table, stimuli=read_ids_file(args.stimuli), unseen=unseen,
                                 unseen_folder=args.unseen_images, min_images=args.min_images,
                                 min_categories=args.min_categories)
        elif args.unseen_images:
            raise InputError("--unseen-images", "needs --stimuli (the dataset's stimulus list)")
    else:
        if args.stimuli or args.unseen_images:
            raise InputError("--simulated", "--stimuli and --unseen-images only apply to --table")
        if not args.dataset:
            raise InputError("--simulated", "needs --dataset")
        table = simulated_category_table(args.simulated, args.dataset, unseen=args.with_unseen)
    write_category_table(table, args.out)
    print(f"categories: {len(table)} stimuli, {table['category'].nunique()} categories -> {args.out}")
    return 0
