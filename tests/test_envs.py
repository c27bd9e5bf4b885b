"""The per-rule conda environments must agree with the pinned requirements the venv installs."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirement_pins():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_env_files_exist():
    assert {p.stem for p in ENV_FILES} >= {"core", "torch", "analysis"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_requirements(env_file):
    pins = _requirement_pins()
    env = yaml.safe_load(env_file.read_text())
    pip_entries = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d][0]["pip"]
    seen = 0
    for entry in pip_entries:
        if entry.startswith("-e"):
            continue
        name, version = entry.split("==")
        assert name.lower() in pins, f"{env_file.name}: {name} is not pinned in requirements.txt"
        assert version == pins[name.lower()], f"{env_file.name}: {name}=={version} but requirements.txt pins {pins[name.lower()]}"
        seen += 1
    assert seen >= 10
    assert any(e.startswith("-e") for e in pip_entries), "env must install the brainalign package itself"


def test_pyproject_floors_admit_pins():
    """Every pinned version must satisfy the package's declared dependency ranges."""
    import tomllib

    from packaging.requirements import Requirement

    pins = _requirement_pins()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        req = Requirement(dep)
        assert req.name.lower() in pins, f"{req.name} is a dependency but not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name.lower()]), f"{req.name}=={pins[req.name.lower()]} violates {dep}"
