"""``brainalign synthesize``: synthetic fMRI from a fitted encoder, and its evaluations.

Generate:  ``brainalign synthesize --encoder DIR --features F.zarr --out SYN.zarr``
Evaluate:  ``brainalign synthesize --evaluate --encoder DIR --store REAL.zarr --synthetic SYN.zarr
           [--categories C.csv] --out EVAL_DIR``
"""

from __future__ import annotations

from ..errors import InputError


def add_arguments(p):
    p.add_argument("--encoder", required=True, help="output DIR of 'brainalign encode' (or DIR/encoder)")
    p.add_argument("--features", nargs="+", help="feature cache(s) of the stimuli to synthesise (generate mode)")
    p.add_argument("--stimuli", help="text file of stimulus ids to synthesise (default: all in the cache)")
    p.add_argument("--out", required=True, help="SYN.zarr (generate) or an output directory (--evaluate)")
    p.add_argument("--evaluate", action="store_true", help="run the claim-1 / decoding evaluations instead")
    p.add_argument("--store", help="real voxel store (evaluate mode)")
    p.add_argument("--synthetic", help="synthetic voxel store (evaluate mode)")
    p.add_argument("--categories", help="stimulus -> category table (csv/tsv/parquet); default: id prefix before '/'")
    p.add_argument("--rois", nargs="+", help="ROIs to evaluate (default: all)")
    p.add_argument("--n-per-class", type=int, nargs="+", default=[10, 25, 50, 100, 250, 500, 1000])
    p.add_argument("--repeats", type=int, default=5, help="random draws per synthetic sample size")
    p.add_argument("--permutations", type=int, default=1000)
    p.add_argument("--syn-noise", action="store_true",
                   help="add Gaussian noise (per-voxel CV residual sd) to synthetic training samples")
    p.add_argument("--standardize", choices=("domain", "rows"), default="domain",
                   help="decoder inputs: 'domain' z-scores each pattern across voxels, then each voxel within the "
                        "synthetic training set and within the real test set; 'rows' only the former")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figure", action="store_true")


def run(args) -> int:
    if args.evaluate:
        if not args.store or not args.synthetic:
            raise InputError("--evaluate", "needs --store (real) and --synthetic")
        from .pipeline import run_evaluation

        s = run_evaluation(args.encoder, args.store, args.synthetic, args.out, categories=args.categories,
                           rois=args.rois, n_per_class=args.n_per_class, n_repeats=args.repeats,
                           n_permutations=args.permutations, seed=args.seed, syn_noise=args.syn_noise,
                           figure=not args.no_figure, standardize=args.standardize)
        print(f"synthesize --evaluate: {s['n_test_images']} held-out images, ROIs {len(s['rois'])} -> {args.out}")
        return 0
    if not args.features:
        raise InputError("--features", "required to synthesise")
    from .generate import synthesize

    stimuli = None
    if args.stimuli:
        from ..encoding.splits import read_id_list

        stimuli = read_id_list(args.stimuli)
    synthesize(args.encoder, args.features, args.out, stimuli=stimuli)
    print(f"synthesize: wrote {args.out}")
    return 0
