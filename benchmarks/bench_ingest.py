"""Benchmark NSD session ingestion: ours (.nii.gz and .hdf5) vs naive nilearn vs the gzip floor.

Writes one full-size NSD-like session (default subj01 func1pt8mm: 81 x 104 x 83 x 750 int16, zeros
outside a brain ellipsoid, nsdgeneral-like mask of about 15.7k voxels) in both formats into a temp
dir, as a minimal NSD tree, then times every route in a fresh subprocess and records its peak RSS.

Routes
- ``ours_nii``  : ``ingest_nsd(..., input_format="nii.gz")`` (z-scored, written to a zarr store)
- ``ours_hdf5`` : ``ingest_nsd(..., input_format="hdf5")``
- ``naive``     : ``nibabel.load`` + nilearn ``NiftiMasker(mask_img=nsdgeneral).fit_transform`` + /300 + z-score
                  (no store written)
- ``floor``     : stream-decompress the .nii.gz with zlib and discard the bytes

Usage: ``.venv/bin/python benchmarks/bench_ingest.py [--workdir DIR] [--repeats N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = (81, 104, 83)
N_TRIALS = 750
SID = "subj01"
BETAVER = "betas_fithrf_GLMdenoise_RR"


def _paths(work: Path):
    betas_dir = work / "nsd" / "nsddata_betas" / "ppdata" / SID / "func1pt8mm" / BETAVER
    roi_dir = work / "nsd" / "nsddata" / "ppdata" / SID / "func1pt8mm" / "roi"
    return betas_dir, roi_dir


def _geometry(grid):
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in grid), indexing="ij")
    r2 = i ** 2 + j ** 2 + k ** 2
    brain = r2 < 0.8
    # nsdgeneral-like: a posterior shell of the brain, ~16k voxels at the default grid (subj01: 15724)
    general = brain & (j < -0.45) & (r2 > 0.65)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = -0.9 * (np.asarray(grid) - 1)
    return brain, general, affine


def write_mask(work: Path, grid=GRID):
    """nsdgeneral.nii.gz (-1 outside the brain, 0/1 inside) and its ctab; returns the voxel count."""
    import nibabel as nib

    _, roi_dir = _paths(work)
    roi_dir.mkdir(parents=True, exist_ok=True)
    brain, general, affine = _geometry(grid)
    nsdgeneral = np.where(brain, general.astype(np.float32), -1).astype(np.float32)
    nib.save(nib.Nifti1Image(nsdgeneral, affine), str(roi_dir / "nsdgeneral.nii.gz"))
    ctab = work / "nsd" / "nsddata" / "freesurfer" / SID / "label" / "nsdgeneral.mgz.ctab"
    ctab.parent.mkdir(parents=True, exist_ok=True)
    ctab.write_text("0 Unknown\n1 nsdgeneral\n")
    return int(general.sum())


def generate(work: Path, grid=GRID, n_trials=N_TRIALS, seed=0):
    """Write the session in both formats plus nsdgeneral, its ctab and a design file."""
    import h5py
    import nibabel as nib
    import scipy.io

    rng = np.random.default_rng(seed)
    betas_dir, roi_dir = _paths(work)
    betas_dir.mkdir(parents=True, exist_ok=True)
    X, Y, Z = grid
    brain, _, affine = _geometry(grid)
    write_mask(work, grid)

    data = np.zeros(grid + (n_trials,), dtype=np.int16, order="F")
    bidx = np.nonzero(brain)
    for t in range(n_trials):
        vol = np.zeros(grid, dtype=np.int16)
        vol[bidx] = np.clip(rng.normal(0, 600, size=len(bidx[0])), -32000, 32000).astype(np.int16)
        data[..., t] = vol
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.int16)
    nib.save(img, str(betas_dir / "betas_session01.nii.gz"))
    with h5py.File(betas_dir / "betas_session01.hdf5", "w") as f:
        dset = f.create_dataset("betas", shape=(n_trials, Z, Y, X), dtype=np.int16, chunks=(n_trials, 1, 1, 1))
        for z in range(Z):  # write by z-slab to bound memory
            dset[:, z, :, :] = np.ascontiguousarray(data[:, :, z, :].transpose(2, 1, 0))
    del data
    exp = work / "nsd" / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True, exist_ok=True)
    sub = np.tile(np.arange(1, 10001), (8, 1))
    scipy.io.savemat(str(exp / "nsd_expdesign.mat"), {
        "masterordering": rng.integers(1, 10001, size=(1, 30000)).astype(np.uint16),
        "subjectim": sub.astype(np.int32), "sharedix": np.arange(1, 1001)[None].astype(np.int32)})
    return write_mask(work, grid)


def route(name: str, work: Path) -> dict:
    """Run one route in this process; return internal timing."""
    betas_dir, roi_dir = _paths(work)
    nii = betas_dir / "betas_session01.nii.gz"
    t0 = time.perf_counter()
    if name in ("ours_nii", "ours_hdf5"):
        from brainalign.ingest import ingest_nsd

        fmt = "nii.gz" if name == "ours_nii" else "hdf5"
        out = work / f"{name}.zarr"
        ingest_nsd(work / "nsd", 1, out, input_format=fmt, atlases=["nsdgeneral"])
        shape = None
    elif name == "naive":
        import nibabel as nib
        from nilearn.image import new_img_like
        from nilearn.maskers import NiftiMasker

        mimg = nib.load(str(roi_dir / "nsdgeneral.nii.gz"))
        mask = new_img_like(mimg, (mimg.get_fdata() > 0).astype(np.int8))
        img = nib.load(str(nii))
        x = NiftiMasker(mask_img=mask).fit_transform(img) / 300.0
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
        shape = list(x.shape)
    elif name == "floor":
        import zlib

        d = zlib.decompressobj(wbits=31)
        n = 0
        with open(nii, "rb") as fh:
            while chunk := fh.read(4 << 20):
                while chunk:
                    if d.eof:  # multi-member gzip
                        chunk, d = d.unused_data, zlib.decompressobj(wbits=31)
                        continue
                    n += len(d.decompress(chunk, 32 << 20))  # bounded output per call
                    chunk = d.unconsumed_tail
        shape = [n]
    else:
        raise SystemExit(f"unknown route {name}")
    return {"route": name, "inner_s": time.perf_counter() - t0, "shape": shape}


def measure(name: str, work: Path) -> dict:
    """Run a route in a fresh subprocess; wall seconds and peak RSS (ru_maxrss of that child)."""
    env = dict(os.environ, BRAINALIGN_PROGRESS="0")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--route", name, "--workdir", str(work)],
                            stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"route {name} failed")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res.update(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024.0)
    return res


def gzip_cli_floor(nii: Path) -> float | None:
    if not shutil.which("gzip"):
        return None
    t0 = time.perf_counter()
    subprocess.run(f"gzip -dc '{nii}' > /dev/null", shell=True, check=True)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None, help="where to write the session (default: a temp dir, removed)")
    ap.add_argument("--route", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--routes", default="floor,ours_nii,ours_hdf5,naive")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.route:
        print(json.dumps(route(args.route, Path(args.workdir))))
        return 0
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="bench_ingest_")
        work = Path(tmp)
    else:
        work = Path(args.workdir)
    try:
        betas_dir, _ = _paths(work)
        n_vox = write_mask(work)
        if not (betas_dir / "betas_session01.hdf5").is_file():
            t0 = time.perf_counter()
            n_vox = generate(work)
            print(f"generated session ({GRID} x {N_TRIALS} int16, {n_vox} mask voxels) in "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        nii = betas_dir / "betas_session01.nii.gz"
        sizes = {p.name: p.stat().st_size / 2 ** 20 for p in betas_dir.iterdir()}
        results = []
        for _ in range(args.repeats):
            for name in args.routes.split(","):
                r = measure(name, work)
                results.append(r)
                print(f"{name:10s} wall {r['wall_s']:6.2f} s  inner {r['inner_s']:6.2f} s  "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB", file=sys.stderr)
        cli = gzip_cli_floor(nii)
        best = {}
        for r in results:
            if r["route"] not in best or r["wall_s"] < best[r["route"]]["wall_s"]:
                best[r["route"]] = r
        summary = {"grid": GRID, "mask_voxels": n_vox, "trials": N_TRIALS, "file_mb": sizes, "gzip_cli_s": cli,
                   "best": best, "all": results}
        if "floor" in best:
            f = best["floor"]["inner_s"]
            for name in ("ours_nii", "ours_hdf5", "naive"):
                if name in best:
                    best[name]["x_floor_inner"] = best[name]["inner_s"] / f
        if "naive" in best:
            for name in ("ours_nii", "ours_hdf5"):
                if name in best:
                    best[name]["speedup_vs_naive_wall"] = best["naive"]["wall_s"] / best[name]["wall_s"]
                    best[name]["rss_fraction_of_naive"] = best[name]["peak_rss_mb"] / best["naive"]["peak_rss_mb"]
        text = json.dumps(summary, indent=2)
        print(text)
        if args.json:
            Path(args.json).write_text(text)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
