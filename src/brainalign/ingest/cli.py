"""``brainalign ingest {nsd,bold5000,things-eeg2} --root DIR --subject S --out STORE.zarr [options]``."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _csv(text):
    return [t.strip() for t in str(text).split(",") if t.strip()]


def add_arguments(parser):
    from . import bold5000, nsd, things_eeg2

    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)

    def common(p, sessions=True):
        p.add_argument("--root", required=True, help="dataset root directory")
        p.add_argument("--subject", required=True, help="subject (number or dataset-style name)")
        p.add_argument("--out", required=True, help="output store, a *.zarr directory (written atomically)")
        if sessions:
            p.add_argument("--sessions", default=None,
                           help="sessions to use, e.g. '1,2,5-8' (default: all found)")
            p.add_argument("--no-zscore", dest="zscore", action="store_false",
                           help="do not z-score each voxel within each session (default: z-score)")

    p = sub.add_parser("nsd", help="NSD single-trial volume betas")
    common(p)
    p.add_argument("--beta-version", default=nsd.DEFAULT_BETA_VERSION, choices=nsd.BETA_VERSIONS)
    p.add_argument("--space", default="func1pt8mm", choices=nsd.SPACES)
    p.add_argument("--format", dest="input_format", default="auto", choices=("auto", "nii.gz", "hdf5"),
                   help="betas file format (auto: nii.gz if present, else hdf5)")
    p.add_argument("--mask", default="nsdgeneral",
                   help="voxel selection: nsdgeneral (default, > 0), brainmask, an atlas name, or a NIfTI path")
    p.add_argument("--rois", default=",".join(nsd.DEFAULT_ATLASES),
                   help="comma-separated ROI atlases to attach (default: %(default)s)")

    p = sub.add_parser("bold5000", help="BOLD5000 Release 2.0 GLMsingle betas")
    common(p)
    p.add_argument("--beta-version", default=bold5000.DEFAULT_BETA_VERSION,
                   help="GLM variant in the file names (default %(default)s)")
    p.add_argument("--mask", default="roi-union",
                   help="voxel selection: roi-union (default, union of the ten ROI masks), brainmask, or a NIfTI path")
    p.add_argument("--rois", default=",".join(bold5000.ROI_NAMES),
                   help="comma-separated ROI masks to attach (default: all ten)")

    p = sub.add_parser("things-eeg2", help="THINGS-EEG2 preprocessed EEG")
    common(p, sessions=False)
    p.add_argument("--parts", default=",".join(things_eeg2.PARTS), help="training,test (default both)")


def run(args) -> int:
    from . import ingest_bold5000, ingest_nsd, ingest_things_eeg2

    if args.dataset == "nsd":
        out = ingest_nsd(args.root, args.subject, args.out, sessions=args.sessions, beta_version=args.beta_version,
                         space=args.space, input_format=args.input_format, mask=args.mask,
                         atlases=_csv(args.rois), zscore=args.zscore)
    elif args.dataset == "bold5000":
        out = ingest_bold5000(args.root, args.subject, args.out, sessions=args.sessions,
                              beta_version=args.beta_version, mask=args.mask, rois=_csv(args.rois),
                              zscore=args.zscore)
    else:
        out = ingest_things_eeg2(args.root, args.subject, args.out, parts=_csv(args.parts))
    log.info("wrote %s", out)
    return 0
