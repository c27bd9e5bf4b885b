"""Run manifests, `brainalign export` and `brainalign verify`.

A small real Snakemake run (rules named like the project's: ingest -> encode -> report, with a store whose
attrs carry `provenance.source_files` as the ingestion stage writes them) makes a results folder; the
manifest is written the way the pipeline's `manifest` rule does it (`brainalign manifest RESULTS --config-json`).
Expectations are written by hand from the files the test itself created (sha256 via hashlib, not via the code
under test). Code fingerprints: the import graph they are derived from, on a hand-written package.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from project_copy import indirect_modules

from brainalign.cli import main
from brainalign.provenance import code_fingerprint
from brainalign.provenance.code import PACKAGE_ROOT, command_files, module_closure
from brainalign.provenance.manifest import MANIFEST_NAME, read_manifest, verify

SNAKEMAKE = Path(sys.executable).parent / "snakemake"

SNAKEFILE = textwrap.dedent(
    r'''
    import json, os
    rule all:
        input: "results/report/summary.md"

    rule ingest_nsd:
        output: directory("results/stores/nsd/subj{subject}.zarr")
        run:
            os.makedirs(output[0])
            src = [f"data/nsd/nsddata_betas/subj{wildcards.subject}/betas_session01.nii.gz",
                   f"data/nsd/nsddata/subj{wildcards.subject}/nsdgeneral.nii.gz"]
            attrs = {"dataset": "nsd", "subject": wildcards.subject,
                     "provenance": {"source_files": [{"path": p, "size": os.path.getsize(p), "mtime": 0} for p in src]}}
            with open(f"{output[0]}/zarr.json", "w") as fh:
                json.dump({"zarr_format": 3, "node_type": "group", "attributes": attrs}, fh)
            with open(f"{output[0]}/betas.bin", "w") as fh:
                fh.write("betas of " + wildcards.subject)

    rule encode:
        input: "results/stores/nsd/subj{subject}.zarr"
        output: "results/encoding/nsd/subj{subject}/scores.tsv"
        shell: "echo 'voxel\tr2' > {output}"

    rule report:
        input: expand("results/encoding/nsd/subj{s}/scores.tsv", s=["01", "02"])
        output: "results/report/summary.md"
        shell: "cat {input} > {output}"
    '''
)

CONFIG = {"seed": 7, "results": "results",
          "datasets": {"nsd": {"root": "data/nsd", "subjects": [1, 2]}}}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_dataset(root: Path) -> None:
    for s in ("01", "02"):
        (root / "nsddata_betas" / f"subj{s}").mkdir(parents=True)
        (root / "nsddata_betas" / f"subj{s}" / "betas_session01.nii.gz").write_bytes(f"betas {s}".encode() * 10)
        (root / "nsddata" / f"subj{s}").mkdir(parents=True)
        (root / "nsddata" / f"subj{s}" / "nsdgeneral.nii.gz").write_bytes(f"mask {s}".encode())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    make_dataset(work / "data" / "nsd")
    (work / "Snakefile").write_text(SNAKEFILE)
    r = subprocess.run([str(SNAKEMAKE), "--cores", "1", "--quiet"], cwd=work, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (work / "results" / "report.html").write_text("<html>report</html>")
    cwd = os.getcwd()
    os.chdir(work)  # the manifest rule runs in the Snakemake working directory
    try:
        assert main(["manifest", "results", "--config-json", json.dumps(CONFIG)]) == 0
    finally:
        os.chdir(cwd)
    return work


def test_manifest_contents(run_dir):
    m = read_manifest(run_dir / "results")
    assert m["seed"] == 7 and m["config"] == CONFIG
    assert m["packages"]["snakemake"] and m["packages"]["python"]
    assert m["code_fingerprints"]["train"] == code_fingerprint("train")
    res = run_dir / "results"
    expected = {p.relative_to(res).as_posix() for p in res.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}
    assert set(m["outputs"]) == expected
    assert m["outputs"]["report/summary.md"]["sha256"] == sha(res / "report" / "summary.md")
    f = m["inputs"]["nsd"]["files"]["nsddata_betas/subj02/betas_session01.nii.gz"]
    assert f["sha256"] == sha(run_dir / "data/nsd/nsddata_betas/subj02/betas_session01.nii.gz")
    assert f["used_by"] == ["stores/nsd/subj02.zarr"]
    # Snakemake's job graph, relative to the results folder
    assert m["steps"]["encoding/nsd/subj01/scores.tsv"] == {"rule": "encode", "inputs": ["stores/nsd/subj01.zarr"]}
    assert m["steps"]["stores/nsd/subj01.zarr"]["rule"] == "ingest_nsd"


def test_export_verifies_elsewhere_and_tamper_is_named(run_dir, tmp_path, capsys):
    archive = tmp_path / "sender" / "run.tar.gz"
    archive.parent.mkdir()
    assert main(["export", str(run_dir / "results"), "--out", str(archive)]) == 0
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"results/manifest.json", "results/report.html", "results/report/summary.md"} <= names

    receiver = tmp_path / "receiver"
    receiver.mkdir()
    shutil.copy(archive, receiver / "run.tar.gz")
    capsys.readouterr()
    assert main(["verify", str(receiver / "run.tar.gz")]) == 0
    assert "OK:" in capsys.readouterr().out

    with tarfile.open(receiver / "run.tar.gz") as tar:
        tar.extractall(receiver / "unpacked", filter="data")
    folder = receiver / "unpacked" / "results"
    assert main(["verify", str(folder)]) == 0
    target = folder / "encoding" / "nsd" / "subj02" / "scores.tsv"
    target.write_text(target.read_text().replace("r2", "r3"))
    (folder / "report.html").unlink()
    capsys.readouterr()
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "MODIFIED encoding/nsd/subj02/scores.tsv" in out
    assert "MISSING  report.html" in out
    assert "FAILED" in out


def test_verify_tells_what_reruns_on_receiver_data(run_dir, tmp_path, capsys):
    data = tmp_path / "receiver_data"
    shutil.copytree(run_dir / "data", data)
    rep = verify(run_dir / "results", {"nsd": str(data / "nsd")})
    assert rep.ok and rep.inputs_checked == 4 and rep.inputs_changed == [] and rep.rerun_entries == []

    # the receiver's subject-02 betas differ: its ingestion, its encoding and the report rerun; subject 01 does not
    (data / "nsd/nsddata_betas/subj02/betas_session01.nii.gz").write_bytes(b"other")
    rep = verify(run_dir / "results", {"nsd": str(data / "nsd")})
    assert rep.ok  # the results themselves are intact
    assert rep.inputs_changed == ["nsd:nsddata_betas/subj02/betas_session01.nii.gz (differs)"]
    assert rep.rerun_entries == ["encoding/nsd/subj02/scores.tsv", "report/summary.md", "stores/nsd/subj02.zarr"]
    assert rep.rerun_rules == ["encode", "ingest_nsd", "report"]

    capsys.readouterr()
    assert main(["verify", str(run_dir / "results"), "--data-root", str(data)]) == 0
    out = capsys.readouterr().out
    assert "would rerun on this data: encoding/nsd/subj02/scores.tsv, report/summary.md, stores/nsd/subj02.zarr" in out


def test_verify_rejects_folder_without_manifest(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["verify", str(tmp_path / "x")]) == 2
    assert "no run manifest" in capsys.readouterr().err


def test_resumable_training_state_is_not_a_result(tmp_path):
    from brainalign.provenance.manifest import list_files

    run = tmp_path / "training" / "realnet" / "subj01" / "aligned"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"optimizer state")
    (run / "backbone.pt").write_bytes(b"weights")
    assert [p.as_posix() for p in list_files(tmp_path)] == ["training/realnet/subj01/aligned/backbone.pt"]


def test_manifest_without_config_refreshes_only_checksums(run_dir, tmp_path, capsys):
    folder = tmp_path / "results"
    shutil.copytree(run_dir / "results", folder)
    before = read_manifest(folder)
    (folder / "report" / "summary.md").write_text("edited\n")
    assert main(["manifest", str(folder)]) == 0
    after = read_manifest(folder)
    assert after["config"] == CONFIG and after["steps"] == before["steps"] and after["created"] == before["created"]
    assert after["outputs"]["report/summary.md"]["sha256"] == hashlib.sha256(b"edited\n").hexdigest()
    assert main(["manifest", str(folder), "--config-json", "[1, 2]"]) == 2
    assert "--config-json" in capsys.readouterr().err


# --- code fingerprints: the package's own import graph ---

PACKAGE = {
    "__init__.py": "",
    "errors.py": "",
    "stage_a/__init__.py": "",
    "stage_a/cli.py": "from ..errors import Bad\n\ndef run(args):\n    from .pipeline import go\n    return go()\n",
    "stage_a/pipeline.py": "from ..helpers import helper\n",
    "helpers/__init__.py": "from .deep import helper\n",  # a re-export
    "helpers/deep.py": "def helper():\n    import pkg.util.leaf as leaf\n    return leaf\n",
    "util/__init__.py": "",
    "util/leaf.py": "import numpy\n",
    "util/unused.py": "",
    "stage_b/__init__.py": "",
    "stage_b/cli.py": "from pkg import util\nfrom .. import errors\n",
}


def _package(root):
    for rel, text in PACKAGE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_import_graph_follows_lazy_relative_and_reexported_imports(tmp_path):
    root = _package(tmp_path / "pkg")
    # pipeline (lazy, inside run) -> helpers (re-export in __init__) -> deep -> util.leaf (absolute, inside a
    # function); parent packages are imported with their children; numpy is not the package's
    assert module_closure("pkg.stage_a.cli", root) == sorted([
        "pkg", "pkg.errors", "pkg.stage_a", "pkg.stage_a.cli", "pkg.stage_a.pipeline", "pkg.helpers",
        "pkg.helpers.deep", "pkg.util", "pkg.util.leaf"])
    # `from pkg import util` imports the package util (not its modules); `from .. import errors` the module
    assert module_closure("pkg.stage_b.cli", root) == ["pkg", "pkg.errors", "pkg.stage_b", "pkg.stage_b.cli",
                                                       "pkg.util"]


def test_fingerprint_follows_a_module_imported_only_indirectly(tmp_path):
    """In a copy of the package: editing a module that `brainalign encode` reaches only through other modules
    changes encode's fingerprint, and not that of the stages before it."""
    root = tmp_path / "brainalign"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    encode = {p.relative_to(root).as_posix() for p in command_files("encode", root)}
    # encoding/pipeline.py opens feature caches through the features package (the hand-written lists missed it)
    assert {"encoding/cli.py", "encoding/pipeline.py", "features/cache.py", "store.py"} <= encode
    assert not any(p.startswith(("rsa/", "training/", "report/", "simulate/")) for p in encode)
    upstream = ("simulate", "ingest", "stimulus-lists", "features", "train")
    indirect = indirect_modules(root, "encode", ("brainalign.encoding.cli", "brainalign.encoding.pipeline"), upstream)
    assert indirect, "no module reaches encode only indirectly; pick another stage for this test"
    before = {c: code_fingerprint(c, root) for c in ("encode", *upstream)}
    with open(root / indirect[0], "a") as fh:
        fh.write("\n# an edit\n")
    after = {c: code_fingerprint(c, root) for c in before}
    assert after["encode"] != before["encode"]
    assert all(after[c] == before[c] for c in upstream)


