"""Config validation: bad configs fail at start with a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from brainalign.config import validate_config
from brainalign.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture()
def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(default_config):
    validate_config(default_config, SCHEMA)
    assert default_config["datasets"]["nsd"]["zscore"] is True


def test_defaults_filled(default_config):
    del default_config["datasets"]["nsd"]["space"]
    validate_config(default_config, SCHEMA)
    assert default_config["datasets"]["nsd"]["space"] == "func1pt8mm"


@pytest.mark.parametrize(
    "mutate, key, words",
    [
        (lambda c: c["datasets"]["nsd"].update(colour="red"), "datasets.nsd.colour", "unknown key"),
        (lambda c: c.update(typo_key=1), "typo_key", "unknown key"),
        (lambda c: c["datasets"]["nsd"].update(subjects="1"), "datasets.nsd.subjects", "not of type 'array'"),
        (lambda c: c["encoding"].update(folds=1), "encoding.folds", "minimum"),
        (lambda c: c["features"]["models"]["alexnet"].update(reduce="max"), "features.models.alexnet.reduce", "is not one of"),
        (lambda c: c["datasets"]["nsd"].pop("root"), "datasets.nsd", "'root' is a required property"),
    ],
)
def test_bad_config_names_key(default_config, mutate, key, words):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(InputError) as exc:
        validate_config(cfg, SCHEMA, source="config.yaml")
    assert f"config.yaml: {key}:" in str(exc.value)
    assert words in str(exc.value)


def test_real_bold5000_needs_categories_and_unseen_images(default_config, tmp_path):
    default_config["simulate"]["enabled"] = False
    for ds in default_config["datasets"].values():
        ds["root"] = str(tmp_path)
    with pytest.raises(InputError, match=r"synthetic\.categories: required with real BOLD5000"):
        validate_config(copy.deepcopy(default_config), SCHEMA)
    default_config["synthetic"].update(categories=str(tmp_path / "c.csv"), unseen_images=str(tmp_path))
    validate_config(default_config, SCHEMA)


def test_missing_dataset_root(default_config, tmp_path):
    default_config["simulate"]["enabled"] = False
    default_config["synthetic"].update(categories="c.csv", unseen_images="unseen")
    default_config["datasets"]["nsd"]["root"] = str(tmp_path / "nowhere")
    default_config["datasets"]["bold5000"]["root"] = str(tmp_path)
    default_config["datasets"]["things_eeg2"]["root"] = str(tmp_path)
    with pytest.raises(InputError, match=r"datasets\.nsd\.root: dataset root .*nowhere.* does not exist"):
        validate_config(default_config, SCHEMA)


@pytest.mark.parametrize("mutate, key, words", [
    (lambda c: c["training"].update(subjects=[3]), "training.subjects", "[3] are not in datasets.nsd.subjects"),
    (lambda c: c["training"]["neurofusion"].update(heldout_subject=1), "training.neurofusion.heldout_subject",
     "also a training subject"),
    (lambda c: c["training"]["neurofusion"].update(subjects=[1, 5]), "training.neurofusion.subjects",
     "[5] are not in"),
    (lambda c: c["training"]["neurofusion"].pop("heldout_subject"), "training.neurofusion.heldout_subject",
     "required when neurofusion is enabled"),
])
def test_training_subjects_must_have_stores(default_config, mutate, key, words):
    mutate(default_config)
    with pytest.raises(InputError) as exc:
        validate_config(default_config, SCHEMA, source="config.yaml")
    assert f"config.yaml: {key}:" in str(exc.value) and words in str(exc.value)


def test_disabled_neurofusion_needs_no_subjects(default_config):
    default_config["training"]["neurofusion"] = {"enabled": False}
    default_config["datasets"]["nsd"]["subjects"] = [1]
    validate_config(default_config, SCHEMA)
