"""Shared fixtures.

``simulated_root``: the ground-truth simulator run once per test session (per xdist worker) at the
``tiny`` preset; see docs/simulator.md for the trees and the ``ground_truth/`` files.

``project_run``: the project's workflow run once on the demo simulator, through SLURM where a test cluster can be
started (``tests/project_run.py``); its checks are ``tests/test_project_workflow.py``.

``real_data_run``: hand-built NSD / BOLD5000 / THINGS-EEG2 copies run through the whole workflow the way the
README's real-data section says (``tests/real_data_run.py``); its checks are ``tests/test_real_data_workflow.py``.

The suite runs with ``pytest -n 2 --dist loadfile --no-loadscope-reorder`` (``make test``): each file on one worker
(a module- or session-scoped run is made once), files in collection order. (Not ``loadgroup``: with pytest 9 its
``xdist_group`` marks are silently ignored, and a shared run was made once per worker.)
"""

from __future__ import annotations

import os

# Two xdist workers share the machine's cores: one compute thread per process (and per workflow job a test starts)
# keeps torch and BLAS from oversubscribing them (training ran 4x slower when two 2-thread processes competed).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from project_run import project_run  # noqa: F401,E402  (session-scoped: the shared run of the project's workflow)
from real_data_run import real_data_run  # noqa: F401,E402  (session-scoped: the README's real-data run)

SIMULATED = {"preset": "tiny", "seed": 7}
#: test files that run a whole workflow: queued first, so that they start at once on the two workers
WORKFLOW_FILES = ("test_project_workflow.py", "test_real_data_workflow.py")


def pytest_collection_modifyitems(config, items):
    """Move the tests of :data:`WORKFLOW_FILES` to the front (in that order, file order kept otherwise)."""
    def rank(item):
        name = item.path.name
        return WORKFLOW_FILES.index(name) if name in WORKFLOW_FILES else len(WORKFLOW_FILES)

    items.sort(key=rank)  # stable


@pytest.fixture(scope="session")
def simulated_config():
    """Preset and seed used for ``simulated_root`` (dict with keys ``preset``, ``seed``)."""
    return dict(SIMULATED)


@pytest.fixture(scope="session")
def simulated_root(tmp_path_factory):
    """Path of a simulated tree: nsd/, bold5000/, things_eeg2/, unseen_images/, ground_truth/ (read-only use)."""
    from brainalign.simulate import simulate

    os.environ.setdefault("BRAINALIGN_PROGRESS", "0")
    root = tmp_path_factory.mktemp("sim") / "tree"
    simulate(root, **SIMULATED)
    return root
