"""Shared fixtures.

``simulated_root``: the ground-truth simulator run once per test session (per xdist worker) at the
``tiny`` preset; see docs/simulator.md for the trees and the ``ground_truth/`` files. Tests that use it
may add ``pytestmark = pytest.mark.xdist_group("simulated_root")`` to share one worker's copy.
"""

from __future__ import annotations

import os

import pytest

SIMULATED = {"preset": "tiny", "seed": 7}


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
