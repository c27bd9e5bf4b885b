"""Checking a pipeline config before a run (``brainalign check-config``, and the workflow at start).

Beyond the schema and the rules across keys (:func:`brainalign.config.config_problems`), with real data
(``simulate.enabled: false``) every configured subject must be on disk in the layout ingestion reads
(docs/datasets.md), and the files every subject shares (NSD design and images, THINGS-EEG2 image metadata)
must be there; and the GPUs the config asks for must be ones the execution profile gives the rules that use
them. Every problem is one ``InputError`` naming the key or the file.
"""

from __future__ import annotations

import re
from pathlib import Path

from .config import DEFAULT_SCHEMA, ConfigError, config_problems, load_config_file
from .errors import InputError

#: the project's execution profiles (``--profile NAME`` looks here when NAME is not a folder)
PROFILES_DIR = Path(__file__).resolve().parents[2] / "workflow" / "profiles"
#: rules whose GPUs the config sets (training.gpus): always, and with NeuroFusionNet enabled; rules that run on
#: ``<section>.device``
TRAINING_RULES = ("train",)
NEUROFUSION_RULES = ("train_neurofusion", "train_neurofusion_control")
DEVICE_RULES = {"features": ("features", "features_trained", "features_unseen"), "encoding": ("encode",)}


# ------------------------------------------------------------------------------------------- datasets

def nsd_problems(ds: dict, source: str) -> list[InputError]:
    """Every configured NSD subject has betas of the configured space, version and format, the voxel mask and
    the ROI atlases; the design file and the image file exist (docs/datasets.md §1)."""
    from .ingest.nsd import DEFAULT_ATLASES, DESIGN_PATH, _beta_files
    from .stimuli import NSD_STIMULI_RELPATH

    root = Path(ds["root"]).expanduser()
    problems = [InputError(root / rel, f"missing ({what}; datasets.nsd.root)")
                for rel, what in ((DESIGN_PATH, "the NSD design file"), (NSD_STIMULI_RELPATH, "the NSD images"))
                if not (root / rel).is_file()]
    space, version, fmt = ds.get("space", "func1pt8mm"), ds.get("beta_version"), ds.get("input_format", "nii.gz")
    mask = str(ds.get("mask", "nsdgeneral"))
    for subject in ds["subjects"]:
        sid = f"subj{subject:02d}"
        betas = root / "nsddata_betas" / "ppdata" / sid / space / version
        if not _beta_files(betas, fmt):
            problems.append(InputError(f"{source}: datasets.nsd.subjects",
                                       f"subject {subject}: no betas_sessionSS.{fmt} in {betas}"))
            continue
        func = root / "nsddata" / "ppdata" / sid / space
        needed = [] if Path(mask).suffix in (".nii", ".gz") else \
            [func / ("brainmask.nii.gz" if mask == "brainmask" else f"roi/{mask}.nii.gz")]
        # the ingest rule passes no --rois without atlases: the command's default atlases are read then
        needed += [func / "roi" / f"{atlas}.nii.gz" for atlas in ds.get("atlases") or DEFAULT_ATLASES]
        problems += [InputError(p, f"missing (subject {subject}: datasets.nsd.mask / atlases)")
                     for p in needed if not p.is_file()]
    if Path(mask).suffix in (".nii", ".gz") and not Path(mask).expanduser().is_file():
        problems.append(InputError(f"{source}: datasets.nsd.mask", f"mask file {mask!r} not found"))
    return problems


def bold5000_problems(ds: dict, source: str) -> list[InputError]:
    """Every configured BOLD5000 subject has Release 2.0 betas and its image-name list below the root
    (docs/datasets.md §2)."""
    from .ingest.bold5000 import DEFAULT_BETA_VERSION, _index_tree

    root = Path(ds["root"]).expanduser()
    names = _index_tree(root)
    problems = []
    for subject in ds["subjects"]:
        betas = re.compile(rf"CSI{subject}_GLMbetas-{re.escape(DEFAULT_BETA_VERSION)}_ses-\d+\.nii\.gz")
        if not any(betas.fullmatch(n) for n in names):
            problems.append(InputError(f"{source}: datasets.bold5000.subjects", f"subject {subject}: no "
                                       f"CSI{subject}_GLMbetas-{DEFAULT_BETA_VERSION}_ses-SS.nii.gz below {root}"))
        elif f"CSI{subject}_imgnames.txt" not in names:
            problems.append(InputError(f"{source}: datasets.bold5000.subjects",
                                       f"subject {subject}: no CSI{subject}_imgnames.txt below {root}"))
    return problems


