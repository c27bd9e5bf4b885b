"""A real-data run of the project's workflow, done the way the README's "Running on real data" section says.

``real_data_run`` (session-scoped; ``tests/conftest.py`` makes it available to every test module) writes small
NSD, BOLD5000 and THINGS-EEG2 copies in their released layouts with this suite's own writers
(``fixtures_layouts``: a planted signal, not the simulator), a folder of unseen images and a category table as CSV,
then runs the command block of the README section in a temporary copy of the project (``project_copy``), with
the dataset paths put in place of the README's ``/data/...`` and, between ``init-config`` and ``check-config``,
the edits a lab would make for a first quick run (:data:`QUICK_RUN`). The whole DAG runs with
``simulate.enabled: false`` and ends with the report; tests then compare the outputs with what was planted.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from fixtures_layouts import (write_bold5000_dag_tree, write_category_csv, write_nsd_dag_tree,
                              write_things_eeg2_dag_tree, write_unseen_images)
from project_copy import ROOT, copy_project, default_config, env

README_SECTION = "## Running on real data"
#: the README's placeholder paths -> names of the trees written here
PLACEHOLDERS = {"/data/nsd": "nsd", "/data/bold5000": "bold5000", "/data/things-eeg2": "things_eeg2",
                "/data/bold5000-categories.csv": "bold5000-categories.csv", "/data/unseen-images": "unseen_images"}
#: edits for a first quick run on 2 cores (what a lab would shrink to see the pipeline through once; NeuroFusionNet,
#: the costliest training job, is left for later)
QUICK_RUN = {
    ("features", "models"): ["alexnet"],
    ("features", "batch_size"): 64,
    ("encoding", "alphas", "n"): 12,
    ("synthetic", "samples_per_class"): [10],
    ("synthetic", "category_folds"): 2,
    ("synthetic", "permutations"): 50,
    ("encoding", "comparison_bootstrap"): 100,
    ("training", "preset"): "tiny",
    ("training", "controls"): [],
    ("training", "neurofusion", "enabled"): False,
    ("rsa", "bootstrap"): 20,
    ("rsa", "permutations"): 500,
}
#: wall-clock limit of each README command
COMMAND_TIMEOUT = 3600


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The commands of the first ``bash`` block of the README's real-data section, continuation lines joined."""
    text = readme.read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start:end if end > 0 else None]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, f"no bash block in the README section {README_SECTION!r}"
    return [c.strip() for c in block.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def quick_run_edits(path: Path) -> dict:
    """Apply :data:`QUICK_RUN` to a config file (keys the file does not have are left out); return the config."""
    config = yaml.safe_load(path.read_text())
    for keys, value in QUICK_RUN.items():
        node = config
        for key in keys[:-1]:
            node = node.get(key, {})
        if keys[-1] in node:
            node[keys[-1]] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def write_data(base: Path) -> SimpleNamespace:
    """The dataset copies, the unseen images and the category table (CSV) under ``base``."""
    base.mkdir(parents=True, exist_ok=True)
    nsd = write_nsd_dag_tree(base / "nsd", n_shared=150)
    bold5000 = write_bold5000_dag_tree(base / "bold5000")  # more training images than PCA components
    things = write_things_eeg2_dag_tree(base / "things_eeg2")
    unseen = write_unseen_images(base / "unseen_images")
    table = write_category_csv(base / "bold5000-categories.csv", {**bold5000.categories, **unseen})
    return SimpleNamespace(base=base, nsd=nsd, bold5000=bold5000, things=things, unseen=unseen, table=table)


def run_readme(work: Path, data: SimpleNamespace, cores: int = 2) -> list[subprocess.CompletedProcess]:
    """Run the README's real-data commands in ``work``; asserts each succeeds."""
    done = []
    for command in readme_commands():
        for placeholder, name in PLACEHOLDERS.items():
            command = re.sub(re.escape(placeholder) + r"(?![\w.-])", str(data.base / name), command)
        argv = shlex.split(command)
        if argv[0] == "snakemake" and "--cores" in argv:
            argv[argv.index("--cores") + 1] = str(cores)
        r = subprocess.run(argv, cwd=work, env=env(work), capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert r.returncode == 0, f"{command}\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
        done.append(r)
        if argv[:2] == ["brainalign", "init-config"]:
            config_file = work / argv[argv.index("--out") + 1]
            data.config = quick_run_edits(config_file)
    return done


@pytest.fixture(scope="session")
def real_data_run(tmp_path_factory):
    """The README's real-data run, finished: ``work`` (the project copy), ``results``, ``config`` (as edited),
    ``outputs`` (each command's CompletedProcess) and the planted facts ``nsd``, ``bold5000``, ``things``,
    ``unseen`` (see ``fixtures_layouts``)."""
    base = tmp_path_factory.mktemp("real_data")
    data = write_data(base / "data")
    work = copy_project(base / "project", default_config())
    data.outputs = run_readme(work, data)
    data.work = work
    data.results = work / data.config["results"]
    return data
