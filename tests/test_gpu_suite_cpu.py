"""The GPU kit (benchmarks/gpu_suite.py) in its CPU mode, so that it cannot rot between GPU loans: every part
runs and reports, the correctness checks of tests/gpu pass on the CPU, and the budget machinery stops a part
that overruns and keeps what it had measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_suite  # noqa: E402  (benchmarks/ is not a package)


@pytest.mark.slow
def test_cpu_mode_runs_every_part_and_the_checks_pass(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--tiny", "--out", str(out),
           "--scratch", str(tmp_path / "scratch")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    results = json.loads((out / gpu_suite.RESULTS_JSON).read_text())
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert results["mode"] == "tiny" and results["device"] == "cpu"
    assert list(results["parts"]) == list(gpu_suite.PARTS)
    for name, part in results["parts"].items():
        assert part["status"] == "ok", f"{name}: {part}"
        assert 0 < part["seconds"] <= part["budget_s"] and part["measurements"], name
    checks = results["parts"]["correctness"]["measurements"]["tests"]
    outcomes = {t["test"].split("::")[-1]: t["outcome"] for t in checks}
    assert {t["test"].split("::")[0] for t in checks} == {
        f"tests/gpu/{f.name}" for f in (REPO / "tests" / "gpu").glob("test_gpu_*.py")}
    assert set(outcomes.values()) <= {"passed", "xfailed"}, outcomes
    assert outcomes["test_exact_resume_after_kill"] == "passed" and outcomes["test_torchrun_realnet"] == "passed"
    goals = [g for part in results["parts"].values() for g in part["goals"].values()]
    assert len(goals) >= 8 and all(g["met"] is None and g["value"] is not None for g in goals)  # not judged on CPU
    ridge = results["parts"]["ridge"]["measurements"]
    assert ridge["full_size"]["himalaya_ridge"]["alpha_equal_to_ours"] >= 0.95
    assert {"cornet_s_classification", "realnet_fmri", "neurofusionnet"} <= set(
        results["parts"]["training"]["measurements"]["steps"])
    markdown = (out / gpu_suite.RESULTS_MD).read_text()
    assert "| correctness | ok |" in markdown and "## Goals" in markdown
    assert (out / gpu_suite.LOG_FILE).stat().st_size > 0
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back from $OUT


def test_a_part_past_its_budget_is_stopped_and_reported(tmp_path):
    env, _ = gpu_suite.prepare_environment(tmp_path / "site", tmp_path / "no_wheels", tmp_path, lambda text: None)
    t0 = time.monotonic()
    # importing torch alone takes longer than this budget
    record = gpu_suite.launch_part("environment", "cpu", True, 0.3, env, tmp_path, lambda text: None)
    assert time.monotonic() - t0 < 20
    assert record["status"] == "timeout" and record["budget_s"] == 0.3
    assert any("stopped after its budget" in n for n in record["notes"])


def test_part_records_survive_and_cut_steps_mark_a_timeout(tmp_path):
    path = tmp_path / "part.json"
    rec = gpu_suite.PartRecorder(path, deadline=time.time() + 3600, tiny=False)
    rec.record("images_per_s", 12.5)
    rec.goal("speed", "ours >= 3x", 3, 4.2, True)
    on_disk = json.loads(path.read_text())  # written at once: a killed part keeps it
    assert on_disk["measurements"] == {"images_per_s": 12.5} and on_disk["status"] == "running"
    assert on_disk["goals"]["speed"] == {"goal": "ours >= 3x", "target": 3, "value": 4.2, "met": True}
    assert rec.allows("a short step", 10) and not rec.allows("a step longer than the budget", 1e6)
    assert json.loads(path.read_text())["cut"] == ["a step longer than the budget"]
    tiny = gpu_suite.PartRecorder(tmp_path / "tiny.json", deadline=None, tiny=True)
    tiny.goal("speed", "ours >= 3x", 3, 1.0, False)
    assert tiny.data["goals"]["speed"]["met"] is None  # the CPU mode judges no goal


def test_a_part_without_its_modules_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_suite.REQUIRES, "rsa", ("torch", "no_such_module_anywhere"))
    assert gpu_suite.run_part("rsa", "cpu", True, tmp_path / "rsa.json", None, tmp_path) == 0
    record = json.loads((tmp_path / "rsa.json").read_text())
    assert record["status"] == "skipped" and "no_such_module_anywhere" in record["reason"]


def test_no_cuda_without_tiny_stops_with_an_error():
    record = {"status": "ok", "measurements": {"cuda_available": False}}
    assert gpu_suite._choose_device("auto", False, record, lambda text: None) == "none"
    assert record["status"] == "failed"
    assert gpu_suite._choose_device("auto", True, {"status": "ok", "measurements": {}}, lambda t: None) == "cpu"
    assert gpu_suite._choose_device("auto", False, {"status": "ok", "measurements": {"cuda_available": True}},
                                    lambda t: None) == "cuda"


def _write_wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel providing the module ``name``."""
    import base64
    import hashlib
    import zipfile

    files = {f"{name}/__init__.py": "VALUE = 42\n",
             f"{name}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
             f"{name}-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def digest(text):
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    record = [f"{path},sha256={digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{name}-0.1.dist-info/RECORD"] = "\n".join(record + [f"{name}-0.1.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def test_missing_modules_are_installed_from_the_carried_wheels(tmp_path, monkeypatch):
    name = "gpu_kit_probe_module"
    _write_wheel(tmp_path / "wheels", name)
    monkeypatch.setitem(gpu_suite.REQUIRES, "environment", ("json", name))
    env, setup = gpu_suite.prepare_environment(tmp_path / "site", tmp_path / "wheels", tmp_path, lambda text: None)
    assert setup["missing_before"] == [name] and setup["missing_after"] == []
    assert (tmp_path / "site" / name / "__init__.py").exists()
    assert str(tmp_path / "site") in env["PYTHONPATH"].split(os.pathsep)
    probe = subprocess.run([sys.executable, "-c", f"import {name}; print({name}.VALUE)"], env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "42"
