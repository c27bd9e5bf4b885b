"""``brainalign profile slurm [--partition P] [--gpu-partition G] [--gpu-type T] [--account A] [--force]``: write
the project's SLURM profile with this site's values into Snakemake's user profile folder
(``~/.config/snakemake/slurm/``), so that ``snakemake --profile slurm`` works as written (docs/cluster.md)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("kind", choices=["slurm"], help="the profile to write (also the name given to --profile)")
    parser.add_argument("--partition", metavar="P", help="CPU partition (default: sinfo's default partition)")
    parser.add_argument("--gpu-partition", metavar="G",
                        help="partition of the GPU rules (default: a partition with GPUs in sinfo); "
                             "'none': no GPUs, GPU rules run on the CPU partition")
    parser.add_argument("--gpu-type", metavar="T",
                        help="GPU type as in the site's gres, e.g. a100 (default: the one type sinfo lists for "
                             "the GPU partition); 'any': any type")
    parser.add_argument("--account", metavar="A", help="SLURM account (default: sacctmgr's default account of $USER)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a profile there that brainalign did not write")


def run(args) -> int:
    from .profile import write_profile

    path = write_profile(args.kind, partition=args.partition, gpu_partition=args.gpu_partition,
                         gpu_type=args.gpu_type, account=args.account, force=args.force)
    print(path.read_text().split("\n\n", 1)[0])  # the header: values and where they came from
    print(f"\nwrote {path}\nnext, from the repository root: snakemake --profile {args.kind} -n")
    return 0
