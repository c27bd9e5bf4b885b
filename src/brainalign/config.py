"""Pipeline configuration: reading a config file, schema validation and the checks that need no data, with
messages that name the offending key (one per problem). The checks that look at the data on disk and the
execution profile are in :mod:`brainalign.config_check` (``brainalign check-config``)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from .errors import InputError

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
#: config dataset keys -> the simulator's dataset names (``brainalign.simulate.config.DATASETS``)
SIMULATED_DATASETS = {"nsd": "nsd", "bold5000": "bold5000", "things_eeg2": "things-eeg2"}


class ConfigError(InputError):
    """Every problem found in a config, one ``"<source>: <key>: <problem>"`` line each.

    ``where``/``problem`` are those of the first problem; ``problems`` holds them all (InputErrors).
    """

    def __init__(self, problems):
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.where, first.problem)
        self.args = ("\n".join(str(p) for p in self.problems),)

    def __str__(self):
        return self.args[0]


def load_config_file(path) -> dict:
    """Read a YAML config file; InputError naming the file (and line) when it is missing or not valid YAML."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read config file ({exc})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        raise InputError(where, f"YAML syntax error: {problem}" + (f" ({context})" if context else "")) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InputError(path, f"a config is a mapping of keys to values, this file holds a {type(config).__name__}")
    return config


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _fill_defaults(node, schema, root_schema):
    """Insert schema ``default`` values for missing keys (jsonschema validates but never fills)."""
    if "$ref" in schema:
        ref = schema["$ref"].lstrip("#/").split("/")
        target = root_schema
        for part in ref:
            target = target[part]
        schema = target
    if not isinstance(node, dict) or schema.get("type") != "object":
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in node and "default" in sub:
            node[name] = sub["default"]
        if name in node:
            _fill_defaults(node[name], sub, root_schema)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in node.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(value, extra, root_schema)


def schema_problems(config: dict, schema: dict, source: str = "config") -> list[InputError]:
    """Every violation of the JSON schema, as InputErrors naming the key (``<source>: datasets.nsd.subjects``)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    problems, seen = [], set()
    for err in errors:
        if err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - allowed)
            msg = f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
            where = _key(list(err.path) + [unknown[0]]) if unknown else _key(err.path)
        elif err.validator in ("minLength", "pattern") and not str(err.instance).strip():
            where, msg = _key(err.path), "empty: name a folder (or a value)"
        elif err.validator == "maximum" and len(err.path) >= 4 and list(err.path)[:1] == ["datasets"] \
                and list(err.path)[2] == "subjects":
            where = _key(list(err.path)[:3])
            msg = f"subject {err.instance} does not exist in {err.path[1]} (subjects 1..{err.validator_value})"
        else:
            where, msg = _key(err.path), err.message
        if where not in seen:  # one line per key: its first problem
            seen.add(where)
            problems.append(InputError(f"{source}: {where}", msg))
    return problems


def config_problems(config: dict, schema_path=DEFAULT_SCHEMA, source: str = "config") -> list[InputError]:
    """Every problem of a config that can be told without reading data: schema, then the rules across keys.

    Fills in the schema's defaults (in place) when the schema is satisfied; the rules across keys are
    checked only then (they rely on the types the schema guarantees).
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    if not isinstance(config, dict):
        return [InputError(f"{source}: <top level>", f"a config is a mapping, got {type(config).__name__}")]
    problems = schema_problems(config, schema, source)
    if problems:
        return problems
    _fill_defaults(config, schema, schema)
    for check in (_check_training_subjects, _check_feature_models, _check_simulation, _check_dataset_roots):
        try:
            problems.extend(check(config, source) or [])  # a list of problems, or raises the first
        except InputError as exc:
            problems.append(exc)
    if not problems and config["datasets"].get(config["synthetic"]["dataset"]):
        from .categories import check_configured_categories

        try:
            check_configured_categories(config, source)  # the table's format, and its coverage of real data
        except InputError as exc:
            problems.append(exc)
    return problems


def validate_config(config: dict, schema_path=DEFAULT_SCHEMA, source: str = "config") -> dict:
    """Validate a pipeline config against the JSON schema and fill in defaults.

    Parameters
    ----------
    config : dict
        Parsed config (modified in place: defaults are added).
    schema_path : path-like
        The YAML JSON-Schema (``workflow/schemas/config.schema.yaml``).
    source : str
        Name used in error messages (e.g. the config file name).

    Returns
    -------
    dict
        The same config, with defaults filled in.

    Raises
    ------
    ConfigError
        (an InputError) listing every problem of :func:`config_problems`, one line each, naming the key
        (``datasets.nsd.subjects``) and what is wrong; also when a dataset root does not exist and the
        simulator is not going to write it.
    """
    problems = config_problems(config, schema_path, source)
    if problems:
        raise ConfigError(problems)
    return config


