"""Pipeline configuration: schema validation with messages that name the offending key."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from .errors import InputError

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


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
    InputError
        On the first violation, naming the key (``datasets.nsd.subjects``) and what is wrong; also when
        a dataset root does not exist and the simulator is not going to write it.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - allowed)
            msg = f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
            where = _key(list(err.path) + [unknown[0]]) if unknown else _key(err.path)
        else:
            where, msg = _key(err.path), err.message
        raise InputError(f"{source}: {where}", msg)
    _fill_defaults(config, schema, schema)
    _check_training_subjects(config, source)
    if not config["simulate"]["enabled"]:
        for name, ds in config["datasets"].items():
            if not Path(ds["root"]).is_dir():
                raise InputError(
                    f"{source}: datasets.{name}.root",
                    f"dataset root {ds['root']!r} does not exist (set simulate.enabled: true to use simulated data)",
                )
        if config["datasets"].get("bold5000"):
            # the simulator supplies these for the demo; real data needs them named
            for key in ("categories", "unseen_images"):
                if not config["synthetic"].get(key):
                    raise InputError(f"{source}: synthetic.{key}",
                                     "required with real BOLD5000 data (a stimulus -> category table; a folder of "
                                     "images never shown in the scanner)")
    return config


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
