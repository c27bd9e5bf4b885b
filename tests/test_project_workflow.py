"""The project's workflow, run once for all these checks (``project_run``, tests/project_run.py: the demo simulator,
two NSD subjects, ReAlnet-fMRI ``small`` and its beta = 0 control trained on subject 1, NeuroFusionNet ``tiny``,
one THINGS-EEG2 subject, BOLD5000's synthetic stage), with the local profile.

1. **Alignment acceptance** (ReAlnet-fMRI): the brain-aligned model is more brain-like than the beta = 0 control
   trained by the same code on the same images, within (subject 1) and across (subject 2) subjects, on held-out
   images only (the 100 shared images, which no model was trained or selected on: checked against the runs'
   training records), measured by the evaluation stages and decided by the report's pre-declared tests (paired
   stimulus bootstraps, Holm over the RSA ROIs; docs/methods.md).
2. **Partial reruns**: Snakemake redoes exactly what a change invalidates (a parameter, a stage's code, a module
   imported only indirectly, a new subject), and never reuses a killed job's output. Each check is a real dry run
   after a change, with the local profile's rerun triggers; "editing a stage's code" edits only the project copy's
   package source (first on PYTHONPATH), seen by Snakemake through the rules' ``code_fingerprint`` params (derived
   from the package's import graph). These come last: each undoes its change or leaves the run finished.

The file runs on one worker (``--dist loadfile``), first in the queue (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml
from project_copy import LOCAL_PROFILE, SNAKEMAKE, env, indirect_modules, read_config, snakemake, write_config

from brainalign.features import open_feature_cache
from brainalign.heldout import read_training_record
from brainalign.layout import ResultsLayout, find, subject_folder

pytestmark = pytest.mark.slow


# --- 1. alignment acceptance -------------------------------------------------------------------------------------

ALIGNED, CONTROL = "realnet-subj01-aligned", "beta=0 control"


@pytest.fixture(scope="module")
def results(project_run):
    return project_run.results


def findings(results) -> pd.DataFrame:
    return pd.read_parquet(results / "report" / "findings.parquet")


def test_every_score_is_on_images_no_model_saw(results):
    """The training records (each run's stimuli.parquet, copied into its feature cache) against every evaluation
    set: each encoder's test stimuli and the RSA (and object-dimension) stimuli. With a single NSD subject 'every
    stimulus of the stores' would include the training images; the evaluation set is the shared-flagged images."""
    layout = ResultsLayout(str(results))
    seen = set()
    for variant in ("aligned", "beta0"):
        record = read_training_record(layout.training_record(layout.realnet_run("subj01", variant)))
        assert set(record["role"]) == {"train", "val"} and set(record["subject"]) == {"subj01"}
        trained = open_feature_cache(layout.feature_cache("nsd", f"realnet-subj01-{variant}"))
        assert trained.training_stimuli.equals(record)
        assert trained.attrs["weights_origin"] == "random" and trained.attrs["weights"].startswith("checkpoint:")
        seen |= set(record["stimulus"])
    assert len(seen) == 400  # subject 1's 320 training and 80 validation images
    for name in ("alexnet", "cornet_s-initial"):  # the baselines: random networks, trained on nothing
        baseline = open_feature_cache(layout.feature_cache("nsd", name))
        assert baseline.training_stimuli is None and baseline.attrs["weights_origin"] == "random"
    rsa = np.load(layout.rsa("fmri") + "/rdms_fmri.npz")["stimulus_ids"].tolist()
    assert len(rsa) == 100 and not seen & set(rsa)
    encoders = find(layout.encoder("nsd", "{subject}", "{model}", "nsd-shared"))
    assert {values["subject"] for values, _ in encoders} == {"subj01", "subj02"}
    for _, path in encoders:
        test = json.loads((path / "encoder" / "encoder.json").read_text())["test_stimuli"]
        assert len(test) == 100 and not seen & set(test), path


@pytest.mark.parametrize("subject, relation", [("subj01", "within"), ("subj02", "across")])
def test_aligned_model_predicts_held_out_voxels_better_than_the_control(results, subject, relation):
    table = findings(results).set_index("finding")
    row = table.loc[f"encoding: ReAlnet(subj01) vs {CONTROL} on {subject} ({relation} subject)"]
    assert row["verdict"] == "yes", row.to_dict()
    assert row["ci_low"] > 0.01, row.to_dict()  # a margin, not a tie broken by noise


@pytest.mark.parametrize("relation", ["within", "across"])
def test_aligned_model_rdms_match_the_subjects_better_than_the_control(results, relation):
    table = findings(results)
    rows = table[table["finding"].str.startswith(f"RSA: ReAlnet(subj01) vs {CONTROL}, ")
                 & table["finding"].str.contains(f"({relation} subject", regex=False)]
    assert len(rows) == 6, rows["finding"].tolist()  # one per ROI of rsa.rois, Holm-corrected together
    verdicts = rows["verdict"].value_counts().to_dict()
    table = rows[["finding", "verdict", "effect", "p"]].to_string()
    # nowhere worse; better in the whole visual cortex and in at least half the ROIs after Holm (measured: early
    # visual, word-selective and nsdgeneral; the face/body/place ROIs inconclusive)
    assert verdicts.get("no", 0) == 0 and verdicts.get("yes", 0) >= 3, table
    assert rows.set_index("finding").filter(like="nsdgeneral", axis=0)["verdict"].eq("yes").all(), table


def test_aligned_model_encodes_object_dimensions_more_than_the_control(results):
    row = findings(results).set_index("finding").loc[f"object dimensions: ReAlnet(subj01) vs {CONTROL}"]
    assert row["verdict"] == "yes", row.to_dict()


# --- 2. partial reruns (last: they edit the run) -----------------------------------------------------------------

#: jobs made once per run, upstream of every encoding and analysis step
UPSTREAM = {"simulate", "stimulus_lists", "categories", "features", "initial_backbone", "features_trained", "train",
            "train_neurofusion", "ingest_nsd", "ingest_bold5000", "ingest_things_eeg2"}
#: the brainalign commands of this run's rules that are not downstream of encode (the rules after it, synthesize,
#: compare-encoders, report and manifest, rerun anyway when the encoders do)
OTHER_COMMANDS = ("simulate", "ingest", "stimulus-lists", "categories", "features", "train", "rsa")


def pending(work: Path, *args: str) -> dict[str, tuple[str, str]]:
    """``{output: (rule, reason)}`` of every job a run would execute now (a dry run with the profile; ``args``
    are added to it)."""
    jobs, rule, outputs = {}, None, []
    for line in snakemake(work, "--dry-run", *args).stdout.splitlines():
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


def downstream(work: Path, outputs) -> set[str]:
    """``outputs`` and every output made from them: what Snakemake plans when they are forced to rerun."""
    return set(pending(work, "--forcerun", *sorted(outputs)))


def outputs_of(work: Path, rule: str) -> set[str]:
    """Every output of ``rule``'s jobs in the finished run (what ``--forcerun`` of the rule plans for it)."""
    return {o for o, (r, _) in pending(work, "--forcerun", rule).items() if r == rule}


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
def finished(project_run):
    """The shared run, finished (nothing pending with the local profile)."""
    assert pending(project_run.work) == {}
    return project_run.work


def _changed_directly(jobs: dict) -> dict[str, set]:
    """The planned jobs whose own params changed (the others follow from updated inputs), by rule."""
    return rules_of({o: job for o, job in jobs.items() if "Params have changed" in job[1]})


def test_encoding_parameter_reruns_encoding_and_what_follows(finished):
    encoders = outputs_of(finished, "encode")
    expected = downstream(finished, encoders)
    original = read_config(finished)
    changed = yaml.safe_load(yaml.safe_dump(original))
    changed["encoding"]["alphas"]["n"] = 10
    write_config(finished, changed)
    try:
        jobs = pending(finished)
        assert set(jobs) == expected
        assert _changed_directly(jobs) == {"encode": encoders}
        assert all("logspace:-1:7:10" in jobs[o][1] for o in encoders)
        assert not UPSTREAM & set(rules_of(jobs))
    finally:
        write_config(finished, original)
    assert pending(finished) == {}


#: a stage's module -> the rules whose commands import it (read off the commands' imports by hand)
STAGE_EDITS = {
    "encoding/ridge.py": {"encode"},
    "rsa/compare.py": {"rsa_fmri", "rsa_eeg"},
    "training/engine.py": {"initial_backbone", "train", "train_neurofusion"},
}


@pytest.mark.parametrize("stage_file", sorted(STAGE_EDITS))
def test_editing_a_stage_reruns_that_stage_and_what_follows(finished, stage_file):
    direct = set().union(*(outputs_of(finished, rule) for rule in STAGE_EDITS[stage_file]))
    expected = downstream(finished, direct)
    src = finished / "src" / "brainalign" / stage_file
    original = src.read_text()
    src.write_text(original + "\n# an edit to this stage's code\n")
    try:
        jobs = pending(finished)
        assert set(jobs) == expected
        # Snakemake names one reason per job: a rule downstream of another edited one (train after
        # initial_backbone) shows "input updated", so the edited rules are an upper bound
        assert set(_changed_directly(jobs)) and set(_changed_directly(jobs)) <= STAGE_EDITS[stage_file]
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
    encoders = outputs_of(finished, "encode")
    expected = downstream(finished, encoders)
    src = package / indirect[0]
    original = src.read_text()
    src.write_text(original + "\n# an edit to a helper of the encoding stage\n")
    try:
        jobs = pending(finished)
        assert set(jobs) == expected
        assert _changed_directly(jobs) == {"encode": encoders}
    finally:
        src.write_text(original)
    assert pending(finished) == {}


def test_killed_job_is_redone_not_reused(finished):
    """A run killed hard during an encoding job: that job is planned again as incomplete, never reused."""
    encoders = outputs_of(finished, "encode")
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
    assert killed in encoders
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
    assert rules_of(jobs)["encode"] == {killed} and not _changed_directly(jobs)
    assert set(jobs) == downstream(finished, {killed})
    # a hard kill also leaves Snakemake's lock behind: the next run needs --unlock (docs/cluster.md)
    locked = snakemake(finished, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(finished, "--unlock")
    snakemake(finished)
    assert pending(finished) == {}
    assert (Path(finished, killed) / "voxels.parquet").is_file()  # redone, not the leftover


def test_new_subject_runs_only_its_jobs_and_group_steps(finished):
    """A second THINGS-EEG2 subject: its ingest, the EEG RSA over both subjects, the report; nothing else."""
    layout = ResultsLayout("results")
    config = read_config(finished)
    assert config["datasets"]["things_eeg2"]["subjects"] == [1]
    config["datasets"]["things_eeg2"]["subjects"] = [1, 2]
    write_config(finished, config)
    jobs = pending(finished)
    by_rule = rules_of(jobs)
    assert by_rule.pop("ingest_things_eeg2") == {layout.store("things_eeg2", subject_folder("things_eeg2", 2))}
    assert by_rule.pop("rsa_eeg") == {layout.rsa("eeg")}
    assert set(by_rule) == {"report", "manifest"}, by_rule
    assert set(jobs) == downstream(finished, {layout.rsa("eeg")})  # (the new store is missing: planned too)
    snakemake(finished)
    assert pending(finished) == {}
