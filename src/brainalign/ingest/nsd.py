"""NSD volume betas -> voxel store (layout: docs/datasets.md §1)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output, progress
from ..errors import InputError
from ..store import VoxelStoreWriter
from ..zscore import zscore_block
from .inputs import check_out, check_root, parse_sessions, provenance, select_sessions
from .nifti import (
    AFFINE_TOLERANCE_MM,
    check_real_dtype,
    fortran_flat_index,
    load_nifti_header,
    load_volume,
    nifti_scaling,
    read_nifti_voxels,
)
from .mean_volume import MeanBeta, read_mean_image
from .screening import VoxelScreen

log = logging.getLogger(__name__)

TRIALS_PER_SESSION = 750
BETA_SCALE = 300.0  # int16 betas = percent signal change x 300
#: NSD shows each of a subject's 10,000 images 3 times over 30,000 trials (docs/datasets.md §1.2, §1.5)
MAX_PRESENTATIONS = 3
DEFAULT_BETA_VERSION = "betas_fithrf_GLMdenoise_RR"
BETA_VERSIONS = ("betas_assumehrf", "betas_fithrf", "betas_fithrf_GLMdenoise_RR")
SPACES = ("func1pt8mm", "func1mm")
DEFAULT_ATLASES = ("prf-visualrois", "floc-faces", "floc-bodies", "floc-places", "floc-words", "streams", "nsdgeneral")
NON_CORTICAL_ATLASES = ("thalamus", "MTL")
DESIGN_VARS = ("masterordering", "subjectim", "sharedix")
DESIGN_PATH = Path("nsddata", "experiments", "nsd", "nsd_expdesign.mat")


def parse_subject(subject) -> int:
    """``1``, ``"1"``, ``"01"`` or ``"subj01"`` -> 1 (1..8)."""
    m = re.fullmatch(r"(?:subj)?0*(\d+)", str(subject).strip())
    if not m or not 1 <= int(m.group(1)) <= 8:
        raise InputError("--subject", f"{subject!r} is not an NSD subject (1..8 or subj01..subj08)")
    return int(m.group(1))


def parse_ctab(path) -> dict[int, str]:
    """``index name`` per line (first ``0 Unknown``; whitespace-separated, trailing tabs allowed)."""
    labels = {}
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read label table ({exc})") from exc
    for n, line in enumerate(text.splitlines(), 1):
        parts = re.split(r"\s+", line.strip())
        if not parts or parts == [""]:
            continue
        try:
            index = int(parts[0])
        except ValueError:
            raise InputError(path, f"line {n}: expected '<index> <name>', got {line!r}") from None
        if index in labels:
            raise InputError(path, f"line {n}: label {index} listed a second time")
        labels[index] = parts[1] if len(parts) > 1 else parts[0]
    if not labels:
        raise InputError(path, "label table is empty")
    return labels


def _ctab_path(root: Path, sid: str, atlas: str):
    candidates = [
        root / "nsddata" / "freesurfer" / sid / "label" / f"{atlas}.mgz.ctab",
        root / "nsddata" / "freesurfer" / "fsaverage" / "label" / f"{atlas}.mgz.ctab",
        root / "nsddata" / "templates" / f"{atlas}.ctab",
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise InputError(candidates[0], f"label table for atlas {atlas!r} not found (also looked in fsaverage/label and templates)")


def _read_design(path):
    """``masterordering`` (1-based 10k indices), ``subjectim`` (8, 10000; 1-based 73k IDs), ``sharedix``
    (1-based 73k IDs) from ``nsd_expdesign.mat``, as int64 arrays."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "NSD design file not found")
    try:
        mat = loadmat(str(path))
    except Exception as exc:
        raise InputError(path, f"cannot read MAT file ({type(exc).__name__}: {exc})") from exc
    missing = [v for v in DESIGN_VARS if v not in mat]
    if missing:
        raise InputError(path, f"variables {missing} missing")
    arrays = {}
    for name in DESIGN_VARS:
        value = np.asarray(mat[name])
        if value.dtype.kind not in "iuf" or (value.dtype.kind == "f" and not np.isfinite(value).all()):
            raise InputError(path, f"{name} holds {value.dtype} values{' with NaN/inf' if value.dtype.kind == 'f' else ''}; "
                                   "expected whole numbers (1-based indices)")
        if value.dtype.kind == "f" and not np.array_equal(value, np.round(value)):
            raise InputError(path, f"{name} holds fractional values; expected whole numbers (1-based indices)")
        arrays[name] = value.astype(np.int64)
    order = arrays["masterordering"].ravel()
    subjectim = arrays["subjectim"]
    shared = arrays["sharedix"].ravel()
    if subjectim.ndim != 2:
        raise InputError(path, f"subjectim has shape {subjectim.shape}; expected (subjects, 10000)")
    return order, subjectim, shared


