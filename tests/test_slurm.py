"""The SLURM profile, run for real: a single-node SLURM cluster (tests/slurm/setup_cluster.sh) with a CPU
partition and a GPU partition of faked A100s, Snakemake's SLURM executor plugin, and the profile scaled down to
fit the node (same partitions, GPU requests, groups, retries).

Two workflows run through it:
- a stand-in DAG whose rules carry the project's rule names (so the profile's per-rule settings apply),
  with a rule that fails unless the retry raised its memory, and a multi-GPU rule;
- the project's own DAG, CI-sized (simulator ``tiny`` preset), run as a user would: ``brainalign profile slurm``
  (site values from this cluster's sinfo), then ``snakemake --profile slurm -n`` (the whole DAG) and
  ``snakemake --profile slurm <targets>`` (profile found by name in ``$XDG_CONFIG_HOME/snakemake``; only its sizes
  shrunk to the node). The real run takes one branch that holds every kind of job the profile treats apart
  (:func:`slurm_targets`): a full run through SLURM costs about a minute of scheduling per job on the 2-core node,
  and every rule of the DAG already runs in the shared local run (tests/project_run.py).

Checks read ``scontrol show job`` (finished jobs stay in slurmctld for MinJobAge = 300 s; no slurmdbd).
Skipped only when not root or when SLURM is neither installed nor installable with apt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from project_copy import BIN, ROOT, SNAKEMAKE, copy_project, default_config

from brainalign.layout import ResultsLayout, subject_folder

PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
SETUP_CLUSTER = ROOT / "tests" / "slurm" / "setup_cluster.sh"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def cluster_unavailable() -> str | None:
    """Why no SLURM cluster can be started here, or None."""
    if os.geteuid() != 0:
        return "needs root (SLURM daemons and jobs run as root here)"
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        return "SLURM not installed and apt-get unavailable"
    return None


def start_cluster() -> None:
    # the node's CPUs are the machine's, not the one compute thread per process the suite sets (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    r = subprocess.run(["bash", str(SETUP_CLUSTER)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, f"setup_cluster.sh failed:\n{r.stdout}\n{r.stderr}"


def run_in_session(workdir: Path, args: list[str], timeout: int, env: dict | None = None) -> subprocess.CompletedProcess:
    """Snakemake in its own session (a stray SIGTERM makes the SLURM plugin wait forever), under a hard timeout;
    ``env``: extra environment variables."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(workdir / "src"),
               BRAINALIGN_PROGRESS="0", **(env or {}))
    cmd = ["setsid", "timeout", "-k", "20", str(timeout), str(SNAKEMAKE), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout + 60)


