"""Run the project's own Snakefile in a temporary copy of the repository (used by the workflow-level tests).

The copy has its own package source (first on ``PYTHONPATH``), so a test may edit a stage's code without
touching the checkout, and its own ``config.yaml``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"
LOCAL_PROFILE = ROOT / "workflow" / "profiles" / "local"


def copy_project(work: Path, config: dict) -> Path:
    """Snakefile, workflow/, envs/ and src/brainalign/ copied into ``work`` (created if missing), with ``config``
    as config.yaml."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", work)
    for d in ("workflow", "envs"):
        shutil.copytree(ROOT / d, work / d)
    shutil.copytree(ROOT / "src" / "brainalign", work / "src" / "brainalign",
                    ignore=shutil.ignore_patterns("__pycache__"))
    write_config(work, config)
    return work


def default_config() -> dict:
    """The embedded default config.yaml (a fresh copy to edit)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def read_config(work: Path) -> dict:
    return yaml.safe_load((work / "config.yaml").read_text())


def write_config(work: Path, config: dict) -> None:
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def env(work: Path) -> dict:
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(work / "src"),
                BRAINALIGN_PROGRESS="0")


def snakemake(work: Path, *args: str, profile: bool = True, check: bool = True, timeout: int = 1200):
    """``snakemake`` in ``work`` with the local profile (or ``--cores 1``); asserts success unless ``check=False``."""
    cmd = [str(SNAKEMAKE), *(["--profile", str(LOCAL_PROFILE)] if profile else ["--cores", "1"]), *args]
    r = subprocess.run(cmd, cwd=work, env=env(work), capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def indirect_modules(package: Path, command: str, importers: tuple[str, ...], other_commands: tuple[str, ...]) -> list[str]:
    """Files (relative to ``package``) that ``brainalign <command>`` imports, but neither through a direct import of
    one of the ``importers`` modules nor at all in any of ``other_commands``: modules a stage reaches only
    through other modules, which a hand-written list of its code would be likely to miss."""
    from brainalign.provenance.code import command_files, direct_imports, module_file

    def rel(paths):
        return {p.relative_to(package).as_posix() for p in paths}

    reached = rel(command_files(command, package))
    direct = rel(module_file(m, package) for importer in importers for m in direct_imports(importer, package))
    others = set().union(*(rel(command_files(c, package)) for c in other_commands))
    importers_files = rel(module_file(m, package) for m in importers)
    return sorted(reached - direct - others - importers_files)