def things_eeg2_problems(ds: dict, source: str) -> list[InputError]:
    """Every configured THINGS-EEG2 subject has both preprocessed files; the image metadata exists
    (docs/datasets.md §3)."""
    root = Path(ds["root"]).expanduser()
    problems = []
    meta = root / "image_set" / "image_metadata.npy"
    if not meta.is_file():
        problems.append(InputError(meta, "missing (THINGS-EEG2 image metadata; datasets.things_eeg2.root)"))
    for subject in ds["subjects"]:
        folder = root / "eeg_dataset" / "preprocessed_data" / f"sub-{subject:02d}"
        missing = [f"preprocessed_eeg_{part}.npy" for part in ("training", "test")
                   if not (folder / f"preprocessed_eeg_{part}.npy").is_file()]
        if missing:
            problems.append(InputError(f"{source}: datasets.things_eeg2.subjects",
                                       f"subject {subject}: {' and '.join(missing)} not in {folder}"))
    return problems


DATASET_CHECKS = {"nsd": nsd_problems, "bold5000": bold5000_problems, "things_eeg2": things_eeg2_problems}


def dataset_problems(config: dict, source: str = "config") -> list[InputError]:
    """Subjects and shared files on disk, for real data (none when simulating: the simulator writes them)."""
    if config["simulate"]["enabled"]:
        return []
    problems = []
    for name, ds in config["datasets"].items():
        if ds and Path(str(ds["root"])).expanduser().is_dir():
            problems += DATASET_CHECKS[name](ds, source)
    return problems


# ------------------------------------------------------------------------------------------------ GPUs

def _gpu_count(value):
    """A profile's gpu value as an int (None when it is an expression evaluated per job)."""
    if value is None:
        return None
    if hasattr(value, "value"):  # snakemake.resources.Resource
        value = value.value
    try:
        return int(str(value).strip().strip("'\""))
    except ValueError:
        return None


def _global_gpus(resources):
    """The ``gpu`` limit of a profile's (or ``--resources``) global resources, or None when not declared."""
    if not resources:
        return None
    if isinstance(resources, (list, tuple)):
        items = dict(str(r).split("=", 1) for r in resources if "=" in str(r))
    else:
        items = dict(resources.items()) if hasattr(resources, "items") else {}
    return _gpu_count(items.get("gpu"))


def read_profile(profile) -> dict:
    """A Snakemake profile's settings: ``profile`` is its folder, its ``config.yaml``, or a name under
    ``workflow/profiles/``."""
    path = Path(profile)
    if not path.exists() and (PROFILES_DIR / str(profile)).exists():
        path = PROFILES_DIR / str(profile)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise InputError(profile, f"profile not found (a folder with config.yaml, or one of "
                                  f"{sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir())})")
    settings = load_config_file(path)
    settings["_path"] = str(path)
    return settings


def rule_gpus(set_resources, global_resources=None) -> dict:
    """GPUs each rule gets: ``{rule: int}`` from set-resources, capped by a declared global ``gpu`` limit.

    A rule absent from the result keeps the ``gpu`` its own ``resources`` ask for (the config's value).
    ``"*"`` holds the global cap when one is declared.
    """
    out = {}
    for rule, mapping in (set_resources or {}).items():
        value = mapping.get("gpu") if hasattr(mapping, "get") else None
        if value is None and hasattr(mapping, "_data"):  # snakemake Resources
            value = mapping._data.get("gpu")
        n = _gpu_count(value)
        if n is not None:
            out[str(rule)] = n
    cap = _global_gpus(global_resources)
    if cap is not None:
        out = {rule: min(n, cap) for rule, n in out.items()}
        out["*"] = cap
    return out