def load_design(path, subject: int, n_trials_needed: int):
    """Per-global-trial 0-based nsdId for one subject, and the 0-based shared nsdIds.

    Image of subject p at global trial t (1-based) = ``subjectim[p-1, masterordering[t-1]-1]``
    (1-based 73k ID); nsdId = that - 1 (datasets.md §1.5).

    Returns
    -------
    nsd_ids : int64 (n_trials_needed,)
    shared_ids : int64 (n_shared,)
    """
    order, subjectim, shared = _read_design(path)
    if subjectim.shape[0] < subject:
        raise InputError(path, f"subjectim has shape {subjectim.shape}; no row for subject {subject}")
    if order.size < n_trials_needed:
        raise InputError(path, f"masterordering has {order.size} entries, the sessions need {n_trials_needed}")
    order = order[:n_trials_needed]
    if order.min() < 1 or order.max() > subjectim.shape[1]:
        raise InputError(path, f"masterordering values outside 1..{subjectim.shape[1]}")
    counts = np.bincount(order)
    if counts.max() > MAX_PRESENTATIONS:
        raise InputError(path, f"masterordering shows 10k index {int(counts.argmax())} {int(counts.max())} times in "
                               f"the first {n_trials_needed} trials; NSD shows an image at most {MAX_PRESENTATIONS} times")
    row = subjectim[subject - 1]
    if len(np.unique(row)) != len(row):
        raise InputError(path, f"subjectim row {subject} lists the same 73k ID more than once; a subject's images "
                               "are distinct")
    ids73k = row[order - 1]
    if ids73k.min() < 1:
        raise InputError(path, "subjectim holds 73k IDs < 1 for trials of this subject (expected 1-based IDs)")
    return ids73k - 1, shared - 1


def design_stimuli(root):
    """Every image of the NSD design (any subject) and the shared ones, as 0-based nsdIds.

    The stimulus set of the dataset, independent of which subjects are ingested: ``subjectim`` holds each
    subject's 10,000 images (1-based 73k IDs; 73,000 in all), ``sharedix`` the 1,000 shared ones.

    Returns
    -------
    all_ids : int64 (n_images,), sorted
    shared_ids : int64 (n_shared,), sorted
    """
    path = Path(root) / DESIGN_PATH
    _, subjectim, shared = _read_design(path)
    if subjectim.min() < 1 or shared.min() < 1:
        raise InputError(path, "subjectim/sharedix hold IDs < 1 (expected 1-based 73k IDs)")
    if not np.isin(shared, subjectim).all():
        raise InputError(path, "sharedix holds IDs that no subject's subjectim row contains")
    return np.unique(subjectim) - 1, np.unique(shared) - 1


