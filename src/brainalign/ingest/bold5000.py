"""BOLD5000 Release 2.0 GLMsingle betas -> voxel store (layout: docs/datasets.md §2)."""

from __future__ import annotations

import logging
import os
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
    check_affine,
    check_real_dtype,
    fortran_flat_index,
    load_nifti_header,
    load_volume,
    nifti_scaling,
    read_nifti_voxels,
)
from .mean_volume import MeanBeta
from .screening import VoxelScreen

log = logging.getLogger(__name__)

DEFAULT_BETA_VERSION = "TYPED-FITHRF-GLMDENOISE-RR"
ROI_NAMES = tuple(f"{h}{r}" for r in ("EarlyVis", "LOC", "OPA", "PPA", "RSC") for h in ("LH", "RH"))
#: misnamed mask files in the release (bonner-b5k): subject -> {name in file: ROI}
ROI_FILE_ALIASES = {2: {"LHLO": "LHLOC", "RHLO": "RHLOC", "RHRRSC": "RHRSC"}, 3: {"LHLO": "LHLOC", "RHLO": "RHLOC"}}
REPEATED_LIST = "repeated_stimuli_113_list.txt"
#: BOLD5000 shows an image at most 4 times (docs/datasets.md §2.4)
MAX_PRESENTATIONS = 4


def parse_subject(subject) -> int:
    """``1``, ``"CSI1"``, ``"sub-CSI1"`` -> 1 (1..4)."""
    m = re.fullmatch(r"(?:sub-)?(?:CSI)?0*(\d+)", str(subject).strip(), flags=re.IGNORECASE)
    if not m or not 1 <= int(m.group(1)) <= 4:
        raise InputError("--subject", f"{subject!r} is not a BOLD5000 subject (1..4 or CSI1..CSI4)")
    return int(m.group(1))


def _index_tree(root: Path):
    """name -> [paths] for every file below root (the release files may sit anywhere)."""
    files = {}
    for dirpath, _, names in os.walk(root, followlinks=True):
        for n in names:
            files.setdefault(n, []).append(Path(dirpath) / n)
    return files


def _unique(files, name, root, required=True):
    paths = files.get(name, [])
    if len(paths) > 1:
        raise InputError(root, f"{name} found {len(paths)} times: {[str(p) for p in paths]}; keep one")
    if not paths:
        if required:
            raise InputError(root / name, f"{name} not found anywhere below the root")
        return None
    return paths[0]