def _check_simulation(config: dict, source: str) -> list[InputError]:
    """With the simulator on, its preset must simulate every configured dataset, and the roots must be its output."""
    problems = []
    if not config["simulate"]["enabled"]:
        return problems
    from .layout import ResultsLayout
    from .simulate.config import resolve_config

    preset = config["simulate"]["preset"]
    simulated = resolve_config(preset).datasets
    layout = ResultsLayout(config["results"])
    for name, ds in config["datasets"].items():
        if not ds:
            continue
        if SIMULATED_DATASETS[name] not in simulated:
            problems.append(InputError(f"{source}: simulate.preset", f"preset {preset!r} simulates "
                                       f"{', '.join(simulated)} only, not datasets.{name}"))
        expected = layout.simulated_root(name)
        if Path(ds["root"]) != Path(expected):
            problems.append(InputError(f"{source}: datasets.{name}.root",
                                       f"{ds['root']!r} while simulate.enabled is true: the simulated root is "
                                       f"{expected!r} (or set simulate.enabled: false to read real data)"))
    syn = config["synthetic"]
    if config["datasets"].get(syn["dataset"]) and not syn.get("unseen_images") and "unseen" not in simulated:
        problems.append(InputError(f"{source}: simulate.preset", f"preset {preset!r} writes no unseen images, which "
                                   "synthetic fMRI needs (or set synthetic.unseen_images)"))
    return problems


def _check_dataset_roots(config: dict, source: str) -> list[InputError]:
    """Real data: every root is a folder; real BOLD5000 needs a category table and unseen images named."""
    problems = []
    if config["simulate"]["enabled"]:
        return problems
    for name, ds in config["datasets"].items():
        if not ds:
            continue
        root = str(ds["root"]).strip()
        if not root:
            problems.append(InputError(f"{source}: datasets.{name}.root", "empty: name the folder holding the dataset"))
        elif not Path(root).expanduser().is_dir():
            problems.append(InputError(f"{source}: datasets.{name}.root", f"dataset root {ds['root']!r} does not "
                                       "exist (set simulate.enabled: true to use simulated data)"))
    if config["datasets"].get("bold5000"):
        # the simulator supplies these for the demo; real data needs them named
        for key in ("categories", "unseen_images"):
            if not config["synthetic"].get(key):
                problems.append(InputError(f"{source}: synthetic.{key}", "required with real BOLD5000 data (a "
                                           "stimulus -> category table; a folder of images never shown in the "
                                           "scanner)"))
    return problems


def _check_feature_models(config: dict, source: str) -> None:
    """Every network in ``features.models`` has its settings, and the encoding model is one of them."""
    features = config["features"]
    for name in features["models"]:
        if name not in features["model_settings"]:
            raise InputError(f"{source}: features.model_settings.{name}",
                             f"missing: {name!r} is in features.models, so it needs weights and layers here")
    if config["encoding"]["model"] not in features["models"]:
        raise InputError(f"{source}: encoding.model",
                         f"{config['encoding']['model']!r} is not in features.models {features['models']}")


def _check_training_subjects(config: dict, source: str) -> None:
    """Training reads NSD stores: its subjects must be ingested, and NeuroFusionNet's held-out one kept apart."""
    nsd = set(config["datasets"]["nsd"]["subjects"])
    train = config["training"]
    checks = [("training.subjects", train.get("subjects", []))]
    nf = train.get("neurofusion") or {}
    if nf.get("enabled"):
        for key in ("subjects", "heldout_subject"):
            if key not in nf:
                raise InputError(f"{source}: training.neurofusion.{key}", "required when neurofusion is enabled")
        checks += [("training.neurofusion.subjects", nf["subjects"]),
                   ("training.neurofusion.heldout_subject", [nf["heldout_subject"]])]
        if nf["heldout_subject"] in nf["subjects"]:
            raise InputError(f"{source}: training.neurofusion.heldout_subject",
                             f"subject {nf['heldout_subject']} is also a training subject; a held-out subject must "
                             "not be trained on")
    for key, subjects in checks:
        missing = sorted(set(subjects) - nsd)
        if missing:
            raise InputError(f"{source}: {key}",
                             f"NSD subject(s) {missing} are not in datasets.nsd.subjects {sorted(nsd)}, so they "
                             "have no voxel store")
