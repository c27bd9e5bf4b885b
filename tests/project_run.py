"""One run of the project's workflow, shared by the workflow-level checks (``project_run``, session-scoped).

The project's Snakefile runs once, with the local profile, in a temporary copy of the repository
(``project_copy``), on the demo simulator with the config of :func:`project_config`: two NSD subjects, ReAlnet-fMRI
(``small`` preset) and its beta = 0 control trained on subject 1, NeuroFusionNet (``tiny``), one THINGS-EEG2
subject, BOLD5000's synthetic stage with two held-out category sets. Every rule of the DAG runs.

Its checks are ``tests/test_project_workflow.py`` (one file: one worker with ``--dist loadfile``); the read-only
ones come first, the rerun checks last (they edit the run and leave it finished). ``tests/conftest.py`` puts that
file and the real-data run's at the head of the queue, so the two whole-workflow runs start at once on the two
workers. The project's DAG through SLURM is ``tests/test_slurm.py``'s (its own, CI-sized run).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from project_copy import copy_project, default_config, snakemake

#: wall-clock limit of the shared run
RUN_TIMEOUT = 4500


def project_config() -> dict:
    """The embedded default config, sized for a CI machine (2 cores) while keeping every rule and every finding
    the alignment acceptance reads: both NSD subjects (within / across), the beta = 0 control, the default 1000
    RSA bootstrap draws (with 500, floc-places across went from yes, p 0.048, to inconclusive, p 0.072, and the
    acceptance's 3 of 6 ROIs was met only barely)."""
    config = default_config()
    assert config["simulate"]["preset"] == "demo" and config["training"]["preset"] == "small"
    config["datasets"]["nsd"]["subjects"] = [1, 2]
    config["datasets"]["things_eeg2"]["subjects"] = [1]
    config["features"]["models"] = ["alexnet"]
    config["training"].update(subjects=[1], controls=["beta0"])
    config["training"]["neurofusion"].update(preset="tiny", controls=[])
    config["synthetic"].update(samples_per_class=[10], category_folds=2, permutations=100)
    config["rsa"]["permutations"] = 200
    config["encoding"]["comparison_bootstrap"] = 300
    return config


@pytest.fixture(scope="session")
def project_run(tmp_path_factory):
    """The finished shared run: ``work`` (project copy), ``results``, ``config``."""
    config = project_config()
    work = copy_project(tmp_path_factory.mktemp("project") / "repo", config)
    snakemake(work, timeout=RUN_TIMEOUT)
    return SimpleNamespace(work=work, results=work / config["results"], config=config)
