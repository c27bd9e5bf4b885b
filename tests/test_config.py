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
        (lambda c: c["features"]["model_settings"]["alexnet"].update(reduce="max"), "features.model_settings.alexnet.reduce",
         "is not one of"),
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
    with pytest.raises(InputError, match=r"c\.csv: category table not found"):  # the table is read at start
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


# --- the data a config names must exist; the simulator's presets; every problem at once (issue #15) ---

def test_simulator_presets_and_schema_agree():
    from brainalign.simulate.config import PRESETS

    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]["simulate"]["properties"]["preset"]["enum"]) == set(PRESETS)


@pytest.mark.parametrize("mutate, key, words", [
    (lambda c: c["datasets"]["nsd"].update(subjects=[1, 9]), "datasets.nsd.subjects",
     "subject 9 does not exist in nsd"),
    (lambda c: c["datasets"]["bold5000"].update(subjects=[5]), "datasets.bold5000.subjects",
     "subject 5 does not exist in bold5000 (subjects 1..4)"),
    (lambda c: c["datasets"]["things_eeg2"].update(subjects=[11]), "datasets.things_eeg2.subjects",
     "subject 11 does not exist"),
    (lambda c: c["datasets"]["nsd"].update(root=""), "datasets.nsd.root", "empty"),
    (lambda c: c["datasets"]["nsd"].update(root="   "), "datasets.nsd.root", "empty"),
    (lambda c: c["simulate"].update(preset="fullsession"), "simulate.preset",
     "simulates nsd only, not datasets.bold5000"),
    (lambda c: c["datasets"]["nsd"].update(root="/data/nsd"), "datasets.nsd.root",
     "while simulate.enabled is true: the simulated root is 'results/simulated/nsd'"),
])
def test_configs_the_data_cannot_satisfy_are_refused(default_config, mutate, key, words):
    mutate(default_config)
    with pytest.raises(InputError) as exc:
        validate_config(default_config, SCHEMA, source="config.yaml")
    assert f"config.yaml: {key}: " in str(exc.value) and words in str(exc.value)


def test_empty_root_of_real_data_is_refused(default_config):
    default_config["simulate"]["enabled"] = False
    default_config["datasets"]["nsd"]["root"] = ""
    with pytest.raises(InputError, match=r"datasets\.nsd\.root: empty"):  # "" is not the working directory
        validate_config(default_config, SCHEMA)


def test_every_problem_is_one_line(default_config):
    from brainalign.config import ConfigError

    default_config["encoding"]["folds"] = 1
    default_config["datasets"]["nsd"]["subjects"] = [0]
    default_config["rsa"]["colour"] = "red"
    with pytest.raises(ConfigError) as exc:
        validate_config(default_config, SCHEMA, source="c.yaml")
    lines = str(exc.value).splitlines()
    assert len(lines) == 3 and len(exc.value.problems) == 3
    assert {line.split(": ")[1] for line in lines} == {"encoding.folds", "datasets.nsd.subjects.0", "rsa.colour"}


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    from brainalign.cli import main
    from brainalign.config import load_config_file

    bad = tmp_path / "my.yaml"
    bad.write_text("seed: 0\nresults: results\ndatasets:\n  nsd: {root: /x, subjects: [1, 2}\n")
    with pytest.raises(InputError, match=rf"{bad}:4:\d+: YAML syntax error"):
        load_config_file(bad)
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:4:" in err[0] and "YAML syntax error" in err[0]
    # the export/manifest commands read config files the same way
    (tmp_path / "results").mkdir()
    assert main(["manifest", str(tmp_path / "results"), "--configfile", str(bad)]) == 2
    assert f"{bad}:4:" in capsys.readouterr().err