def gpu_problems(config: dict, gpus: dict, where: str, source: str = "config") -> list[InputError]:
    """GPUs the config asks for against those the profile gives (:func:`rule_gpus`).

    ``training.gpus`` > 0 needs that many GPUs for every training rule; ``features.device`` /
    ``encoding.device`` set to ``cuda`` needs at least one for their rules. ``where`` names the profile.
    """
    problems = []
    cap = gpus.get("*")

    def given(rule, asked):
        n = gpus.get(rule, asked)
        return n if cap is None else min(n, cap)

    asked = int(config["training"].get("gpus", 0))
    neurofusion = (config["training"].get("neurofusion") or {}).get("enabled")
    rules = list(TRAINING_RULES) + (list(NEUROFUSION_RULES) if neurofusion else [])
    if asked > 0:
        for rule in rules:
            n = given(rule, asked)
            if n < asked:
                problems.append(InputError(f"{source}: training.gpus",
                                           f"{asked} GPUs per training job, but rule {rule} gets {n or 'no'} "
                                           f"GPU{'s' if n != 1 else ''} under {where} (set-resources: {rule}: gpu, "
                                           "or a resources: gpu=N limit)"))
    for section, section_rules in DEVICE_RULES.items():
        device = str(config[section].get("device", "auto"))
        if not device.startswith("cuda"):
            continue
        for rule in section_rules:
            if given(rule, 1) < 1:
                problems.append(InputError(f"{source}: {section}.device",
                                           f"{device!r}, but rule {rule} gets no GPU under {where} (use auto, or "
                                           "give the rule a GPU)"))
    return problems


# -------------------------------------------------------------------------------------------- together

def check_config(config: dict, source: str = "config", schema_path=DEFAULT_SCHEMA, profile=None,
                 resource_settings=None) -> list[InputError]:
    """Every problem of a config: schema and rules across keys, data on disk, GPUs vs the profile.

    Parameters
    ----------
    config : dict
        The parsed config (defaults are filled in, in place).
    source : str
        Name of the config in the messages (its file name).
    profile : str or Path, optional
        Execution profile to check GPU requests against (:func:`read_profile`).
    resource_settings : snakemake ResourceSettings, optional
        The running workflow's resources (``workflow.resource_settings``): checked like a profile.

    Returns
    -------
    list of InputError, empty when the config is usable.
    """
    problems = config_problems(config, schema_path, source)
    if problems:
        return problems  # the other checks rely on the types the schema guarantees
    problems += dataset_problems(config, source)
    if profile is not None:
        settings = read_profile(profile)
        gpus = rule_gpus(settings.get("set-resources"), settings.get("resources"))
        problems += gpu_problems(config, gpus, f"profile {settings['_path']}", source)
    if resource_settings is not None:
        gpus = rule_gpus(getattr(resource_settings, "overwrite_resources", None),
                         getattr(resource_settings, "resources", None))
        problems += gpu_problems(config, gpus, "this run's resources", source)
    return problems


def check_workflow_config(config: dict, schema_path=DEFAULT_SCHEMA, source: str = "config", workflow=None) -> dict:
    """The workflow's start: :func:`check_config`, raising :class:`~brainalign.config.ConfigError` with every
    problem (one line each). Returns the config with defaults filled in.

    ``workflow`` is Snakemake's: in the main process its ``--set-resources`` / ``--resources`` are checked like
    a profile. Not in a job's own process (a cluster job re-reads the Snakefile), whose ``--resources`` are that
    job's, not the run's limits.
    """
    main = workflow is not None and getattr(workflow, "is_main_process", False)
    resource_settings = workflow.resource_settings if main else None
    problems = check_config(config, source, schema_path, resource_settings=resource_settings)
    if problems:
        raise ConfigError(problems)
    return config


def check_config_file(path, profile=None) -> list[InputError]:
    """:func:`check_config` of a config file (a YAML syntax error is its one problem)."""
    try:
        config = load_config_file(path)
        return check_config(config, str(path), profile=profile)
    except InputError as exc:
        return [exc]
