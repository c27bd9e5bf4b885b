"""A pipeline config for local copies of NSD, BOLD5000 and THINGS-EEG2 (``brainalign init-config``).

Each root is inspected with the loaders' own discovery (``brainalign.ingest.*``, ``brainalign.stimuli``,
``brainalign.stimulus_lists``): which subjects and sessions are there, in which formats, which ROI atlases, and
whether the images the design names exist. A root that does not look like its dataset is refused with what was
expected (layouts: docs/datasets.md §1 NSD, §2 BOLD5000, §3 THINGS-EEG2). The result is a complete, commented
config (every section of the project's ``config.yaml``, ``simulate.enabled: false``) that is validated, category
table included, before it is written; it is meant to be used *instead of* ``config.yaml``
(``snakemake --configfile FILE --replace-workflow-config``; README, "Running on real data").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import __version__
from ._io import atomic_output
from .errors import InputError

#: the project's embedded default config, whose sections the written config copies
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
NSD_EXPECTED = ("an NSD root holds nsddata/experiments/nsd/nsd_expdesign.mat, "
                "nsddata_betas/ppdata/subjNN/<space>/<beta version>/betas_sessionSS.nii.gz or .hdf5, "
                "nsddata/ppdata/subjNN/<space>/roi/<atlas>.nii.gz and nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
BOLD5000_EXPECTED = ("a BOLD5000 root holds, anywhere below it, the Release 2.0 files "
                     "CSI{N}_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-SS.nii.gz, CSI{N}_imgnames.txt, "
                     "sub-CSI{N}_mask-<ROI>.nii.gz and BOLD5000_Stimuli/Scene_Stimuli/Presented_Stimuli/")
THINGS_EXPECTED = ("a THINGS-EEG2 root holds eeg_dataset/preprocessed_data/sub-SS/preprocessed_eeg_{training,test}.npy "
                   "and image_set/image_metadata.npy with image_set/test_images/")


@dataclass
class DatasetFindings:
    """What :func:`inspect_nsd` & co. found under a root: the config section and comment lines about it."""

    name: str
    section: dict
    notes: list = field(default_factory=list)

    @property
    def subjects(self) -> list[int]:
        return self.section["subjects"]


def _refuse(root, expected: str, what: str):
    """InputError: the root is not the dataset; ``expected`` starts with that dataset's name ("an NSD root ...")."""
    raise InputError(root, f"does not look like {expected.split(' holds')[0]}: {what} ({expected})")


def _subject_list(numbers) -> str:
    return ", ".join(str(n) for n in numbers)


def _session_text(sessions: list[int]) -> str:
    if not sessions:
        return "none"
    if sessions == list(range(sessions[0], sessions[-1] + 1)):
        return f"{len(sessions)} sessions ({sessions[0]}-{sessions[-1]})" if len(sessions) > 1 \
            else f"session {sessions[0]}"
    return f"{len(sessions)} sessions {sessions}"


# ------------------------------------------------------------------------------------------------- NSD