@pytest.fixture()
def real_data(tmp_path, default_config):
    """A config on hand-built NSD (subject 1) and THINGS-EEG2 (subject 1) trees, as real data."""
    from fixtures_layouts import write_nsd_tree, write_things_eeg2_tree

    nsd = write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=1, formats=("nii.gz",))
    brick = nsd.root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    brick.parent.mkdir(parents=True)
    brick.write_bytes(b"")  # only its presence is checked here
    eeg = write_things_eeg2_tree(tmp_path / "eeg", subject=1)
    cfg = default_config
    cfg["simulate"]["enabled"] = False
    cfg["datasets"] = {"nsd": dict(cfg["datasets"]["nsd"], root=str(nsd.root), subjects=[1]),
                       "things_eeg2": {"root": str(eeg.root), "subjects": [1]}}
    cfg["training"].update(subjects=[1], neurofusion={"enabled": False})
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def test_check_config_finds_subjects_missing_on_disk(real_data, tmp_path, capsys):
    from brainalign.cli import main

    path, cfg = real_data
    assert main(["check-config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    cfg["datasets"]["nsd"]["subjects"] = [1, 2]
    cfg["datasets"]["nsd"]["atlases"] = ["streams", "floc-nope"]
    cfg["datasets"]["things_eeg2"]["subjects"] = [1, 3]
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    for words in ("datasets.nsd.subjects: subject 2: no betas_sessionSS.nii.gz in",
                  "roi/floc-nope.nii.gz: missing (subject 1",
                  "datasets.things_eeg2.subjects: subject 3: preprocessed_eeg_training.npy and "
                  "preprocessed_eeg_test.npy not in"):
        assert sum(words in line for line in err) == 1, (words, err)


def test_bold5000_subjects_on_disk(tmp_path):
    from brainalign.config_check import bold5000_problems
    from fixtures_layouts import write_bold5000_tree

    tree = write_bold5000_tree(tmp_path / "b5k", subject=2)
    assert bold5000_problems({"root": str(tree.root), "subjects": [2]}, "c") == []
    problems = bold5000_problems({"root": str(tree.root), "subjects": [2, 3]}, "c")
    assert [str(p) for p in problems] == [f"c: datasets.bold5000.subjects: subject 3: no "
                                          f"CSI3_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_ses-SS.nii.gz below {tree.root}"]
    (tree.glm_dir / "CSI2_imgnames.txt").unlink()
    assert "no CSI2_imgnames.txt" in str(bold5000_problems({"root": str(tree.root), "subjects": [2]}, "c")[0])


def test_gpus_asked_against_the_profile(real_data, tmp_path, capsys):
    from brainalign.cli import main

    path, cfg = real_data
    assert main(["check-config", str(path), "--profile", "slurm"]) == 0  # gpus 0: train may still get 4
    cfg["training"]["gpus"] = 8
    cfg["features"]["device"] = "cuda"
    path.write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["check-config", str(path), "--profile", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "training.gpus: 8 GPUs per training job, but rule train gets 4 GPUs under profile" in err
    assert "features.device" not in err  # the slurm profile gives the feature rules a GPU

    profile = tmp_path / "workstation"
    profile.mkdir()
    (profile / "config.yaml").write_text("cores: 8\nresources: [gpu=1]\nset-resources:\n  features:\n    gpu: 0\n")
    assert main(["check-config", str(path), "--profile", str(profile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "rule train gets 1 GPU under profile" in err[0]
    assert "features.device: 'cuda', but rule features gets no GPU under profile" in err[1]
    assert main(["check-config", str(path), "--profile", str(tmp_path / "nope")]) == 2
    assert "profile not found" in capsys.readouterr().err


def test_the_workflow_runs_the_same_checks_at_start(real_data):
    import subprocess
    import sys

    path, cfg = real_data
    cfg["datasets"]["nsd"]["subjects"] = [1, 2]
    path.write_text(yaml.safe_dump(cfg))
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(path.parent),
                        "--configfile", str(path), "--replace-workflow-config"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "datasets.nsd.subjects: subject 2: no betas_sessionSS.nii.gz" in r.stdout + r.stderr


def test_gpu_check_of_the_workflow_uses_the_main_process_settings_only(real_data):
    """A cluster job re-reads the Snakefile with ``--resources`` set to that job's own (gpu=1 for a features job):
    not the run's limits, so they must not fail the job."""
    from types import SimpleNamespace

    from brainalign.config import ConfigError
    from brainalign.config_check import check_workflow_config

    _, cfg = real_data
    cfg["training"]["gpus"] = 4
    settings = SimpleNamespace(overwrite_resources={"train": {"gpu": 4}}, resources={"gpu": 1, "mem_mb": 4000})
    check_workflow_config(cfg, SCHEMA, workflow=SimpleNamespace(is_main_process=False, resource_settings=settings))
    with pytest.raises(ConfigError, match="training.gpus: 4 GPUs per training job, but rule train gets 1 GPU "
                                          "under this run's resources"):
        check_workflow_config(cfg, SCHEMA, workflow=SimpleNamespace(is_main_process=True, resource_settings=settings))
