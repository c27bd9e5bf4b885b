"""``brainalign init-config --nsd ROOT [--bold5000 ROOT --categories TABLE --unseen-images DIR] [--things-eeg2 ROOT]
[--results DIR] [--out FILE] [--force]``: inspect local copies of the datasets and write a complete, commented
config for them (to use instead of config.yaml)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--nsd", required=True, metavar="ROOT",
                        help="NSD root (nsddata/, nsddata_betas/, nsddata_stimuli/)")
    parser.add_argument("--bold5000", metavar="ROOT", help="BOLD5000 root (Release 2.0 files anywhere below it)")
    parser.add_argument("--things-eeg2", metavar="ROOT", help="THINGS-EEG2 root (eeg_dataset/, image_set/)")
    parser.add_argument("--categories", metavar="TABLE",
                        help="with --bold5000: stimulus -> category table (csv, tsv or parquet; columns stimulus, "
                             "category) listing every BOLD5000 image and every unseen image")
    parser.add_argument("--unseen-images", metavar="DIR",
                        help="with --bold5000: folder of images never shown in the scanner")
    parser.add_argument("--results", default="results", metavar="DIR", help="results folder (default results)")
    parser.add_argument("--out", metavar="FILE", help="config to write (default: print it)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args) -> int:
    import shlex
    import sys

    from .init_config import init_config

    options = [("--nsd", args.nsd), ("--bold5000", args.bold5000), ("--things-eeg2", args.things_eeg2),
               ("--categories", args.categories), ("--unseen-images", args.unseen_images), ("--results", args.results)]
    command = "brainalign init-config " + " ".join(f"{flag} {shlex.quote(str(value))}" for flag, value in options
                                                   if value is not None)
    text, findings = init_config(args.nsd, args.bold5000, args.things_eeg2, categories=args.categories,
                                 unseen_images=args.unseen_images, results=args.results, out=args.out,
                                 force=args.force, command=command)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    for found in findings:
        print(f"{found.name}: subjects {found.subjects}")
        for note in found.notes:
            print(f"  {note}")
    print(f"init-config: wrote {args.out}; next: brainalign check-config {args.out}, then "
          f"snakemake -n --configfile {args.out} --replace-workflow-config")
    return 0
