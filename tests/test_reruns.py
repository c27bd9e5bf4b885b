"""Partial reruns of the project's own workflow: Snakemake redoes exactly what a change invalidates, and never
reuses a killed job's output.

One real run of the project's Snakefile (simulator ``tiny`` preset, NSD subject 1, AlexNet, ReAlnet without
controls; 15 jobs) in a temporary copy of the repository, with the local profile's rerun triggers. Each
check is a real dry run after a change. The package source is a copy too (first on PYTHONPATH), so "editing
a stage's code" edits only that copy, and Snakemake sees it through the rules' ``code_fingerprint`` params
(derived from the package's import graph, so a module a stage imports only indirectly counts too).

The tests share that run and run in file order on one worker (``xdist_group``); each one undoes its change or
leaves the run finished.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml
from project_copy import LOCAL_PROFILE, SNAKEMAKE, copy_project, default_config, env, indirect_modules, read_config, \
    snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reruns")]

#: jobs whose outputs are made once per run and do not depend on which subjects or parameters are set
UPSTREAM = {"simulate", "stimulus_lists", "features", "initial_backbone", "features_trained", "train"}
ENCODE_SUBJ01 = {f"results/encoding/nsd/subj01/{m}/nsd-shared"
                 for m in ("alexnet", "cornet_s-initial", "realnet-subj01-aligned")}
REPORT = {"results/report/summary.md", "results/report/figures", "results/report/findings.parquet",
          "results/report/alignment.parquet"}
#: the brainalign commands of this run's rules other than encode's
OTHER_COMMANDS = ("simulate", "ingest", "stimulus-lists", "categories", "features", "train", "rsa", "report",
                  "manifest")


def pending(work: Path) -> dict[str, tuple[str, str]]:
    """``{output: (rule, reason)}`` of every job a run would execute now (a dry run with the profile)."""
    jobs, rule, outputs = {}, None, []
    for line in snakemake(work, "--dry-run").stdout.splitlines():
        line = line.strip()
        m = re.match(r"^(?:localrule|rule) (\w+):$", line)
        if m:
            rule, outputs = m.group(1), []
        elif rule and line.startswith("output:"):
            outputs = [o.strip() for o in line.split(":", 1)[1].split(",")]
        elif rule and line.startswith("reason:"):
            for out in outputs:
                jobs[out] = (rule, line.split(":", 1)[1].strip())
            rule = None
    return jobs


def rules_of(jobs: dict) -> dict[str, set]:
    by_rule = {}
    for out, (rule, _) in jobs.items():
        by_rule.setdefault(rule, set()).add(out)
    return by_rule


def _running_encode_outputs(pid: int) -> list[str]:
    """``--out`` of the ``brainalign encode`` processes below ``pid``."""
    outs = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "encode" in cmd and "--out" in cmd:
            outs.append(cmd[cmd.index("--out") + 1])
    return outs


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The project's workflow run to the end once, in a temporary copy of the repository."""
    config = default_config()
    config["simulate"]["preset"] = "tiny"           # simulates NSD subjects 1 and 2
    config["datasets"] = {"nsd": dict(config["datasets"]["nsd"], subjects=[1])}
    config["features"]["models"] = {"alexnet": config["features"]["models"]["alexnet"]}
    config["training"].update(preset="tiny", subjects=[1], controls=[], neurofusion={"enabled": False})
    config["rsa"].update(bootstrap=20)
    work = copy_project(tmp_path_factory.mktemp("reruns"), config)
    snakemake(work)
    assert pending(work) == {}
    return work


def test_encoding_parameter_reruns_encoding_and_what_follows(finished):
    original = read_config(finished)
    changed = yaml.safe_load(yaml.safe_dump(original))
    changed["encoding"]["alphas"]["n"] = 10
    write_config(finished, changed)
    jobs = pending(finished)
    assert rules_of(jobs) == {"encode": ENCODE_SUBJ01, "report": REPORT, "manifest": {"results/manifest.json"}}
    assert all("Params have changed" in jobs[o][1] and "logspace:-1:7:10" in jobs[o][1] for o in ENCODE_SUBJ01)
    write_config(finished, original)
    assert pending(finished) == {}


