"""``brainalign encode``: voxelwise ridge encoding models (see docs/encoding.md)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .splits import SPLITS


def _alphas(text: str) -> np.ndarray:
    """``logspace:-1:7:20`` or a comma list ``0.1,1,10``."""
    text = text.strip()
    try:
        if text.startswith("logspace:"):
            lo, hi, n = text.split(":")[1:]
            return np.logspace(float(lo), float(hi), int(n))
        return np.array([float(a) for a in text.split(",") if a])
    except ValueError as exc:
        raise InputError("--alphas", f"cannot parse {text!r} ({exc})") from exc


def add_arguments(p):
    p.add_argument("--store", required=True, help="voxel store (*.zarr)")
    p.add_argument("--features", required=True, help="feature cache (*.zarr)")
    p.add_argument("--layers", nargs="+", default=None, help="layers to fit (default: all in the cache)")
    p.add_argument("--split", choices=SPLITS, default="nsd-shared",
                   help="nsd-shared / repeated: test = 'shared' stimuli; unseen-categories; ids")
    p.add_argument("--categories", help="stimulus -> category table (csv/tsv/parquet: stimulus, category)")
    p.add_argument("--test-categories", nargs="+", help="held-out categories (default: drawn with --seed)")
    p.add_argument("--n-test-categories", type=int, help="number of categories to hold out")
    p.add_argument("--category-fold", type=int, metavar="I",
                   help="unseen-categories: hold out the categories of fold I of the leave-N-categories-out design "
                        "(every set of --n-test-categories categories, in an order seeded with --seed)")
    p.add_argument("--train-ids", help="text file, one training stimulus id per line (--split ids)")
    p.add_argument("--test-ids", help="text file, one test stimulus id per line (--split ids)")
    p.add_argument("--alphas", default="logspace:-1:7:20", help="'logspace:LO:HI:N' or comma list")
    p.add_argument("--folds", type=int, default=5, help="K of the K-fold CV for alpha/layer selection")
    p.add_argument("--solver", choices=("torch", "himalaya", "sklearn"), default="torch")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--voxel-batch", type=int, default=None, help="voxels per batch (default: by memory)")
    p.add_argument("--rois", nargs="+", default=None, help="ROIs to summarise (default: all in the store)")
    p.add_argument("--restrict-to-rois", action="store_true", help="fit only voxels inside the --rois")
    p.add_argument("--layer-selection", choices=("voxel", "roi"), default="voxel",
                   help="layer per voxel or per ROI, chosen by CV R² on training data")
    p.add_argument("--banded", action="store_true",
                   help="also fit one banded ridge over the --layers (one band per layer, per-voxel band weights "
                        "and alpha by CV) and use it as every voxel's model")
    p.add_argument("--band-search", default="random:100",
                   help="banded candidates: 'random:N' (centre, single layers, Dirichlet samples) or 'grid:K' "
                        "(simplex lattice, step 1/K)")
    p.add_argument("--noise-ceiling", choices=("auto", "ncsnr", "split-half"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--out", required=True, help="output directory")


def run(args) -> int:
    from .pipeline import run_encoding

    summary = run_encoding(
        args.store, args.features, args.out, layers=args.layers, split=args.split, alphas=_alphas(args.alphas),
        n_folds=args.folds, solver=args.solver, device=args.device, dtype=args.dtype, rois=args.rois,
        restrict_to_rois=args.restrict_to_rois, categories=args.categories, test_categories=args.test_categories,
        n_test_categories=args.n_test_categories, category_fold=args.category_fold, train_ids=args.train_ids, test_ids=args.test_ids,
        layer_selection=args.layer_selection, nc_method=args.noise_ceiling, seed=args.seed,
        voxel_batch=args.voxel_batch, figure=not args.no_figure, banded=args.banded, band_search=args.band_search)
    print(f"encode: {summary['n_voxels']} voxels, {summary['n_train']} train / {summary['n_test']} test stimuli, "
          f"median test r ({'banded' if args.banded else 'selected layer'}) {summary['median_r_selected']:.3f} "
          f"-> {args.out}")
    return 0