def inspect_nsd(root) -> DatasetFindings:
    """Subjects, sessions, formats and ROI atlases of an NSD root (docs/datasets.md §1).

    The space and beta version chosen are those most subjects have (ties: ``func1pt8mm`` and
    ``betas_fithrf_GLMdenoise_RR`` first); the input format is ``nii.gz`` unless only ``hdf5`` covers every such
    subject; atlases are those with a volume and a label table for every subject.

    Returns
    -------
    DatasetFindings
        ``section`` = the ``datasets.nsd`` config entry.

    Raises
    ------
    InputError
        If the root is not an NSD root (naming what was expected), no subject has betas, there is no voxel
        selection (``roi/nsdgeneral.nii.gz`` or ``brainmask.nii.gz``), or the image file lacks design images.
    """
    from .ingest.nsd import (BETA_VERSIONS, DEFAULT_ATLASES, DEFAULT_BETA_VERSION, DESIGN_PATH, SPACES,
                             _beta_files, _ctab_path, design_stimuli, parse_subject)
    from .stimuli import NSD_STIMULI_RELPATH, nsd_images

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(root, "NSD root not found (not a directory)")
    ppdata = root / "nsddata_betas" / "ppdata"
    for rel in (DESIGN_PATH, Path("nsddata_betas", "ppdata"), NSD_STIMULI_RELPATH):
        if not (root / rel).exists():
            _refuse(root, NSD_EXPECTED, f"{rel} not found")
    subjects = {}
    for folder in sorted(p for p in ppdata.iterdir() if p.is_dir()):
        try:
            number = parse_subject(folder.name) if folder.name.startswith("subj") else None
        except InputError:
            number = None
        if number is not None:
            subjects[number] = folder
    # sessions per (space, beta version, format) and subject, as ingest finds them
    found = {(space, version, fmt): {n: sorted(_beta_files(folder / space / version, fmt))
                                     for n, folder in subjects.items()}
             for space in SPACES for version in BETA_VERSIONS for fmt in ("nii.gz", "hdf5")}
    have = {key: {n for n, s in by_subject.items() if s} for key, by_subject in found.items()}

    def coverage(space, version):
        return len(have[(space, version, "nii.gz")] | have[(space, version, "hdf5")])

    versions = [DEFAULT_BETA_VERSION] + [v for v in BETA_VERSIONS if v != DEFAULT_BETA_VERSION]
    pairs = [(s, v) for s in SPACES for v in versions]
    space, version = max(pairs, key=lambda p: (coverage(*p), -pairs.index(p)))
    if coverage(space, version) == 0:
        _refuse(root, NSD_EXPECTED, f"no betas_sessionSS.nii.gz or .hdf5 under {ppdata}/subjNN/<space>/<beta version>/")
    nii, hdf5 = have[(space, version, "nii.gz")], have[(space, version, "hdf5")]
    fmt = "nii.gz" if len(nii) >= len(hdf5) else "hdf5"
    usable = sorted(have[(space, version, fmt)])
    notes = [f"{space}/{version}; {fmt} betas: "
             + "; ".join(f"subj{n:02d} {_session_text(found[(space, version, fmt)][n])}" for n in usable)]
    other_fmt = "hdf5" if fmt == "nii.gz" else "nii.gz"
    if have[(space, version, other_fmt)]:
        notes.append(f"{other_fmt} betas also present for subj"
                     + ", subj".join(f"{n:02d}" for n in sorted(have[(space, version, other_fmt)])))
    left_out = sorted(set(subjects) - set(usable))
    if left_out:
        notes.append(f"left out (no {fmt} betas in {space}/{version}): subj"
                     + ", subj".join(f"{n:02d}" for n in left_out))

    # ROI atlases with a volume and a label table for every usable subject
    available = None
    brainmask = True
    for n in usable:
        sid = f"subj{n:02d}"
        roi_dir = root / "nsddata" / "ppdata" / sid / space / "roi"
        names = set()
        for path in roi_dir.glob("*.nii.gz") if roi_dir.is_dir() else []:
            atlas = path.name[: -len(".nii.gz")]
            if atlas.startswith(("lh.", "rh.")):
                continue
            try:
                _ctab_path(root, sid, atlas)
            except InputError:
                continue
            names.add(atlas)
        available = names if available is None else available & names
        brainmask &= (root / "nsddata" / "ppdata" / sid / space / "brainmask.nii.gz").is_file()
    atlases = [a for a in DEFAULT_ATLASES if a in available]
    extra = sorted(available - set(DEFAULT_ATLASES))
    if "nsdgeneral" in available:
        mask = "nsdgeneral"
    elif brainmask:
        mask = "brainmask"
    else:
        _refuse(root, NSD_EXPECTED, f"no voxel selection: neither nsddata/ppdata/subjNN/{space}/roi/nsdgeneral.nii.gz "
                                    f"(with its label table) nor .../{space}/brainmask.nii.gz for every subject")
    notes.append(f"ROI atlases for every subject: {', '.join(atlases) or 'none'}"
                 + (f"; also available: {', '.join(extra)}" if extra else ""))

    all_ids, shared_ids = design_stimuli(root)
    brick = nsd_images(root)
    if len(all_ids) and int(all_ids.max()) >= brick.brick_shape[0]:
        raise InputError(brick.path, f"holds {brick.brick_shape[0]} images, but the design names nsdIds up to "
                                     f"{int(all_ids.max())}")
    notes.append(f"design: {len(all_ids)} images ({len(shared_ids)} shared); nsd_stimuli.hdf5: "
                 f"{brick.brick_shape[0]} images of {brick.brick_shape[1]}x{brick.brick_shape[2]}")
    section = {"root": str(root), "subjects": usable, "space": space, "beta_version": version,
               "input_format": fmt, "mask": mask, "atlases": atlases, "zscore": True}
    return DatasetFindings("nsd", section, notes)


# -------------------------------------------------------------------------------------------- BOLD5000

