"""``brainalign profile slurm``: the SLURM profile written where ``snakemake --profile slurm`` finds it.

The cluster is faked: ``sinfo`` and ``sacctmgr`` are shell scripts on PATH, HOME and XDG_CONFIG_HOME point into
tmp. What Snakemake makes of the written profile is read from Snakemake itself (a dry run of a two-rule workflow
with ``--profile slurm`` prints each job's resolved resources). The real cluster run is in test_slurm.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from brainalign.cli import main
from brainalign.profile import (MARKER, Site, edit_yaml_text, parse_gres, parse_sinfo, profile_text, resolve_site,
                                template_path)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
#: the GPU rules: those the template gives a GPU request
GPU_RULES = {rule for rule, res in yaml.safe_load(TEMPLATE.read_text())["set-resources"].items() if "gpu" in res}

SINFO_SITE = "compute*|(null)\nall|(null)\ngpu|gpu:a100:4(S:0-1)\ngpu|gpu:a100:8(S:0-1),shard:8\n"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A fake cluster: ``make(sinfo=..., accounts=...)`` puts sinfo / sacctmgr scripts first on PATH (None: no such
    command, and no real one either); HOME and XDG_CONFIG_HOME are in tmp."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("USER", "alice")

    def make(sinfo: str | None = SINFO_SITE, accounts: str | None = "lab42"):
        for name, out in (("sinfo", sinfo), ("sacctmgr", accounts)):
            script = bin_dir / name
            if out is None:
                script.unlink(missing_ok=True)
                continue
            # shell builtins only: PATH holds nothing but the fakes
            script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {tmp_path}/calls.log\nprintf '%s\\n' '{out}'\n")
            script.chmod(0o755)
        monkeypatch.setenv("PATH", str(bin_dir))  # only the fakes: a real sinfo on a CI node must not answer
        return tmp_path / "xdg" / "snakemake" / "slurm" / "config.yaml"

    return make


def resolved_resources(config_home: Path, tmp_path: Path) -> dict[str, dict[str, str]]:
    """rule -> resources as Snakemake resolves them from ``--profile slurm`` (dry run; no SLURM needed)."""
    work = tmp_path / "wf"
    work.mkdir(exist_ok=True)
    (work / "Snakefile").write_text(textwrap.dedent("""
        rule all:
            input: "b.txt"
        rule ingest_nsd:
            output: "a.txt"
            shell: "touch {output}"
        rule features:
            input: "a.txt"
            output: "b.txt"
            resources: gpu=1
            shell: "touch {output}"
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "HOME")}
    env.update(XDG_CONFIG_HOME=str(config_home), HOME=str(tmp_path / "home"), PATH=f"{SNAKEMAKE.parent}:/usr/bin:/bin")
    r = subprocess.run([str(SNAKEMAKE), "--profile", "slurm", "-n"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out, rule = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"\s*resources: (.*)", line)
        if m and rule:
            out[rule] = dict(item.split("=", 1) for item in m.group(1).split(", "))
    return out


def test_writes_where_snakemake_looks_with_values_from_sinfo_and_sacctmgr(cluster, tmp_path, capsys):
    path = cluster()
    assert main(["profile", "slurm"]) == 0
    assert path.is_file() and path.read_text().startswith(MARKER)
    assert str(path) in capsys.readouterr().out
    calls = (tmp_path / "calls.log").read_text()
    assert "sinfo" in calls and "sacctmgr" in calls and "user=alice" in calls

    res = resolved_resources(tmp_path / "xdg", tmp_path)
    assert res["ingest_nsd"]["slurm_partition"] == "compute"  # sinfo's default partition
    assert res["ingest_nsd"]["slurm_account"] == "lab42"
    assert "gpu_model" not in res["ingest_nsd"]
    assert res["features"]["slurm_partition"] == "gpu"       # the partition with GPUs
    assert res["features"]["gpu_model"] == "a100"            # its one GPU type
    assert res["features"]["gpu"] == "1"

    # the rest is the template's, entry for entry
    written, template = yaml.safe_load(path.read_text()), yaml.safe_load(TEMPLATE.read_text())
    for key in set(template) - {"default-resources", "set-resources"}:
        assert written[key] == template[key], key
    for rule, res_t in template["set-resources"].items():
        res_w = written["set-resources"][rule]
        site = {"slurm_partition", "gpu_model"} if rule in GPU_RULES else set()
        assert {k: v for k, v in res_w.items() if k not in site} == {k: v for k, v in res_t.items() if k not in site}
        if rule in GPU_RULES:
            assert res_w["slurm_partition"] == "'gpu'" and res_w["gpu_model"] == "'a100'"
    assert {k: v for k, v in written["default-resources"].items() if k not in ("slurm_partition", "slurm_account")} \
        == {k: v for k, v in template["default-resources"].items() if k != "slurm_partition"}
    # the comments of the template are kept
    assert "slurm-status-command: squeue" in path.read_text() and "# SITE: CPU partition" in path.read_text()


def test_flags_win_and_names_stay_strings(cluster, tmp_path):
    path = cluster()
    assert main(["profile", "slurm", "--partition", "all", "--gpu-partition", "gpu", "--gpu-type", "h100",
                 "--account", "other"]) == 0
    res = resolved_resources(tmp_path / "xdg", tmp_path)
    # a partition called "all" must not become Python's built-in all() when Snakemake evaluates it
    assert res["ingest_nsd"]["slurm_partition"] == "all" and res["ingest_nsd"]["slurm_account"] == "other"
    assert res["features"]["gpu_model"] == "h100"
    assert "--gpu-type h100" in path.read_text().splitlines()[0]


def test_home_config_without_xdg(cluster, tmp_path, monkeypatch):
    cluster()
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert main(["profile", "slurm"]) == 0
    assert (tmp_path / "home" / ".config" / "snakemake" / "slurm" / "config.yaml").read_text().startswith(MARKER)


def test_refuses_a_profile_it_did_not_write(cluster, capsys):
    path = cluster()
    path.parent.mkdir(parents=True)
    path.write_text("executor: slurm\njobs: 7\n")
    assert main(["profile", "slurm"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "did not write" in err
    assert path.read_text() == "executor: slurm\njobs: 7\n"
    assert main(["profile", "slurm", "--force"]) == 0
    assert path.read_text().startswith(MARKER)
    # its own profile it refreshes without --force
    assert main(["profile", "slurm", "--account", "lab7"]) == 0
    assert "'lab7'" in path.read_text()
    # another profile file beside it would shadow config.yaml: refused even with --force
    other = path.parent / "profile.yaml"
    other.write_text("jobs: 1\n")
    assert main(["profile", "slurm", "--force"]) == 2
    assert str(other) in capsys.readouterr().err


def test_without_sinfo_the_flags_are_needed(cluster, capsys):
    path = cluster(sinfo=None, accounts=None)
    assert main(["profile", "slurm"]) == 2
    assert "--partition" in capsys.readouterr().err and not path.parent.exists()
    assert main(["profile", "slurm", "--partition", "cpu"]) == 2
    assert "--gpu-partition" in capsys.readouterr().err and not path.parent.exists()
    assert main(["profile", "slurm", "--partition", "cpu", "--gpu-partition", "gpu", "--gpu-type", "bad-type"]) == 2
    assert "--gpu-type" in capsys.readouterr().err and not path.parent.exists()
    assert main(["profile", "slurm", "--partition", "cpu", "--gpu-partition", "gpu"]) == 0
    written = yaml.safe_load(path.read_text())
    assert "slurm_account" not in written["default-resources"]
    assert "gpu_model" not in written["set-resources"]["features"]  # any GPU type
    assert written["set-resources"]["features"]["slurm_partition"] == "'gpu'"


def test_cluster_without_gpus(cluster):
    path = cluster(sinfo="short*|(null)\nlong|(null)\n", accounts="")
    assert main(["profile", "slurm"]) == 0
    written = yaml.safe_load(path.read_text())
    assert written["default-resources"]["slurm_partition"] == "'short'"
    assert "slurm_account" not in written["default-resources"]
    assert {"encode", "features", "train"} <= GPU_RULES
    for rule in GPU_RULES:
        res = written["set-resources"][rule]
        assert res["slurm_partition"] == "'short'" and not {"gpu", "gpu_model", "cpus_per_gpu"} & set(res), rule


def test_sinfo_parsing_and_choices():
    assert parse_gres("gpu:a100:4(S:0-1),shard:8") == {"a100": 4}
    assert parse_gres("gpu:2") == {"": 2}
    assert parse_gres("(null)") == {}
    parts = parse_sinfo("cpu*|gpu:a100:2\ngpu|gpu:a100:2\n")  # the CI node: both partitions see its GPUs
    site = resolve_site(Site(partitions=parts))
    assert (site.partition, site.gpu_partition, site.gpu_type) == ("cpu", "gpu", "a100")
    # several GPU types: any type, unless --gpu-type says
    mixed = Site(partitions=parse_sinfo("main*|(null)\ngpu|gpu:v100:4\ngpu|gpu:a100:8\n"))
    assert resolve_site(mixed).gpu_type is None
    assert resolve_site(mixed, gpu_type="a100").gpu_type == "a100"
    # a type the executor plugin would refuse (hyphen) is not written
    assert resolve_site(Site(partitions=parse_sinfo("p*|gpu:nvidia_a100-80gb:4\n"))).gpu_type is None


def test_template_edit_keeps_layout_and_falls_back_to_plain_yaml():
    text = "a: 1  # keep\nb:\n  c: x   # site\n  # d: y  # commented\ne: [1, 2]\n"
    edited = edit_yaml_text(text, {("b", "c"): "'z'", ("b", "d"): "'w'", ("b", "f"): 3}, {("a",)})
    assert yaml.safe_load(edited) == {"b": {"c": "'z'", "d": "'w'", "f": 3}, "e": [1, 2]}
    assert "# site" in edited and "# commented" in edited
    # a flow-style template the line editor cannot follow: same content, as plain YAML
    flow = "{executor: slurm, default-resources: {slurm_partition: cpu}, set-resources: {features: {gpu: 1}}}"
    values = resolve_site(Site(partitions=parse_sinfo("p*|(null)\ng|gpu:a100:1\n")))
    written = yaml.safe_load(profile_text(flow, values, "brainalign profile slurm", template_path()))
    assert written == {"executor": "slurm", "default-resources": {"slurm_partition": "'p'"},
                       "set-resources": {"features": {"gpu": 1, "slurm_partition": "'g'", "gpu_model": "'a100'"}}}
