"""``brainalign synthesize {generate,evaluate}``: synthetic fMRI from a fitted encoder, and its evaluations.

Generate:  ``brainalign synthesize generate --encoder DIR --features F.zarr [F2.zarr ...] --out SYN.zarr``
Evaluate:  ``brainalign synthesize evaluate --encoder DIR --store REAL.zarr --synthetic SYN.zarr
           [--categories C.csv] --out EVAL_DIR``
"""

from __future__ import annotations


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    g = sub.add_parser("generate", help="synthetic voxel store of the encoder's responses to feature-cache stimuli")
    g.add_argument("--encoder", required=True, help="output DIR of 'brainalign encode' (or DIR/encoder)")
    g.add_argument("--features", nargs="+", required=True, help="feature cache(s) of the stimuli to synthesise")
    g.add_argument("--stimuli", help="text file of stimulus ids to synthesise (default: all in the caches)")
    g.add_argument("--out", required=True, help="synthetic voxel store to write (SYN.zarr)")

    e = sub.add_parser("evaluate", help="claim-1 (synthetic vs real repetitions) and decoding evaluations")
    e.add_argument("--encoder", required=True, help="output DIR of 'brainalign encode' (or DIR/encoder)")
    e.add_argument("--store", required=True, help="real voxel store")
    e.add_argument("--synthetic", required=True, help="synthetic voxel store (from 'synthesize generate')")
    e.add_argument("--categories", help="stimulus -> category table (csv/tsv/parquet); default: id prefix before '/'")
    e.add_argument("--rois", nargs="+", help="ROIs to evaluate (default: all)")
    e.add_argument("--n-per-class", type=int, nargs="+", default=[10, 25, 50, 100, 250, 500, 1000])
    e.add_argument("--declared-n-per-class", type=int, metavar="N",
                   help="synthetic samples per class of the decoding verdict, fixed before the run (evaluated even "
                        "if not in --n-per-class; the sweep is descriptive)")
    e.add_argument("--repeats", type=int, default=5, help="random draws per synthetic sample size")
    e.add_argument("--permutations", type=int, default=1000)
    e.add_argument("--syn-noise", action="store_true",
                   help="add Gaussian noise (per-voxel CV residual sd) to synthetic training samples")
    e.add_argument("--standardize", choices=("center", "domain", "rows"), default="center",
                   help="decoder inputs: 'center' z-scores each pattern across voxels, then centres each voxel "
                        "within the synthetic training set and within the real test set; 'domain' z-scores the "
                        "voxels there instead (amplifies voxels the encoder cannot predict); 'rows' only the first "
                        "step")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-figure", action="store_true")
    e.add_argument("--out", required=True, help="output directory (tables, figures/, summary.json)")


def run(args) -> int:
    if args.action == "evaluate":
        from .pipeline import run_evaluation

        s = run_evaluation(args.encoder, args.store, args.synthetic, args.out, categories=args.categories,
                           rois=args.rois, n_per_class=args.n_per_class, n_repeats=args.repeats,
                           n_permutations=args.permutations, seed=args.seed, syn_noise=args.syn_noise,
                           figure=not args.no_figure, standardize=args.standardize,
                           declared_n=args.declared_n_per_class)
        print(f"synthesize evaluate: {s['n_test_images']} held-out images, ROIs {len(s['rois'])} -> {args.out}")
        return 0
    from .generate import synthesize

    stimuli = None
    if args.stimuli:
        from ..stimuli import read_ids_file

        stimuli = read_ids_file(args.stimuli)
    synthesize(args.encoder, args.features, args.out, stimuli=stimuli)
    print(f"synthesize generate: wrote {args.out}")
    return 0
