"""``brainalign features``: extract CNN layer features for a stimulus set into a zarr cache."""

from __future__ import annotations

import logging

from ..errors import InputError

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--stimuli", required=True, metavar="SPEC",
                        help="nsd:ROOT | bold5000:ROOT | things-eeg2:ROOT[:training|test] | folder:DIR")
    parser.add_argument("--ids", metavar="FILE", help="restrict (and order) the rows: one stimulus ID per line")
    parser.add_argument("--model", required=True,
                        help="alexnet | cornet_s | any torchvision model name | checkpoint .pt from brainalign train")
    parser.add_argument("--weights", default="imagenet", help="imagenet | random | PATH (default imagenet)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and randomized PCA")
    parser.add_argument("--layers", nargs="+", metavar="LAYER",
                        help="friendly names (conv1 ... fc7, V1 ... IT, avgpool) or module paths; "
                             "commas also separate (default: the model's default layers)")
    parser.add_argument("--reduce", choices=("none", "pool", "pca"), default="none",
                        help="none: flattened maps; pool: spatial average; pca: PCA fitted on --pca-train-ids")
    parser.add_argument("--pca-components", type=int, metavar="K")
    parser.add_argument("--pca-train-ids", metavar="FILE", help="IDs of the training split (one per line)")
    parser.add_argument("--pca-from", metavar="CACHE.zarr",
                        help="apply the PCA stored in this cache (same model/layers) instead of fitting one")
    parser.add_argument("--pca-method", choices=("auto", "exact", "randomized"), default="auto")
    parser.add_argument("--pca-fit-images", type=int, metavar="N",
                        help="fit the PCA on a random subset of at most N training images (bounds memory)")
    parser.add_argument("--out", required=True, metavar="CACHE.zarr")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4, help="image decode worker processes")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--chunk-rows", type=int, help="rows per zarr chunk / resume unit")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..models import load_model
    from ..stimuli import NSDImageSet, parse_stimulus_spec, read_ids_file
    from ..devices import resolve_device
    from .extract import extract_features

    image_set = parse_stimulus_spec(args.stimuli, ids_file=args.ids)
    layers = None
    if args.layers:
        layers = [name for item in args.layers for name in item.split(",") if name]
    train_ids = None
    if args.reduce == "pca" and args.pca_from:
        if args.pca_train_ids or args.pca_components:
            raise InputError("--pca-from", "replaces --pca-components/--pca-train-ids; give one or the other")
    elif args.reduce == "pca":
        if not args.pca_train_ids or not args.pca_components:
            raise InputError("--reduce pca", "needs --pca-components K and --pca-train-ids FILE")
        train_ids = read_ids_file(args.pca_train_ids, numeric=isinstance(image_set, NSDImageSet))
    elif args.pca_train_ids or args.pca_components or args.pca_from:
        raise InputError("--pca-components/--pca-train-ids/--pca-from", "only used with --reduce pca")
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, seed=args.seed)
    out = extract_features(image_set, model, args.out, layers=layers, reduce=args.reduce,
                           pca_components=args.pca_components, pca_train_ids=train_ids,
                           pca_method=args.pca_method, pca_fit_images=args.pca_fit_images, pca_from=args.pca_from, batch_size=args.batch_size, workers=args.workers,
                           device=device, precision=args.precision, chunk_rows=args.chunk_rows, seed=args.seed,
                           show_progress=not args.no_progress)
    log.info("wrote %s", out)
    return 0