def _beta_files(betas_dir: Path, fmt: str):
    ext = {"nii.gz": ".nii.gz", "hdf5": ".hdf5"}[fmt]
    found = {}
    for p in betas_dir.glob(f"betas_session*{ext}"):
        m = re.fullmatch(r"betas_session(\d+)" + re.escape(ext), p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def _hdf5_info(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "betas" not in f:
                raise InputError(path, f"no dataset '/betas' (has {list(f.keys())})")
            d = f["betas"]
            return tuple(int(v) for v in d.shape), d.dtype
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot open HDF5 file ({type(exc).__name__}: {exc})") from exc


def read_hdf5_voxels(path, voxel_ijk, grid_shape, slab_bytes=128 << 20):
    """Read selected voxels of an NSD ``/betas`` HDF5 (h5py shape (T, Z, Y, X)).

    Uses direct chunk reads when the file has NSD's one-voxel-by-all-trials chunks (no filters),
    otherwise Z-slabs of bounded size.

    Returns
    -------
    ndarray (T, n_selected) int16 (raw values)
    """
    import h5py

    ijk = np.asarray(voxel_ijk, dtype=np.int64)
    try:
        with h5py.File(path, "r") as f:
            d = f["betas"]
            n_t = d.shape[0]
            if d.shape[1:] != tuple(grid_shape[::-1]):
                raise InputError(path, f"/betas shape {d.shape} does not match grid {grid_shape} as (T, Z, Y, X)")
            dtype = d.dtype.newbyteorder("=")
            out = np.empty((n_t, len(ijk)), dtype=dtype)
            plist = d.id.get_create_plist()
            if d.chunks == (n_t, 1, 1, 1) and plist.get_nfilters() == 0:
                fill = d.fillvalue
                for m, (i, j, k) in enumerate(ijk):
                    try:
                        _, raw = d.id.read_direct_chunk((0, int(k), int(j), int(i)))
                    except (KeyError, OSError, ValueError):  # chunk never written: fill value
                        out[:, m] = fill
                        continue
                    out[:, m] = np.frombuffer(raw, dtype=d.dtype, count=n_t)
            else:
                z_dim, y_dim, x_dim = d.shape[1:]
                nz = max(1, int(slab_bytes // max(1, n_t * y_dim * x_dim * d.dtype.itemsize)))
                for z0 in range(0, z_dim, nz):
                    sel = (ijk[:, 2] >= z0) & (ijk[:, 2] < z0 + nz)
                    if not sel.any():
                        continue
                    slab = d[:, z0:z0 + nz, :, :]
                    s = ijk[sel]
                    out[:, sel] = slab[:, s[:, 2] - z0, s[:, 1], s[:, 0]]
                    del slab
            return out
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot read HDF5 betas, corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def ingest_nsd(root, subject, out, sessions=None, beta_version=DEFAULT_BETA_VERSION, space="func1pt8mm",
               input_format="auto", mask="nsdgeneral", atlases=DEFAULT_ATLASES, zscore=True, chunks=None):
    """Ingest NSD single-trial volume betas of one subject into a voxel store.

    Parameters
    ----------
    root : path
        NSD root (contains ``nsddata/`` and ``nsddata_betas/``).
    subject : int or str
        1..8 or ``subj01``..``subj08``.
    out : path
        Output ``*.zarr`` (written atomically).
    sessions : list[int] or str, optional
        Sessions to use (1-based); default all ``betas_session*.{ext}`` files found.
    beta_version : str
        ``betas_assumehrf`` | ``betas_fithrf`` | ``betas_fithrf_GLMdenoise_RR``.
    space : str
        ``func1pt8mm`` or ``func1mm``.
    input_format : str
        ``nii.gz``, ``hdf5`` or ``auto`` (``nii.gz`` if any are present, else ``hdf5``).
    mask : str
        ``nsdgeneral`` (> 0, default), ``brainmask``, another atlas name (> 0), or a NIfTI path (> 0).
    atlases : sequence of str
        ROI atlases to attach as ``roi/<atlas>`` int16 labels (``-1`` becomes 0).
    zscore : bool
        z-score each voxel within each session (ddof=0).
    chunks : (int, int), optional
        Chunk shape of ``betas``.

    Returns
    -------
    Path of the store. Rows: sessions in ascending order, 750 trials each, in presentation order.
    Values are percent signal change (integer files as released: raw / 300; float files are taken as percent
    signal change already), z-scored per session if ``zscore``. Voxels with non-finite or constant betas
    are left out and recorded (:mod:`brainalign.ingest.screening`).
    """
    root = check_root(root)
    out = check_out(out)
    p = parse_subject(subject)
    sid = f"subj{p:02d}"
    if beta_version not in BETA_VERSIONS:
        raise InputError("--beta-version", f"{beta_version!r}; choose from {BETA_VERSIONS}")
    if space not in SPACES:
        raise InputError("--space", f"{space!r}; choose from {SPACES}")
    if input_format not in ("auto", "nii.gz", "hdf5"):
        raise InputError("--format", f"{input_format!r}; choose nii.gz, hdf5 or auto")
    betas_dir = root / "nsddata_betas" / "ppdata" / sid / space / beta_version
    if not betas_dir.is_dir():
        raise InputError(betas_dir, "betas directory not found")
    if input_format == "auto":
        input_format = "nii.gz" if _beta_files(betas_dir, "nii.gz") else "hdf5"
    found = _beta_files(betas_dir, input_format)
    if not found:
        raise InputError(betas_dir, f"no betas_session*.{input_format} files")
    use = select_sessions(found, parse_sessions(sessions), betas_dir)
    n_sessions_found = max(found)
    func_dir = root / "nsddata" / "ppdata" / sid / space
    roi_dir = func_dir / "roi"

    # --- voxel selection mask (defines the grid and the affine) ---
    if mask == "brainmask":
        mask_path = func_dir / "brainmask.nii.gz"
    elif Path(str(mask)).suffix in (".gz", ".nii") and Path(mask).is_file():
        mask_path = Path(mask)
    else:
        mask_path = roi_dir / f"{mask}.nii.gz"
        if not mask_path.is_file():
            raise InputError(mask_path, f"mask {mask!r} not found (use nsdgeneral, brainmask, an atlas name or a NIfTI path)")
    mask_vol, affine = load_volume(mask_path)
    grid = mask_vol.shape
    reference = f"the mask {mask_path.name}"
    voxel_ijk = np.argwhere(mask_vol > 0).astype(np.int64)
    if len(voxel_ijk) == 0:
        raise InputError(mask_path, "mask selects no voxels")
    if len(voxel_ijk) == mask_vol.size and mask_vol.size > 1:
        log.warning("%s: the mask selects every voxel of the grid (a constant volume?)", mask_path)
    sel = tuple(voxel_ijk.T)

    # --- check every session's header before writing anything ---
    kinds, scalings = {}, {}
    for s in use:
        path = found[s]
        if input_format == "nii.gz":
            img = load_nifti_header(path)
            shape = tuple(int(v) for v in img.shape)
            if len(shape) != 4 or shape[:3] != grid:
                raise InputError(path, f"betas shape {shape} does not match the mask grid {grid} (+ trials)")
            n_t = shape[3]
            dtype = check_real_dtype(path, img.get_data_dtype())
            diff = float(np.max(np.abs(np.asarray(img.affine, dtype=np.float64) - affine)))
            if not diff <= AFFINE_TOLERANCE_MM:
                # the release's beta affines are unverified (docs/datasets.md §1.2): the mask defines the grid
                log.warning("%s: affine differs from that of %s by up to %.4g mm; the store takes the mask's",
                            path, reference, diff)
            scalings[s] = nifti_scaling(img)
        else:
            shape, dtype = _hdf5_info(path)
            if len(shape) != 4 or shape[1:] != grid[::-1]:
                raise InputError(path, f"/betas shape {shape} does not match the mask grid {grid} as (T, Z, Y, X)")
            n_t = shape[0]
            dtype = check_real_dtype(path, dtype)
            scalings[s] = None
        if n_t != TRIALS_PER_SESSION:
            raise InputError(path, f"{n_t} trials; the NSD design has {TRIALS_PER_SESSION} per session")
        kinds[s] = "float" if dtype.kind == "f" else "integer"
    if len(set(kinds.values())) > 1:
        odd = next(s for s in use if kinds[s] != kinds[use[0]])
        raise InputError(found[odd], f"{kinds[odd]} betas, but {found[use[0]].name} holds {kinds[use[0]]} ones: one "
                                     "store cannot mix the int16 x300 release files with float files")
    float_betas = kinds[use[0]] == "float"
    if float_betas:
        # the released volume betas are int16 x 300; float files (e.g. converted copies) hold percent signal
        # change already, like NSD's float surface betas (docs/datasets.md §1.3): not divided by 300
        log.warning("%s: float betas, taken as percent signal change (not divided by %g as the int16 release "
                    "files are)", found[use[0]].parent, BETA_SCALE)

    # --- ROIs ---
    rois, roi_files = {}, []
    for atlas in atlases:
        apath = roi_dir / f"{atlas}.nii.gz"
        if not apath.is_file():
            raise InputError(apath, f"unknown ROI atlas {atlas!r} (no such file)")
        vol, _ = load_volume(apath, expect_shape=grid, expect_affine=affine, reference=reference)
        if atlas != mask and np.ptp(vol[sel]) == 0 and len(voxel_ijk) > 1:
            log.warning("%s: one label (%g) for every selected voxel (a constant volume?)", apath, vol[sel][0])
        ctab = _ctab_path(root, sid, atlas)
        names = parse_ctab(ctab)
        labels = np.rint(vol[sel]).astype(np.int64)
        labels[labels < 0] = 0  # -1 = not cortical
        unnamed = sorted(set(np.unique(labels).tolist()) - set(names) - {0})
        if unnamed:
            log.warning("%s: labels %s of %s have no name in the table", ctab, unnamed[:10], apath.name)
        rois[atlas] = (labels.astype(np.int16), {k: v for k, v in names.items() if k != 0})
        roi_files += [apath, ctab]

    ncsnr, ncsnr_files = None, []
    ncsnr_path = betas_dir / "ncsnr.nii.gz"
    if ncsnr_path.is_file():
        vol, _ = load_volume(ncsnr_path, expect_shape=grid, expect_affine=affine, reference=reference, finite=False)
        ncsnr = vol[sel].astype(np.float32)
        ncsnr_files = [ncsnr_path]
        bad = ~np.isfinite(ncsnr) | (ncsnr < 0)
        if bad.all() or (len(ncsnr) > 1 and np.ptp(ncsnr) == 0):
            raise InputError(ncsnr_path, "no usable value in the selected voxels (all non-finite, negative or "
                                         "equal): not an ncsnr map")
        if bad.any():
            log.warning("%s: %d of %d selected voxels have a non-finite or negative ncsnr; stored as NaN",
                        ncsnr_path, int(bad.sum()), len(ncsnr))
            ncsnr[bad] = np.nan
    else:
        log.warning("%s: not found; store will have no ncsnr", ncsnr_path)

    # --- mean image of the grid (background of brain maps): the release's, else the mean beta (mean_volume.py)
    mean_path = func_dir / "mean.nii.gz"
    mean_image = read_mean_image(mean_path, grid, affine, reference) if mean_path.is_file() else None
    mean_files = [mean_path] if mean_image is not None else []

    # --- design: trial -> image ---
    design_path = root / DESIGN_PATH
    n_needed = TRIALS_PER_SESSION * max(n_sessions_found, max(use))
    nsd_ids, shared_ids = load_design(design_path, p, n_needed)
    design = pd.DataFrame({
        "session": np.repeat(np.arange(1, n_needed // TRIALS_PER_SESSION + 1), TRIALS_PER_SESSION),
        "trial": np.tile(np.arange(1, TRIALS_PER_SESSION + 1), n_needed // TRIALS_PER_SESSION),
        "stimulus": nsd_ids.astype(np.int64),
    })
    # repetition counted over the subject's whole design up to that trial (= NSD subjectX_repN order)
    design["repetition"] = design.groupby("stimulus", sort=False).cumcount().astype(np.int64)
    design["shared"] = design["stimulus"].isin(shared_ids)
    trials = design[design["session"].isin(use)].reset_index(drop=True)
    trials["session"] = pd.Categorical(trials["session"], categories=use, ordered=True)
    trials = trials.sort_values(["session", "trial"], kind="stable").reset_index(drop=True)
    trials["session"] = trials["session"].astype(np.int64)

    options = dict(subject=sid, sessions=use, beta_version=beta_version, space=space,
                   input_format=input_format, mask=str(mask), atlases=list(atlases), zscore=bool(zscore))
    prov = provenance([found[s] for s in use] + [mask_path, design_path] + roi_files + ncsnr_files + mean_files,
                      options, "ingest nsd", root)
    attrs = {"dataset": "nsd", "subject": sid, "zscored": bool(zscore), "synthetic": False,
             "space": space, "beta_version": beta_version, "units": "z" if zscore else "percent signal change",
             "beta_scale": 1.0 if float_betas else BETA_SCALE, "provenance": prov}

    flat = fortran_flat_index(voxel_ijk, grid)
    mean_beta = MeanBeta(grid)
    screen = VoxelScreen(len(voxel_ijk))
    with atomic_output(out) as tmp:
        writer = VoxelStoreWriter(tmp, len(trials), len(voxel_ijk), chunks=chunks)
        for s in progress(use, desc=f"NSD {sid} sessions", unit="session"):
            if input_format == "nii.gz":
                session_sum = mean_beta.session_buffer() if mean_image is None else None
                raw = read_nifti_voxels(found[s], flat, n_volumes=TRIALS_PER_SESSION, volume_sum=session_sum)
                if session_sum is not None:
                    slope, inter = ((1 / BETA_SCALE, 0.0) if not float_betas else scalings[s] or (1.0, 0.0))
                    mean_beta.add_session_sum(session_sum, TRIALS_PER_SESSION, slope, inter)
            else:
                raw = read_hdf5_voxels(found[s], voxel_ijk, grid)
            block = raw.astype(np.float32)
            del raw
            if float_betas and scalings[s] is not None:
                block = block * np.float32(scalings[s][0]) + np.float32(scalings[s][1])
            block = screen.check_session(block, found[s])
            if not float_betas:
                block /= np.float32(BETA_SCALE)
            if mean_image is None and input_format != "nii.gz":
                mean_beta.add_voxels(block, flat)
            if zscore:
                block = zscore_block(block)
            writer.append(block)
            del block
        if mean_image is not None:
            writer.add_mean_volume(mean_image, mean_path.relative_to(root).as_posix())
        else:
            writer.add_mean_volume(mean_beta.volume(), mean_beta.source())
        writer.finish(trials, voxel_ijk, grid, affine, rois=rois, ncsnr=ncsnr, attrs=attrs,
                      exclude=screen.exclusion())
    return out