# --- provenance that cannot reassure falsely (issue #15) ---

@pytest.fixture()
def eeg_run(tmp_path, monkeypatch):
    """A THINGS-EEG2 store ingested the way the workflow does it: from the run folder, with a relative root."""
    from brainalign.ingest import ingest_things_eeg2
    from fixtures_layouts import write_things_eeg2_tree

    work = tmp_path / "run"
    write_things_eeg2_tree(work / "data" / "eeg", subject=1)
    monkeypatch.chdir(work)
    ingest_things_eeg2("data/eeg", 1, "results/stores/things_eeg2/sub-01.zarr")
    monkeypatch.chdir(tmp_path)
    config = {"seed": 1, "results": "results", "datasets": {"things_eeg2": {"root": "data/eeg", "subjects": [1]}}}
    return work, config


EEG_FILES = ("eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_training.npy",
             "eeg_dataset/preprocessed_data/sub-01/preprocessed_eeg_test.npy", "image_set/image_metadata.npy")


def test_inputs_are_recorded_from_any_working_directory(eeg_run, tmp_path, monkeypatch, capsys):
    from brainalign.provenance import build_manifest

    work, config = eeg_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # export from another folder: the config's relative roots mean nothing here
    m = build_manifest(work / "results", config, workdir=".")
    files = m["inputs"]["things_eeg2"]["files"]
    assert m["inputs"]["things_eeg2"]["root"] == str((work / "data" / "eeg").resolve())
    assert set(files) == set(EEG_FILES) and m["inputs_not_found"] == []
    for rel in EEG_FILES:
        assert files[rel]["sha256"] == sha(work / "data" / "eeg" / rel)
        assert files[rel]["used_by"] == ["stores/things_eeg2/sub-01.zarr"]
    # so verify on a receiver's changed copy names what reruns
    receiver = tmp_path / "receiver"
    shutil.copytree(work / "data" / "eeg", receiver)
    assert main(["export", str(work / "results"), "--out", str(tmp_path / "a.tar.gz"),
                 "--configfile", str(_config_file(tmp_path, config))]) == 0
    (receiver / EEG_FILES[1]).write_bytes(b"changed")
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "a.tar.gz"), "--data-root", f"things_eeg2={receiver}"]) == 0
    out = capsys.readouterr().out
    assert "inputs: 3 recorded source files checked" in out
    assert f"things_eeg2:{EEG_FILES[1]} (differs)" in out
    assert "would rerun on this data: stores/things_eeg2/sub-01.zarr" in out