def inspect_bold5000(root) -> DatasetFindings:
    """Subjects, sessions, ROI masks and images of a BOLD5000 Release 2.0 root (docs/datasets.md §2).

    A subject is usable with ``TYPED-FITHRF-GLMDENOISE-RR`` betas for sessions 1..S, its ``imgnames`` list and
    all ten ROI masks (the default voxel selection is their union).

    Raises
    ------
    InputError
        If the root is not a BOLD5000 root (naming what was expected), no subject is usable, or images named by
        the design are missing from ``Presented_Stimuli``.
    """
    from .ingest.bold5000 import (DEFAULT_BETA_VERSION, REPEATED_LIST, ROI_FILE_ALIASES, ROI_NAMES, _index_tree,
                                  design_stimuli)
    from .stimuli import bold5000_images

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(root, "BOLD5000 root not found (not a directory)")
    files = _index_tree(root)
    lists, betas, masks = set(), {}, {}
    for name in files:
        if m := re.fullmatch(r"CSI([1-4])_imgnames\.txt", name):
            lists.add(int(m.group(1)))
        elif m := re.fullmatch(r"CSI([1-4])_GLMbetas-(.+)_ses-(\d+)\.nii\.gz", name):
            betas.setdefault(m.group(2), {}).setdefault(int(m.group(1)), []).append(int(m.group(3)))
        elif m := re.fullmatch(r"sub-CSI([1-4])_mask-(\w+)\.nii\.gz", name):
            n = int(m.group(1))
            masks.setdefault(n, set()).add(ROI_FILE_ALIASES.get(n, {}).get(m.group(2), m.group(2)))
    if not lists:
        _refuse(root, BOLD5000_EXPECTED, "no CSI{N}_imgnames.txt below it")
    sessions = {n: sorted(s) for n, s in betas.get(DEFAULT_BETA_VERSION, {}).items()}
    if not sessions:
        other = f" (only GLMbetas-{', GLMbetas-'.join(sorted(betas))})" if betas else ""
        _refuse(root, BOLD5000_EXPECTED, f"no CSI{{N}}_GLMbetas-{DEFAULT_BETA_VERSION}_ses-SS.nii.gz below it{other}")
    usable, notes = [], []
    for n in sorted(set(sessions) | lists):
        s = sessions.get(n, [])
        problems = []
        if not s:
            problems.append(f"no {DEFAULT_BETA_VERSION} betas")
        elif s != list(range(1, s[-1] + 1)):
            problems.append(f"sessions {s} are not 1..{s[-1]}")
        if n not in lists:
            problems.append(f"no CSI{n}_imgnames.txt")
        missing_masks = sorted(set(ROI_NAMES) - masks.get(n, set()))
        if missing_masks:
            problems.append(f"ROI masks {', '.join(missing_masks)} missing")
        if problems:
            notes.append(f"left out CSI{n}: {'; '.join(problems)}")
        else:
            usable.append(n)
    if not usable:
        _refuse(root, BOLD5000_EXPECTED, "no subject has betas, imgnames and the ten ROI masks: "
                                         + " | ".join(notes))
    notes.insert(0, f"{DEFAULT_BETA_VERSION} betas: " + "; ".join(f"CSI{n} {_session_text(sessions[n])}"
                                                                  for n in usable) + "; ten ROI masks each")
    all_ids, repeated = design_stimuli(root)
    images = bold5000_images(root)
    absent = sorted(set(all_ids) - set(images.ids))
    if absent:
        raise InputError(root, f"{len(absent)} of the design's {len(all_ids)} images are not under "
                               f"Presented_Stimuli/{{COCO,ImageNet,Scene}}/ (e.g. {absent[:3]})")
    source = (f"from {REPEATED_LIST}" if files.get(REPEATED_LIST)
              else f"shown more than once ({REPEATED_LIST} not found)")
    notes.append(f"design: {len(all_ids)} images, {len(repeated)} repeated ({source}); all under Presented_Stimuli")
    return DatasetFindings("bold5000", {"root": str(root), "subjects": usable, "zscore": True}, notes)


# ----------------------------------------------------------------------------------------- THINGS-EEG2