def slurm_jobs(workdir: Path) -> list[dict]:
    """Every job slurmctld still knows whose working directory is ``workdir``, as dicts of scontrol fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs.append(fields)
    return jobs


def by_rule(jobs: list[dict], rules) -> dict[str, list[dict]]:
    """Jobs keyed by rule. The plugin's comment is ``rule_<name>[_wildcards_<...>]``, where <name> is a rule
    or, for a group job, ``<group>_<rules...>``; group jobs are listed under each rule named in it."""
    out: dict[str, list[dict]] = {}
    for j in jobs:
        name = j.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
        hits = [name] if name in rules else [r for r in rules if re.search(rf"(^|_){re.escape(r)}(_|$)", name)]
        for rule in hits or [name]:
            out.setdefault(rule, []).append(j)
    return out


def gpu_request(job: dict) -> str:
    return job.get("TresPerJob", "") + job.get("TresPerNode", "") + job.get("Gres", "")


def shrink_profile(prof: dict, gpus_for_train: int = 1) -> dict:
    """A profile's sizes (jobs, memory, time, threads, CPUs and GPUs per job, waits) shrunk to the 2-core test node;
    partitions, GPU types, groups and retries stay as written."""
    prof["jobs"] = 2
    prof["latency-wait"] = 5
    prof["slurm-init-seconds-before-status-checks"] = 2
    prof["max-status-checks-per-second"] = 2
    prof["keep-going"] = False
    prof["default-resources"].update({"mem_mb": "300 * attempt", "runtime": "30 * attempt", "disk_mb": 100})
    for res in prof["set-resources"].values():
        res["mem_mb"] = "300 * attempt"
        res["runtime"] = "30 * attempt"
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = 1
    for rule in ("train", "train_neurofusion", "train_neurofusion_control"):
        if rule in prof["set-resources"]:
            prof["set-resources"][rule]["gpu"] = gpus_for_train
    prof["set-threads"] = {rule: 1 for rule in prof.get("set-threads", {})}
    return prof


def write_user_profile(config_home: Path) -> tuple[dict, str]:
    """``brainalign profile slurm`` as a user runs it on the cluster's login node (no flags: site values from
    sinfo), into ``config_home``; the written profile (as written) and its text. Then its sizes are shrunk to the
    node in place, the marker block kept so the file stays brainalign's."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home), PATH=f"{BIN}:{os.environ['PATH']}")
    r = subprocess.run([str(BIN / "brainalign"), "profile", "slurm"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    path = config_home / "snakemake" / "slurm" / "config.yaml"
    text = path.read_text()
    written = yaml.safe_load(text)
    header = text.split("\n\n", 1)[0]
    shrunk = shrink_profile(yaml.safe_load(text))
    path.write_text(header + "\n\n" + yaml.safe_dump(shrunk, sort_keys=False))
    return written, text


@pytest.fixture(scope="module")
def cluster():
    why = cluster_unavailable()
    if why:
        pytest.skip(why)
    start_cluster()
    return True


def scaled_profile(dest: Path, gpus_for_train: int = 2) -> Path:
    """Copy of the project's SLURM profile with every size shrunk to fit a 2-core test node; all else as shipped."""
    prof = shrink_profile(yaml.safe_load(PROFILE.read_text()), gpus_for_train)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


STANDIN = textwrap.dedent(
    r"""
    # stand-in for the project DAG: project rule names, trivial commands
    localrules: all

    rule all:
        input: "out/report.txt"

    rule simulate:
        output: "out/simulated.txt"
        shell: "echo simulated > {output}"

    rule ingest_nsd:
        # fails unless the retry raised the memory (profile: mem_mb 300 * attempt)
        input: "out/simulated.txt"
        output: "out/store.txt"
        shell: "test {resources.mem_mb} -ge 600 || {{ echo 'needs 600 MB' >&2; exit 1; }}; echo mem={resources.mem_mb} > {output}"

    rule features:
        input: "out/store.txt"
        output: "out/features.txt"
        resources: gpu=1
        shell: "echo partition=$SLURM_JOB_PARTITION gpus=$SLURM_GPUS_ON_NODE cuda=$CUDA_VISIBLE_DEVICES > {output}"

    rule train:
        input: "out/features.txt"
        output: "out/train.txt"
        resources: gpu=1
        # the training rule's launcher line, with `echo` standing in for torchrun
        shell: "echo torchrun --standalone --nproc_per_node=${{SLURM_GPUS_ON_NODE:-1}} > {output}"

    rule report:
        input: "out/train.txt", "out/features.txt"
        output: "out/report.txt"
        shell: "cat {input} > {output}"
    """
)


def test_standin_dag_through_slurm_profile(cluster, tmp_path):
    """CPU rules on `cpu`, GPU rules on `gpu` with an A100 request, multi-GPU launcher, retry with more memory."""
    work = tmp_path / "wf"
    work.mkdir()
    (work / "Snakefile").write_text(STANDIN)
    profile = scaled_profile(tmp_path / "profile", gpus_for_train=2)
    # generous: on a loaded 2-core node each trivial job can take minutes through slurmctld/slurmd
    r = run_in_session(work, ["--profile", str(profile), "--retries", "1"], timeout=900)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-6000:]
    assert (work / "out" / "report.txt").exists()

    jobs = by_rule(slurm_jobs(work), {"all", "simulate", "ingest_nsd", "features", "train", "report"})
    assert set(jobs) == {"simulate", "ingest_nsd", "features", "train", "report"}, jobs.keys()
    assert "all" not in jobs  # localrule
    assert "small" in jobs["report"][0]["Comment"]  # submitted as a group job (profile `groups`)
    for rule in ("simulate", "ingest_nsd", "report"):
        assert {j["Partition"] for j in jobs[rule]} == {"cpu"}, (rule, jobs[rule])
        assert "gpu" not in gpu_request(jobs[rule][0]), jobs[rule]
    for rule, n in (("features", 1), ("train", 2)):
        (job,) = jobs[rule]
        assert job["Partition"] == "gpu"
        assert f"gpu:a100:{n}" in gpu_request(job), job
    # the job really got the (fake) GPUs
    assert (work / "out" / "features.txt").read_text().split() == ["partition=gpu", "gpus=1", "cuda=0"]
    assert (work / "out" / "train.txt").read_text().strip().endswith("--nproc_per_node=2")
    # retry: first attempt with 300 MB failed, second with 600 MB succeeded
    mems = sorted(j["MinMemoryNode"] for j in jobs["ingest_nsd"])
    assert mems == ["300M", "600M"], jobs["ingest_nsd"]
    assert (work / "out" / "store.txt").read_text().strip() == "mem=600"


def project_rules(workdir: Path) -> set[str]:
    r = subprocess.run([str(SNAKEMAKE), "--list-rules"], cwd=workdir, capture_output=True, text=True, timeout=120)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def slurm_config() -> dict:
    """The embedded default, CI-sized: the simulator's tiny preset, one EEG subject, the tiny training presets
    without ReAlnet's controls (the same rule with other params), two held-out category sets."""
    config = default_config()
    config["simulate"]["preset"] = "tiny"
    config["datasets"]["things_eeg2"]["subjects"] = [1]
    config["training"].update(preset="tiny", controls=[])
    config["training"]["neurofusion"].update(preset="tiny", controls=[])
    config["synthetic"].update(samples_per_class=[10], category_folds=2, permutations=100)
    config["rsa"].update(bootstrap=50, permutations=100)
    config["encoding"]["comparison_bootstrap"] = 50
    return config


def slurm_targets() -> list[str]:
    """The branch the SLURM test runs: ReAlnet-fMRI's held-out encoder for subject 1 (CPU jobs ``simulate``,
    ``ingest_nsd`` and ``initial_backbone``; the local rule ``stimulus_lists``; GPU jobs ``train``, through the
    torchrun launcher, ``features_trained`` and ``encode``) and the EEG store (a group job, ``eeg_ingest``)."""
    layout = ResultsLayout("results")
    return [layout.encoder("nsd", subject_folder("nsd", 1), "realnet-subj01-aligned", "nsd-shared"),
            layout.store("things_eeg2", subject_folder("things_eeg2", 1))]


def test_project_dag_through_slurm_profile(cluster, tmp_path):
    """The project's DAG through `snakemake --profile slurm` as written (the profile from `brainalign profile slurm`,
    sizes scaled): the dry run of the whole DAG puts GPU rules on `gpu` with an A100 request and the others on
    `cpu`; the real run of :func:`slurm_targets` finishes, and every job in it that is not a local rule ran as a
    SLURM job on the partition its rule asks for, the training job with its GPUs, the EEG ingest as a group job."""
    config_home = tmp_path / "config_home"
    prof, text = write_user_profile(config_home)
    work = copy_project(tmp_path / "repo", slurm_config())
    xdg = {"XDG_CONFIG_HOME": str(config_home)}
    r = run_in_session(work, ["--profile", "slurm", "-n"], timeout=300, env=xdg)
    dry = r.stdout + r.stderr
    assert r.returncode == 0, dry[-8000:]
    # the site values: this cluster's default partition, its GPU partition and GPU type (tests/slurm/setup_cluster.sh)
    assert prof["default-resources"]["slurm_partition"] == "'cpu'", text[:2000]
    gpu_rules = {rule for rule, res in prof["set-resources"].items() if "gpu" in res}
    assert gpu_rules and all(prof["set-resources"][rule]["slurm_partition"] == "'gpu'"
                             and prof["set-resources"][rule]["gpu_model"] == "'a100'" for rule in gpu_rules)
    # the dry run plans every rule of the DAG with its partition
    planned_all = set(re.findall(r"^\s*rule (\w+):", dry, flags=re.M))
    assert {"train", "encode", "rsa_fmri", "synthetic_evaluate", "features_unseen"} <= planned_all, sorted(planned_all)
    assert "slurm_partition=gpu" in dry and "gpu_model=a100" in dry and "slurm_partition=cpu" in dry, dry[-8000:]

    r = run_in_session(work, ["--profile", "slurm", *slurm_targets()], timeout=1500, env=xdg)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-8000:]
    for target in slurm_targets():
        assert (work / target).exists(), target
    jobs = by_rule(slurm_jobs(work), project_rules(work))
    # the Snakefile's localrules and the rules planned, as the run printed them (a group job's rules indented)
    local = set(re.findall(r"^\s*localrule (\w+):", log, flags=re.M))
    planned = set(re.findall(r"^\s*rule (\w+):", log, flags=re.M))
    assert {"simulate", "ingest_nsd", "train", "features_trained", "encode", "ingest_things_eeg2"} <= planned, planned
    assert planned and not planned & local and planned <= set(jobs), f"not submitted: {sorted(planned - set(jobs))}"
    for rule in gpu_rules & set(jobs):
        for job in jobs[rule]:
            assert job["Partition"] == "gpu" and "gpu:a100" in gpu_request(job), job
    for rule in set(jobs) - gpu_rules:
        for job in jobs[rule]:
            assert job["Partition"] == "cpu", job
    assert "eeg_ingest" in jobs["ingest_things_eeg2"][0]["Comment"]  # the profile's group, one sbatch