def _config_file(tmp_path, config) -> Path:
    """A complete pipeline config (the project's) with the test's datasets: export validates it."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    full = yaml.safe_load((root / "config.yaml").read_text())
    full["simulate"]["enabled"] = False
    full["datasets"] = {"nsd": {"root": str(tmp_path), "subjects": [1]},
                        "things_eeg2": {"root": str(tmp_path), "subjects": [1]}}
    full["training"].update(subjects=[1], neurofusion={"enabled": False})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(full))
    return path


def test_missing_inputs_are_named_and_never_match(eeg_run, tmp_path, caplog, capsys):
    import logging

    from brainalign.provenance import build_manifest

    work, config = eeg_run
    (work / "data" / "eeg" / EEG_FILES[2]).unlink()
    with caplog.at_level(logging.WARNING):
        m = build_manifest(work / "results", config, workdir=work)
    gone = str((work / "data" / "eeg" / EEG_FILES[2]).resolve())
    assert m["inputs_not_found"] == [gone] and f"{gone}: recorded as an input" in caplog.text
    assert set(m["inputs"]["things_eeg2"]["files"]) == set(EEG_FILES[:2])

    # a manifest that records no source file: "--data-root" cannot confirm anything -> not "match", exit 1
    (work / "results" / "manifest.json").write_text(json.dumps(dict(m, inputs={"things_eeg2": {"root": None,
                                                                                              "files": {}}})))
    from brainalign.provenance.manifest import checksum_tree

    data = json.loads((work / "results" / "manifest.json").read_text())
    data["outputs"] = checksum_tree(work / "results")
    (work / "results" / "manifest.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["verify", str(work / "results"), "--data-root", f"things_eeg2={work / 'data' / 'eeg'}"]) == 1
    out = capsys.readouterr().out
    assert "OK:" in out and "inputs: 0 recorded source files checked" in out
    assert "things_eeg2: NOT CHECKED" in out and "inputs NOT VERIFIED" in out and "inputs match" not in out


def test_truncated_archive_is_a_user_error_not_a_difference(run_dir, tmp_path, capsys):
    archive = tmp_path / "run.tar.gz"
    assert main(["export", str(run_dir / "results"), "--out", str(archive)]) == 0
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["verify", str(cut)]) == 2  # not 1 ("files differ")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(cut) in err[0] and "truncated or corrupt archive" in err[0]
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 10)
    assert main(["verify", str(garbage)]) == 2
    assert str(garbage) in capsys.readouterr().err


def test_internal_errors_are_exit_3_with_one_summary_line(monkeypatch, capsys):
    import brainalign.provenance.verify_cli as verify_cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(verify_cli, "run", broken)
    assert main(["verify", "x"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Traceback") and err[-1] == (
        "brainalign verify: internal error: ZeroDivisionError: a bug (a bug in brainalign; please report it with the "
        "traceback above)")
