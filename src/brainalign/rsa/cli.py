"""``brainalign rsa``: model-vs-brain RSA for fMRI voxel stores or time-resolved EEG stores.

fMRI::

    brainalign rsa --features CORNET.zarr REALNET.zarr --stores S1.zarr S2.zarr S3.zarr \\
        --rois prf-visualrois/V1v floc-faces/FFA-1 --trained-on subj01 --out results/rsa

EEG::

    brainalign rsa --features CORNET.zarr --eeg-stores sub-01.zarr ... --time-range -0.1 0.5 --out results/rsa_eeg

The analysis is :func:`brainalign.rsa.pipeline.run_fmri_rsa` / :func:`~brainalign.rsa.pipeline.run_eeg_rsa`
(outputs listed there); see docs/rsa.md. This module only parses: it imports neither torch nor numpy.
"""

from __future__ import annotations

import argparse

from .options import COMPARISON_METHODS, DEFAULT_DIMENSION_BASELINE, MODEL_RDM_METHODS, RDM_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", nargs="+", required=True, metavar="CACHE.zarr",
                        help="feature caches (one per model)")
    parser.add_argument("--model-names", nargs="+", metavar="NAME",
                        help="names of the models, one per --features (default: cache file stems)")
    parser.add_argument("--layers", nargs="+", metavar="LAYER", help="layers to use (default: all of each cache)")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--stores", nargs="+", metavar="STORE.zarr", help="fMRI voxel stores, one per subject")
    data.add_argument("--eeg-stores", nargs="+", metavar="STORE.zarr", help="EEG stores, one per subject")
    parser.add_argument("--rois", nargs="+", metavar="ROI", help="fMRI ROI names (store.roi_names()); required with --stores")
    parser.add_argument("--trained-on", metavar="SUBJECT",
                        help="subject the models were trained on: its rows are relation=within, the others across "
                             "(default: every subject is across)")
    parser.add_argument("--rdm-method", default="correlation", choices=list(RDM_METHODS),
                        help="dissimilarity of the brain RDMs (default: correlation = 1 - Pearson r of "
                             "repetition-averaged patterns; crossnobis = cross-validated across repetitions)")
    parser.add_argument("--model-rdm-method", choices=list(MODEL_RDM_METHODS),
                        help="dissimilarity of the model RDMs (default: --rdm-method; euclidean with crossnobis, "
                             "as models have no repetitions to cross-validate over)")
    parser.add_argument("--cv-folds", type=int, metavar="K",
                        help="crossnobis folds: repetitions are grouped by their index modulo K (default: one fold "
                             "per repetition, K = the fewest repetitions of any used stimulus in that store); "
                             "stimuli with fewer than max(2, K) repetitions in any store are left out")
    parser.add_argument("--dimensions", metavar="TABLE",
                        help="object-dimension analysis: a parquet/csv/tsv table with a 'stimulus' column and numeric "
                             "dimension columns and/or a 'category' column (one-hot expanded)")
    parser.add_argument("--dimension-baseline", metavar="MODEL",
                        help=f"model the dimension differences are taken against (default: "
                             f"{DEFAULT_DIMENSION_BASELINE} when it is one of the models)")
    parser.add_argument("--method", default="spearman", choices=list(COMPARISON_METHODS),
                        help="RDM comparison (default: spearman)")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap samples for confidence intervals (fMRI: over stimuli per subject, and over "
                             "subjects for the mean rows; EEG: over subjects); 0 = none")
    parser.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--compare", nargs="+", metavar="MODEL:BASELINE",
                        help="fMRI: paired comparisons, model minus baseline per ROI and subject (and on the object "
                             "dimensions), each model at the layer chosen on the subject's stimuli outside the "
                             "evaluation set; paired stimulus bootstrap (rsa_comparisons.parquet, rsa_layers.parquet)")
    parser.add_argument("--layer-choice-max", type=int, default=1000, metavar="N",
                        help="with --compare: at most N stimuli per subject to choose the layers on (default 1000)")
    parser.add_argument("--eval-stimuli", metavar="FILE",
                        help="evaluation set, one stimulus id per line (default: the stimuli flagged shared in every "
                             "store: NSD shared images, BOLD5000 repeated set, THINGS-EEG2 test images); refused if "
                             "a compared model was trained or selected on one of them")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstraps and permutations")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA if present), cpu, cuda, ...")
    eeg = parser.add_argument_group("EEG options")
    eeg.add_argument("--time-range", nargs=2, type=float, metavar=("START", "STOP"),
                     help="keep times START <= t <= STOP (seconds, store time base)")
    eeg.add_argument("--window", type=int, default=1, help="samples averaged per EEG RDM (default 1)")
    eeg.add_argument("--step", type=int, default=1, help="samples between EEG RDM windows (default 1)")
    eeg.add_argument("--n-permutations", type=int, default=1000, help="sign-flip permutations (default 1000)")
    eeg.add_argument("--cluster-alpha", type=float, default=0.05,
                     help="cluster-forming threshold, two-sided p per time point (default 0.05)")
    eeg.add_argument("--alpha", type=float, default=0.05, help="cluster significance level (default 0.05)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


def run(args) -> int:
    from .pipeline import run_eeg_rsa, run_fmri_rsa

    common = dict(model_names=args.model_names, layers=args.layers, trained_on=args.trained_on,
                  rdm_method=args.rdm_method, model_rdm_method=args.model_rdm_method, cv_folds=args.cv_folds,
                  dimensions=args.dimensions, dimension_baseline=args.dimension_baseline, method=args.method,
                  n_boot=args.n_boot, ci=args.ci, seed=args.seed, device=args.device, eval_stimuli=args.eval_stimuli)
    if args.stores:
        run_fmri_rsa(args.features, args.stores, args.rois, args.out, compare=_pairs(args.compare),
                     layer_choice_max=args.layer_choice_max, **common)
    else:
        if args.compare:
            from ..errors import InputError

            raise InputError("--compare", "paired comparisons are an fMRI option (--stores)")
        run_eeg_rsa(args.features, args.eeg_stores, args.out, time_range=args.time_range, window=args.window,
                    step=args.step, n_permutations=args.n_permutations, cluster_alpha=args.cluster_alpha,
                    alpha=args.alpha, **common)
    return 0


def _pairs(texts):
    """``MODEL:BASELINE`` strings -> (model, baseline) tuples."""
    from ..errors import InputError

    pairs = []
    for text in texts or []:
        model, sep, baseline = text.partition(":")
        if not sep or not model or not baseline:
            raise InputError("--compare", f"{text!r} is not MODEL:BASELINE")
        pairs.append((model, baseline))
    return pairs
