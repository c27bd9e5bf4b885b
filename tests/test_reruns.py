"""Partial reruns: Snakemake redoes exactly what a change invalidates, and never reuses a killed job's output.

The workflow here is a stand-in with the project's shape and conventions (simulate -> per-subject ingest ->
features -> per-subject encoding -> group RSA -> report; every rule carries
``params: code=code_fingerprint(<stage>)`` like workflow/rules/*.smk, and runs with the local profile's
rerun triggers), with trivial commands so that it runs in seconds. Snakemake itself decides what reruns:
each check is a real dry run (``--summary``: per-output plan) after a real run.

The library code is fingerprinted from a temporary copy of ``src/brainalign`` (first on PYTHONPATH), so
"editing a stage's code" edits only that copy.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
LOCAL_PROFILE = ROOT / "workflow" / "profiles" / "local"
STAGES = ("simulate", "ingest", "features", "encoding", "rsa")

SNAKEFILE = textwrap.dedent(
    r'''
    from brainalign.provenance import code_fingerprint

    configfile: "config.yaml"
    R = config["results"]
    SUBJECTS = [f"{s:02d}" for s in config["subjects"]]

    rule all:
        input: f"{R}/report/summary.md"

    rule simulate:
        output: directory(f"{R}/simulated")
        params: preset=config["preset"], code=code_fingerprint("simulate")
        shell: "mkdir -p {output}/nsd && echo {params.preset} > {output}/nsd/tree.txt"

    rule ingest_nsd:
        input: f"{R}/simulated"
        output: directory(f"{R}/stores/nsd/subj{{subject}}.zarr")
        params: code=code_fingerprint("ingest")
        shell: "mkdir -p {output} && echo subject {wildcards.subject} > {output}/betas"

    rule features:
        input: f"{R}/simulated"
        output: directory(f"{R}/features/nsd/{{model}}.zarr")
        params: code=code_fingerprint("features")
        shell: "mkdir -p {output} && echo {wildcards.model} > {output}/layers"

    rule encode:
        input:
            store=f"{R}/stores/nsd/subj{{subject}}.zarr",
            features=f"{R}/features/nsd/{config['encoding']['model']}.zarr",
        output: directory(f"{R}/encoding/nsd/subj{{subject}}")
        params: alphas=config["encoding"]["alphas"], code=code_fingerprint("encoding")
        shell:
            "mkdir -p {output}.part && echo start > {output}.part/started "
            "&& sleep $(cat sleep_{wildcards.subject} 2>/dev/null || echo 0) "
            "&& mkdir -p {output} && echo {params.alphas} > {output}/scores.tsv"

    rule rsa_fmri:
        input: expand(f"{R}/stores/nsd/subj{{s}}.zarr", s=SUBJECTS), f"{R}/features/nsd/alexnet.zarr"
        output: directory(f"{R}/rsa/fmri")
        params: code=code_fingerprint("rsa")
        shell: "mkdir -p {output} && ls {input} > {output}/rdms.txt"

    rule report:
        input: expand(f"{R}/encoding/nsd/subj{{s}}", s=SUBJECTS), f"{R}/rsa/fmri"
        output: f"{R}/report/summary.md"
        shell: "ls {input} > {output}"
    '''
)

CONFIG = {"results": "results", "preset": "tiny", "subjects": [1, 2],
          "encoding": {"model": "alexnet", "alphas": 20}}


def snakemake(work: Path, *args: str, timeout: int = 120, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(work / "src"))
    r = subprocess.run([str(SNAKEMAKE), "--profile", str(LOCAL_PROFILE), *args], cwd=work, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def pending(work: Path, *args: str) -> dict[str, str]:
    """``{output: rule}`` of every job a run would execute now, from Snakemake's dry run (with the profile).

    (``--summary`` is not used: its plan column ignores incomplete outputs.)
    """
    r = snakemake(work, "--dry-run", *args)
    jobs, rule = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^(?:localrule|rule) (\w+):$", line.strip())
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("output:"):
            for out in line.split(":", 1)[1].split(","):
                jobs[out.strip()] = rule
            rule = None
    return jobs


def write_config(work: Path, config: dict) -> None:
    (work / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture()
def finished(tmp_path):
    """A finished run in a temporary workdir with its own copy of the package source."""
    work = tmp_path / "wf"
    work.mkdir()
    shutil.copytree(ROOT / "src" / "brainalign", work / "src" / "brainalign",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for stage in STAGES:  # stages not written yet in the real package still get a fingerprint
        (work / "src" / "brainalign" / stage).mkdir(exist_ok=True)
        (work / "src" / "brainalign" / stage / "_stage.py").write_text("# stage\n")
    (work / "Snakefile").write_text(SNAKEFILE)
    write_config(work, CONFIG)
    snakemake(work)
    assert pending(work) == {}
    return work


def test_encoding_parameter_reruns_encoding_and_what_follows(finished):
    cfg = dict(CONFIG, encoding={"model": "alexnet", "alphas": 30})
    write_config(finished, cfg)
    assert pending(finished) == {
        "results/encoding/nsd/subj01": "encode",
        "results/encoding/nsd/subj02": "encode",
        "results/report/summary.md": "report",
    }


def test_new_subject_runs_only_its_jobs_and_group_steps(finished):
    write_config(finished, dict(CONFIG, subjects=[1, 2, 3]))
    assert pending(finished) == {
        "results/stores/nsd/subj03.zarr": "ingest_nsd",
        "results/encoding/nsd/subj03": "encode",
        "results/rsa/fmri": "rsa_fmri",
        "results/report/summary.md": "report",
    }
    snakemake(finished)
    assert pending(finished) == {}


def test_editing_a_stage_reruns_that_stage(finished):
    src = finished / "src" / "brainalign" / "encoding" / "_stage.py"
    src.write_text(src.read_text() + "# a change to the encoding code\n")
    assert pending(finished) == {
        "results/encoding/nsd/subj01": "encode",
        "results/encoding/nsd/subj02": "encode",
        "results/report/summary.md": "report",
    }
    # a shared helper (_io.py) is part of every stage's fingerprint: everything reruns
    io_py = finished / "src" / "brainalign" / "_io.py"
    io_py.write_text(io_py.read_text() + "\n# shared helper changed\n")
    rules = set(pending(finished).values())
    assert rules == {"simulate", "ingest_nsd", "features", "encode", "rsa_fmri", "report"}


def test_killed_job_is_redone_not_reused(finished):
    # a new subject's encoding hangs midway; Snakemake and the job are killed hard, leaving a partial output
    write_config(finished, dict(CONFIG, subjects=[1, 2, 3]))
    (finished / "sleep_03").write_text("60")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(finished / "src"))
    proc = subprocess.Popen([str(SNAKEMAKE), "--profile", str(LOCAL_PROFILE), "--cores", "1"], cwd=finished,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = finished / "results" / "encoding" / "nsd" / "subj03.part" / "started"
    try:
        deadline = time.time() + 90
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the encoding job never started"
        killed = finished / "results" / "encoding" / "nsd" / "subj03"
        killed.mkdir()  # what a killed job can leave behind: its output, newer than its inputs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (finished / "sleep_03").unlink()

    # without --rerun-incomplete Snakemake refuses to use the half-written output
    r = subprocess.run([str(SNAKEMAKE), "-n", "--cores", "1"], cwd=finished, env=env,
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "incomplete" in out.lower() and "results/encoding/nsd/subj03" in out, out
    # with the profile (rerun-incomplete) it is planned again and redone
    assert pending(finished) == {"results/encoding/nsd/subj03": "encode", "results/report/summary.md": "report"}
    # a hard kill also leaves Snakemake's lock behind: the run after it needs --unlock first (docs/cluster.md)
    locked = snakemake(finished, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(finished, "--unlock")
    snakemake(finished)
    assert (killed / "scores.tsv").read_text().strip() == "20"
    assert pending(finished) == {}