def read_name_list(path):
    """One image file name per line (blank lines dropped, ``rep_`` prefix stripped)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read name list ({exc})") from exc
    if text and not text.endswith("\n"):  # the release's lists are newline-terminated (docs/datasets.md §2.3)
        log.warning("%s: the last line has no newline: a truncated file? (last name %r)", path,
                    text.splitlines()[-1][:80])
    lines = text.splitlines()
    names = [ln.strip() for ln in lines if ln.strip()]
    if not names:
        raise InputError(path, "name list is empty")
    return [n[4:] if n.startswith("rep_") else n for n in names]


def check_presentations(names, path):
    """Refuse an image list that shows an image more often than BOLD5000 ever does (a corrupt list)."""
    counts = pd.Series(names).value_counts()
    if counts.iloc[0] > MAX_PRESENTATIONS:
        raise InputError(path, f"{counts.index[0]!r} listed {int(counts.iloc[0])} times; BOLD5000 shows an image at "
                               f"most {MAX_PRESENTATIONS} times")


def read_repeated_list(path):
    """The repeated-images list: distinct names, one per line."""
    names = read_name_list(path)
    if len(set(names)) != len(names):
        dup = pd.Series(names).value_counts()
        raise InputError(path, f"{dup.index[0]!r} listed {int(dup.iloc[0])} times; the list names each repeated "
                               "image once")
    return set(names)


def design_stimuli(root):
    """Every image any subject saw (union of all ``CSI{N}_imgnames.txt`` below root) and the repeated ones.

    The stimulus set of the dataset, independent of which subjects are ingested. Repeated images come from
    ``repeated_stimuli_113_list.txt`` or, without it, are those shown more than once to some subject.

    Returns
    -------
    all_ids : list of str, sorted image file names
    repeated_ids : list of str, sorted
    """
    root = Path(root)
    files = _index_tree(root)
    lists = sorted(n for n in files if re.fullmatch(r"CSI[1-4]_imgnames\.txt", n))
    if not lists:
        raise InputError(root / "CSI1_imgnames.txt", "no CSI{N}_imgnames.txt found anywhere below the root")
    seen, repeated = set(), set()
    for name in lists:
        path = _unique(files, name, root)
        names = pd.Series(read_name_list(path))
        check_presentations(names, path)
        seen.update(names)
        counts = names.value_counts()
        repeated.update(counts.index[counts > 1])
    repeated_path = _unique(files, REPEATED_LIST, root, required=False)
    if repeated_path is not None:
        repeated = read_repeated_list(repeated_path)
    return sorted(seen), sorted(repeated & seen)


def ingest_bold5000(root, subject, out, sessions=None, beta_version=DEFAULT_BETA_VERSION, mask="roi-union",
                    rois=ROI_NAMES, zscore=True, chunks=None):
    """Ingest BOLD5000 GLMsingle single-trial betas of one subject into a voxel store.

    The root is searched recursively for the Release 2.0 file names (``CSI{N}_GLMbetas-{VERSION}_ses-{SS}.nii.gz``,
    ``CSI{N}_imgnames.txt``, ``CSI{N}_brainmask.nii.gz``, ``sub-CSI{N}_mask-*.nii.gz``,
    ``repeated_stimuli_113_list.txt``).

    Parameters
    ----------
    root : path
    subject : int or str
        1..4 or ``CSI1``..``CSI4``.
    out : path
        Output ``*.zarr``.
    sessions : list[int] or str, optional
        Sessions to store (default all found). Trial names are always aligned using all sessions found,
        whose trial counts must add up to the lines of ``imgnames``.
    beta_version : str
        GLM variant in the file name (default ``TYPED-FITHRF-GLMDENOISE-RR``).
    mask : str
        ``roi-union`` (union of the ROI masks, default), ``brainmask``, or a NIfTI path (> 0).
    rois : sequence of str
        ROI masks to attach as bool ``roi/<name>`` (subset of LH/RH x EarlyVis, LOC, OPA, PPA, RSC).
    zscore : bool
        z-score each voxel within each session (ddof=0).

    Returns
    -------
    Path of the store; ``stimulus`` = image file name, ``shared`` = in the repeated-113 list. Voxels with
    non-finite or constant betas are left out and recorded (:mod:`brainalign.ingest.screening`).
    """
    root = check_root(root)
    out = check_out(out)
    n = parse_subject(subject)
    sid = f"CSI{n}"
    unknown = [r for r in rois if r not in ROI_NAMES]
    if unknown:
        raise InputError("--rois", f"unknown BOLD5000 ROI names {unknown}; known: {list(ROI_NAMES)}")
    files = _index_tree(root)

    pattern = re.compile(rf"{sid}_GLMbetas-{re.escape(beta_version)}_ses-(\d+)\.nii\.gz")
    found = {}
    for name, paths in files.items():
        m = pattern.fullmatch(name)
        if m:
            found[int(m.group(1))] = _unique(files, name, root)
    if not found:
        raise InputError(root, f"no {sid}_GLMbetas-{beta_version}_ses-*.nii.gz files below the root")
    use = select_sessions(found, parse_sessions(sessions), root)
    if sorted(found) != list(range(1, max(found) + 1)):
        raise InputError(root, f"{sid} sessions found {sorted(found)} are not 1..{max(found)}; "
                               "cannot align trials with imgnames")

    # --- ROI mask files (remapping misnamed ones) ---
    roi_pattern = re.compile(rf"sub-{sid}_mask-(\w+)\.nii\.gz")
    aliases = ROI_FILE_ALIASES.get(n, {})
    roi_paths = {}
    for name, paths in files.items():
        m = roi_pattern.fullmatch(name)
        if not m:
            continue
        roi = aliases.get(m.group(1), m.group(1))
        if roi not in ROI_NAMES:
            log.warning("%s: not a known BOLD5000 ROI mask; ignored", paths[0])
            continue
        if roi in roi_paths:
            raise InputError(paths[0], f"second mask file for ROI {roi} (also {roi_paths[roi]})")
        roi_paths[roi] = _unique(files, name, root)
    needed = set(rois) | (set(ROI_NAMES) if mask == "roi-union" else set())
    missing = sorted(needed - set(roi_paths))
    if missing:
        raise InputError(root, f"ROI masks {missing} of {sid} not found (sub-{sid}_mask-<ROI>.nii.gz)")

    # --- headers: grid, space and trials per session ---
    first = load_nifti_header(found[use[0]])
    grid = tuple(int(v) for v in first.shape[:3])
    affine = np.asarray(first.affine, dtype=np.float64)
    reference = f"the betas {found[use[0]].name}"
    n_trials, scalings = {}, {}
    for s in sorted(found):
        img = load_nifti_header(found[s])
        shape = tuple(int(v) for v in img.shape)
        if len(shape) != 4 or shape[:3] != grid:
            raise InputError(found[s], f"betas shape {shape} does not match grid {grid} (+ trials)")
        n_trials[s] = shape[3]
        if s in use:
            check_affine(found[s], img.affine, affine, reference)
            dtype = check_real_dtype(found[s], img.get_data_dtype())
            scalings[s] = nifti_scaling(img)
            if dtype.kind != "f" and scalings[s] is None:
                log.warning("%s: %s betas without header scaling; the release files are float32 percent signal "
                            "change, these are taken as stored", found[s], dtype)

    imgnames_path = _unique(files, f"{sid}_imgnames.txt", root)
    names = read_name_list(imgnames_path)
    check_presentations(names, imgnames_path)
    total = sum(n_trials.values())
    if len(names) != total:
        raise InputError(imgnames_path, f"{len(names)} image names but the {len(found)} sessions found hold "
                                        f"{total} trials ({[n_trials[s] for s in sorted(found)]})")

    roi_vols = {r: load_volume(roi_paths[r], expect_shape=grid, expect_affine=affine, reference=reference)[0] > 0
                for r in sorted(needed)}
    if mask == "roi-union":
        mask_path = None
        mask_vol = np.zeros(grid, dtype=bool)
        for r in ROI_NAMES:
            mask_vol |= roi_vols[r]
    else:
        mask_path = (_unique(files, f"{sid}_brainmask.nii.gz", root) if mask == "brainmask" else Path(mask))
        if not mask_path.is_file():
            raise InputError(mask_path, "mask not found (use roi-union, brainmask or a NIfTI path)")
        mask_vol = load_volume(mask_path, expect_shape=grid, expect_affine=affine, reference=reference)[0] > 0
    voxel_ijk = np.argwhere(mask_vol).astype(np.int64)
    if len(voxel_ijk) == 0:
        raise InputError(mask_path or root, "mask selects no voxels")
    if len(voxel_ijk) == mask_vol.size and mask_vol.size > 1:
        log.warning("%s: the mask selects every voxel of the grid (a constant volume?)", mask_path or "roi-union")
    for r in sorted(needed):
        if not roi_vols[r].any() or roi_vols[r].all():
            log.warning("%s: ROI mask %s covers %s voxel of the grid", roi_paths[r], r,
                        "no" if not roi_vols[r].any() else "every")
    sel = tuple(voxel_ijk.T)
    roi_members = {r: roi_vols[r][sel] for r in rois}

    repeated_path = _unique(files, REPEATED_LIST, root, required=False)
    offsets = np.cumsum([0] + [n_trials[s] for s in sorted(found)])
    design = pd.DataFrame({
        "session": np.repeat(sorted(found), [n_trials[s] for s in sorted(found)]).astype(np.int64),
        "trial": np.concatenate([np.arange(1, n_trials[s] + 1) for s in sorted(found)]).astype(np.int64),
        "stimulus": pd.array(names, dtype=str),
    })
    design["repetition"] = design.groupby("stimulus", sort=False).cumcount().astype(np.int64)
    if repeated_path is not None:
        repeated = read_repeated_list(repeated_path)
    else:
        log.warning("%s not found below %s; 'shared' marks images shown more than once", REPEATED_LIST, root)
        counts = design["stimulus"].value_counts()
        repeated = set(counts.index[counts > 1])
    design["shared"] = design["stimulus"].isin(repeated)
    trials = pd.concat([design.iloc[offsets[s - 1]:offsets[s]] for s in use], ignore_index=True)

    options = dict(subject=sid, sessions=use, beta_version=beta_version, mask=str(mask), rois=list(rois),
                   zscore=bool(zscore))
    source = [found[s] for s in use] + [imgnames_path] + [roi_paths[r] for r in sorted(needed)]
    source += [p for p in (mask_path, repeated_path) if p is not None]
    attrs = {"dataset": "bold5000", "subject": sid, "zscored": bool(zscore), "synthetic": False,
             "beta_version": beta_version, "units": "z" if zscore else "percent signal change",
             "provenance": provenance(source, options, "ingest bold5000", root)}

    flat = fortran_flat_index(voxel_ijk, grid)
    mean_beta = MeanBeta(grid)  # the release has no mean image: the mean beta is the store's (mean_volume.py)
    screen = VoxelScreen(len(voxel_ijk))
    with atomic_output(out) as tmp:
        writer = VoxelStoreWriter(tmp, len(trials), len(voxel_ijk), chunks=chunks)
        for s in progress(use, desc=f"BOLD5000 {sid} sessions", unit="session"):
            session_sum = mean_beta.session_buffer()
            raw = read_nifti_voxels(found[s], flat, n_volumes=n_trials[s], volume_sum=session_sum)
            mean_beta.add_session_sum(session_sum, n_trials[s], *(scalings[s] or (1.0, 0.0)))
            block = raw.astype(np.float32)
            del raw
            if scalings[s] is not None:
                block = block * np.float32(scalings[s][0]) + np.float32(scalings[s][1])
            block = screen.check_session(block, found[s])
            if zscore:
                block = zscore_block(block)
            writer.append(block)
            del block
        writer.add_mean_volume(mean_beta.volume(), mean_beta.source())
        writer.finish(trials, voxel_ijk, grid, affine, rois=roi_members, attrs=attrs, exclude=screen.exclusion())
    return out
