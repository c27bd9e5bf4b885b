"""Stimulus ID lists of a dataset: which images to extract features for, and which of them may be used to
fit anything (PCA, encoders): never the test (NSD shared / BOLD5000 repeated) images.

The lists come from the dataset's own design files, not from the ingested subjects, so that adding a subject
leaves the feature caches (and every job that reads them) untouched.
"""

from __future__ import annotations

from pathlib import Path

from ._io import atomic_output

DATASETS = ("nsd", "bold5000")


def stimulus_lists(dataset: str, root):
    """All stimuli of a dataset's design, and the subset that is not a test image.

    Parameters
    ----------
    dataset : {"nsd", "bold5000"}
    root : path-like
        Dataset root in its real layout (``docs/datasets.md`` §1.5 for NSD, §2.3 for BOLD5000).

    Returns
    -------
    all_ids : list
        NSD: 0-based nsdIds (int) of every subject's ``subjectim`` row; BOLD5000: image file names of every
        ``CSI{N}_imgnames.txt``. Sorted.
    train_ids : list
        Those that are not shared (NSD ``sharedix``) or repeated (BOLD5000 repeated-113 list).
    """
    if dataset == "nsd":
        from .ingest.nsd import design_stimuli

        all_ids, test_ids = (a.tolist() for a in design_stimuli(root))
    elif dataset == "bold5000":
        from .ingest.bold5000 import design_stimuli

        all_ids, test_ids = design_stimuli(root)
    else:
        raise ValueError(f"no stimulus lists for dataset {dataset!r} (one of {DATASETS})")
    test = set(test_ids)
    return all_ids, [s for s in all_ids if s not in test]


def write_stimulus_lists(dataset: str, root, ids_out, train_ids_out) -> None:
    """Write :func:`stimulus_lists` as two text files, one ID per line."""
    all_ids, train_ids = stimulus_lists(dataset, root)
    for ids, out in ((all_ids, ids_out), (train_ids, train_ids_out)):
        with atomic_output(out) as tmp:
            Path(tmp).write_text("".join(f"{i}\n" for i in ids))
