"""The Snakemake workflow itself: lints clean, dry-runs the whole DAG, refuses bad configs at start, and writes
and reads its results where the one results layout (brainalign.layout) says."""

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from brainalign.layout import ResultsLayout, pattern_regex
from brainalign.report import report_inputs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"



def _snakemake(*args, cwd=ROOT):
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}:{os.environ['PATH']}")
    return subprocess.run([str(SNAKEMAKE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_lint_is_clean():
    r = _snakemake("--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition!" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """Output of ``snakemake -n`` of the whole default DAG (in an empty working directory)."""
    work = tmp_path_factory.mktemp("dry_run")
    r = _snakemake("-n", "--directory", str(work), "--snakefile", str(ROOT / "Snakefile"),
                   "--configfile", str(ROOT / "config.yaml"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


def dag_paths(dry_run_text: str, kind: str) -> set[str]:
    """Every path a dry run lists on its jobs' ``output:`` / ``log:`` / ``benchmark:`` lines."""
    paths = set()
    for line in dry_run_text.splitlines():
        line = line.strip()
        if line.startswith(f"{kind}:"):
            paths.update(p.strip() for p in line.split(":", 1)[1].split(","))
    return paths


def layout_patterns(layout: ResultsLayout) -> list[str]:
    """Every path the layout defines, as a pattern: each method called with its parameters as wildcards
    (training-run files on each kind of run folder; logs and benchmarks one or two levels deep)."""
    patterns = []
    runs = [layout.realnet_run("{subject}", "{variant}"), layout.neurofusion_run()]
    for name, method in inspect.getmembers(layout, inspect.ismethod):
        if name.startswith("_") or name in ("log", "benchmark"):
            continue
        params = list(inspect.signature(method).parameters)
        patterns.append(method(*(f"{{{p}}}" for p in params)))
    for method in (layout.backbone_weights, layout.training_curve, layout.training_summary):
        patterns += [method(run) for run in runs]
    for method in (layout.log, layout.benchmark):
        patterns += [method("{name}"), method("{stage}", "{name}")]
    return patterns


def _matches_any(path: str, patterns: list[str]) -> bool:
    return any(pattern_regex(p).fullmatch(path) for p in patterns)


def test_dry_run_shows_every_stage(dry_run):
    out = dry_run
    for rule in ("simulate", "ingest_nsd", "ingest_bold5000", "ingest_things_eeg2", "features", "encode",
                 "features_unseen", "synthesize", "synthetic_evaluate", "train", "features_trained",
                 "rsa_dimensions", "rsa_fmri", "rsa_eeg", "report", "manifest"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, f"{rule} missing from the DAG"


def test_rules_write_only_where_the_layout_says(dry_run):
    layout = ResultsLayout(yaml.safe_load((ROOT / "config.yaml").read_text())["results"])
    patterns = layout_patterns(layout)
    for kind in ("output", "log", "benchmark"):
        paths = dag_paths(dry_run, kind)
        assert paths, kind
        stray = sorted(p for p in paths if not _matches_any(p, patterns))
        assert not stray, f"{kind} paths the results layout does not define: {stray}"


def test_report_reads_only_what_rules_produce(dry_run):
    """Every file the report reads lies in (or is) an output of a job of the DAG, or is a folder holding one."""
    layout = ResultsLayout(yaml.safe_load((ROOT / "config.yaml").read_text())["results"])
    outputs = dag_paths(dry_run, "output")
    for name, pattern in report_inputs(layout).items():
        parts = pattern.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        inside = any(_matches_any(o, prefixes) for o in outputs)   # the pattern is an output or lies inside one
        holds = any(pattern_regex(pattern).fullmatch("/".join(o.split("/")[:k]))
                    for o in outputs for k in range(1, o.count("/") + 2))  # a folder holding an output
        assert inside or holds, f"the report reads {name} = {pattern}, which no rule produces"
    # and the report's own outputs are where the layout puts them
    assert {layout.report_summary(), layout.report_findings(), layout.report_alignment(),
            layout.report_figures()} <= outputs


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