def inspect_things_eeg2(root) -> DatasetFindings:
    """Subjects and test images of a THINGS-EEG2 root (docs/datasets.md §3).

    Raises
    ------
    InputError
        If the root is not a THINGS-EEG2 root (naming what was expected), no subject has both preprocessed files,
        or test images listed in ``image_metadata.npy`` are missing.
    """
    from .ingest.things_eeg2 import PARTS, parse_subject
    from .stimuli import things_images

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(root, "THINGS-EEG2 root not found (not a directory)")
    preprocessed = root / "eeg_dataset" / "preprocessed_data"
    for rel in (Path("eeg_dataset", "preprocessed_data"), Path("image_set", "image_metadata.npy")):
        if not (root / rel).exists():
            _refuse(root, THINGS_EXPECTED, f"{rel} not found")
    usable, notes = [], []
    for folder in sorted(p for p in preprocessed.iterdir() if p.is_dir() and p.name.startswith("sub-")):
        try:
            n = parse_subject(folder.name)
        except InputError:
            continue
        absent = [f"preprocessed_eeg_{part}.npy" for part in PARTS
                  if not (folder / f"preprocessed_eeg_{part}.npy").is_file()]
        if absent:
            notes.append(f"left out {folder.name}: {', '.join(absent)} missing")
        else:
            usable.append(n)
    if not usable:
        _refuse(root, THINGS_EXPECTED, f"no sub-SS folder under {preprocessed} holds both preprocessed files")
    test = things_images(root, "test")
    notes.insert(0, "preprocessed EEG (training and test): " + ", ".join(f"sub-{n:02d}" for n in usable))
    notes.append(f"{len(test)} test images (the EEG RSA's stimuli)")
    return DatasetFindings("things_eeg2", {"root": str(root), "subjects": usable}, notes)


# -------------------------------------------------------------------------------------------- writing

def _top_level_blocks(text: str) -> dict[str, str]:
    """``key -> text`` of each top-level section of a YAML file (its comment lines kept)."""
    blocks, key = {}, None
    for line in text.splitlines(keepends=True):
        m = re.match(r"^([A-Za-z_][\w-]*):", line)
        if m:
            key = m.group(1)
            blocks[key] = ""
        if key is not None:
            blocks[key] += line
    return blocks


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip().removesuffix("\n...")


def _section(name: str, mapping: dict, comments: dict, indent: int = 0, lead: list | None = None) -> str:
    """A YAML mapping with one line per key and the comments given for some keys (a nested mapping is expanded,
    its comment above it)."""
    pad = " " * indent
    lines = [f"{pad}{name}:"] + [f"{pad}  # {c}" for c in (lead or [])]
    for key, value in mapping.items():
        comment = comments.get(key)
        if isinstance(value, dict):
            lines.append(_section(key, value, {}, indent + 2, lead=[comment] if comment else None))
            continue
        line = f"{pad}  {key}: {_flow(value)}"
        lines.append(f"{line:<60} # {comment}" if comment else line)
    return "\n".join(lines)


def build_config(nsd: DatasetFindings, bold5000: DatasetFindings | None = None,
                 things_eeg2: DatasetFindings | None = None, categories=None, unseen_images=None,
                 results: str = "results", command: str = "", category_folds: int | None = None) -> str:
    """The text of a complete, commented config for the datasets found (sections not about the data are the
    project's ``config.yaml`` as it is, comments included); ``category_folds`` replaces the default's number of
    unseen-categories folds when the table's categories allow fewer."""
    default_text = DEFAULT_CONFIG.read_text()
    default = yaml.safe_load(default_text)
    blocks = _top_level_blocks(default_text)
    subjects = nsd.subjects

    parts = [
        "# brainalign config for local copies of the datasets, written by `brainalign init-config` "
        f"(brainalign {__version__}).",
        f"#   {command}" if command else None,
        "# A complete config: use it INSTEAD of config.yaml (a --configfile on top of config.yaml could not drop",
        "# the sections it leaves out):",
        "#   brainalign check-config THIS_FILE",
        "#   snakemake -n --configfile THIS_FILE --replace-workflow-config          (dry run: the jobs)",
        "#   snakemake --cores N --configfile THIS_FILE --replace-workflow-config",
        "# Every key is checked against workflow/schemas/config.schema.yaml at start (README, 'Running on real data').",
        "",
        f"seed: {_flow(default['seed'])}",
        f"results: {_flow(results)}",
        "",
        _section("simulate", {"enabled": False, "preset": default["simulate"]["preset"]},
                 {"enabled": "real data: the roots below are read as they are"}),
        "",
    ]
    datasets = []
    for found in (nsd, bold5000, things_eeg2):
        if found is None:
            continue
        lead = ["found: " + note for note in found.notes[:1]] + found.notes[1:]
        datasets.append(_section(found.name, found.section, {"subjects": "as found; remove any you do not want"},
                                 indent=2, lead=lead))
    parts += ["datasets:", *datasets, ""]
    for key in default:
        if key in ("seed", "results", "simulate", "datasets", "synthetic", "training"):
            if key == "synthetic" and bold5000 is not None:
                synthetic = dict(default["synthetic"], categories=str(categories), unseen_images=str(unseen_images))
                comments = {"categories": "stimulus -> category table (csv/tsv/parquet): every BOLD5000 image and "
                                          "every unseen image (path relative to unseen_images)",
                            "unseen_images": "images never shown in the scanner, in category subfolders or not"}
                if category_folds is not None:
                    synthetic["category_folds"] = category_folds
                    comments["category_folds"] = "every set of encoding.n_test_categories held-out categories the " \
                                                 "table's categories make"
                parts += [_section("synthetic", synthetic, comments), ""]
            elif key == "synthetic":
                parts += [_section("synthetic", default["synthetic"],
                                   {"categories": "used only with BOLD5000 (not configured)"}), ""]
            elif key == "training":
                training = dict(default["training"], subjects=subjects[:1])
                neurofusion = dict(default["training"].get("neurofusion") or {})
                if len(subjects) >= 2:
                    neurofusion.update(enabled=neurofusion.get("enabled", True), subjects=subjects[:-1],
                                       heldout_subject=subjects[-1])
                else:
                    neurofusion = {"enabled": False}
                training["neurofusion"] = neurofusion
                parts += [_section("training", training, {
                    "preset": "'full': the published recipe (GPU); 'small'/'tiny': CPU-sized",
                    "subjects": "NSD subjects a ReAlnet-fMRI is trained for (each must be in datasets.nsd.subjects)",
                    "neurofusion": "NeuroFusionNet trains on some NSD subjects and is scored on a held-out one"
                                   + ("" if len(subjects) >= 2 else " (needs two NSD subjects: off)")}), ""]
            continue
        parts.append(blocks[key].rstrip("\n") + "\n")
    return "\n".join(p for p in parts if p is not None).rstrip("\n") + "\n"