@pytest.mark.parametrize("stage_file, rules", [
    ("encoding/ridge.py", {"encode", "report", "manifest"}),
    ("rsa/compare.py", {"rsa_fmri", "report", "manifest"}),
    ("training/engine.py", {"train", "initial_backbone", "features_trained", "encode", "rsa_fmri", "report",
                            "manifest"}),
])
def test_editing_a_stage_reruns_that_stage_and_what_follows(finished, stage_file, rules):
    src = finished / "src" / "brainalign" / stage_file
    original = src.read_text()
    src.write_text(original + "\n# an edit to this stage's code\n")
    try:
        jobs = pending(finished)
        assert set(rules_of(jobs)) == rules
        direct = {o for o, (rule, reason) in jobs.items() if "Params have changed" in reason}
        assert direct and {jobs[o][0] for o in direct} <= rules - {"report", "manifest"}
    finally:
        src.write_text(original)
    assert pending(finished) == {}


def test_editing_a_module_a_stage_imports_only_indirectly_reruns_that_stage(finished):
    """A module that `brainalign encode` reaches only through other package modules (no rule names it), and that
    no other rule's command imports: editing it reruns the encoding jobs and what follows, nothing upstream."""
    package = finished / "src" / "brainalign"
    indirect = indirect_modules(package, "encode", ("brainalign.encoding.cli", "brainalign.encoding.pipeline"),
                                OTHER_COMMANDS)
    assert indirect, "no module reaches encode only indirectly; pick another stage for this test"
    src = package / indirect[0]
    original = src.read_text()
    src.write_text(original + "\n# an edit to a helper of the encoding stage\n")
    try:
        jobs = pending(finished)
        assert rules_of(jobs) == {"encode": ENCODE_SUBJ01, "report": REPORT, "manifest": {"results/manifest.json"}}
        assert all("Params have changed" in jobs[o][1] for o in ENCODE_SUBJ01)
    finally:
        src.write_text(original)
    assert pending(finished) == {}


def test_killed_job_is_redone_not_reused(finished):
    """A run killed hard during an encoding job: that job is planned again as incomplete, never reused."""
    original = read_config(finished)
    changed = yaml.safe_load(yaml.safe_dump(original))
    changed["encoding"]["folds"] = 3
    write_config(finished, changed)
    proc = subprocess.Popen([str(SNAKEMAKE), "--profile", str(LOCAL_PROFILE), "--cores", "1"], cwd=finished,
                            env=env(finished), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline, started = time.time() + 300, []
        while not started and time.time() < deadline and proc.poll() is None:
            started = _running_encode_outputs(proc.pid)
            time.sleep(0.1)
        assert started, "no encoding job started"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = started[0]
    assert killed in ENCODE_SUBJ01
    # what a job killed after writing can leave behind: an output that looks finished
    Path(finished, killed).mkdir(parents=True, exist_ok=True)

    # without --rerun-incomplete Snakemake refuses to use it
    r = snakemake(finished, "-n", profile=False, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "incomplete" in out.lower() and killed in out, out[-3000:]
    # with the profile (rerun-incomplete) it is redone even once the change that started it is undone,
    # while the other encoding jobs, never started, stay as they were
    write_config(finished, original)
    jobs = pending(finished)
    assert rules_of(jobs) == {"encode": {killed}, "report": REPORT, "manifest": {"results/manifest.json"}}
    # a hard kill also leaves Snakemake's lock behind: the next run needs --unlock (docs/cluster.md)
    locked = snakemake(finished, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(finished, "--unlock")
    snakemake(finished)
    assert pending(finished) == {}
    assert (Path(finished, killed) / "voxels.parquet").is_file()  # redone, not the leftover


def test_new_subject_runs_only_its_jobs_and_group_steps(finished):
    config = read_config(finished)
    config["datasets"]["nsd"]["subjects"] = [1, 2]
    write_config(finished, config)
    jobs = pending(finished)
    by_rule = rules_of(jobs)
    assert by_rule == {
        "ingest_nsd": {"results/stores/nsd/subj02.zarr"},
        "encode": {o.replace("subj01/", "subj02/") for o in ENCODE_SUBJ01},
        "rsa_fmri": {"results/rsa/fmri"},
        "report": REPORT,
        "manifest": {"results/manifest.json"},
    }
    assert not UPSTREAM & set(by_rule)
    snakemake(finished)
    assert pending(finished) == {}
