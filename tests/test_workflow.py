"""The Snakemake workflow itself: lints clean, dry-runs the whole DAG, refuses bad configs at start."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

pytestmark = pytest.mark.xdist_group("workflow")


def _snakemake(*args, cwd=ROOT):
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}:{os.environ['PATH']}")
    return subprocess.run([str(SNAKEMAKE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_lint_is_clean():
    r = _snakemake("--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr


def test_dry_run_shows_every_stage(tmp_path):
    r = _snakemake("-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"),
                   "--configfile", str(ROOT / "config.yaml"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for rule in ("simulate", "ingest_nsd", "ingest_bold5000", "ingest_things_eeg2", "features", "encode",
                 "features_unseen", "synthesize", "synthetic_evaluate", "train", "features_trained",
                 "rsa_dimensions", "rsa_fmri", "rsa_eeg", "report", "manifest"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, f"{rule} missing from the DAG"


def test_bad_config_fails_at_start_naming_key(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["encoding"]["folds"] = "five"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    r = _snakemake("-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(bad))
    assert r.returncode != 0
    assert "encoding.folds" in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()


def test_missing_dataset_root_fails_at_start(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    for ds in config["datasets"].values():
        ds["root"] = str(tmp_path / "no_such_dataset")
    bad = tmp_path / "real.yaml"
    bad.write_text(yaml.safe_dump(config))
    r = _snakemake("-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(bad))
    assert r.returncode != 0
    assert re.search(r"datasets\.(nsd|bold5000|things_eeg2)\.root: dataset root .*no_such_dataset.* does not exist",
                     r.stdout + r.stderr)