def _possible_category_folds(bold5000, categories) -> int | None:
    """The default's ``synthetic.category_folds`` lowered to the number of held-out category sets the table's
    categories of the BOLD5000 design allow (None: the default fits, or the config has no such key)."""
    from .categories import read_category_file
    from .stimulus_lists import stimulus_lists

    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    folds = default["synthetic"].get("category_folds")
    if not folds:
        return None
    table = read_category_file(categories)
    design, _ = stimulus_lists("bold5000", bold5000)
    n_categories = table.set_index("stimulus")["category"].reindex([str(s) for s in design]).nunique()
    possible = math.comb(n_categories, default["encoding"].get("n_test_categories", 2))
    return max(1, possible) if possible < folds else None


def init_config(nsd, bold5000=None, things_eeg2=None, categories=None, unseen_images=None, results="results",
                out=None, force: bool = False, command: str = "") -> tuple[str, list[DatasetFindings]]:
    """Inspect the dataset roots and write a complete config for them.

    Parameters
    ----------
    nsd, bold5000, things_eeg2 : path-like or None
        Dataset roots in their released layouts (NSD is required: the pipeline is built around it).
    categories, unseen_images : path-like or None
        The synthetic stage's stimulus -> category table and folder of unseen images; required with BOLD5000.
    results : str
        The results folder the config names.
    out : path-like or None
        File to write (atomically); None: only return the text.
    force : bool
        Overwrite an existing ``out``.

    Returns
    -------
    text : str
        The config.
    findings : list of DatasetFindings

    Raises
    ------
    InputError
        A root that does not look like its dataset, a missing table or folder, a bad category table, or an
        existing ``out`` without ``force``; nothing is written then.
    """
    from .config import validate_config

    if out is not None and Path(out).exists() and not force:
        raise InputError(out, "exists; choose another --out or pass --force")
    if bold5000 is not None and not (categories and unseen_images):
        raise InputError("--bold5000", "needs --categories TABLE and --unseen-images DIR: the synthetic-fMRI stage "
                                       "holds out categories and decodes them from images never shown in the scanner")
    for path, what in ((categories, "category table"), (unseen_images, "unseen-image folder")):
        if path is not None and not Path(path).exists():
            raise InputError(path, f"{what} not found")
    found = [inspect_nsd(nsd)]
    found.append(inspect_bold5000(bold5000) if bold5000 is not None else None)
    found.append(inspect_things_eeg2(things_eeg2) if things_eeg2 is not None else None)
    absolute = (lambda p: None if p is None else str(Path(p).expanduser().resolve()))
    text = build_config(*found, categories=absolute(categories), unseen_images=absolute(unseen_images),
                        results=results, command=command,
                        category_folds=None if bold5000 is None else _possible_category_folds(bold5000, categories))
    validate_config(yaml.safe_load(text), source=str(out or "init-config"))  # the category table included
    if out is not None:
        with atomic_output(out) as tmp:
            Path(tmp).write_text(text)
    return text, [f for f in found if f is not None]
