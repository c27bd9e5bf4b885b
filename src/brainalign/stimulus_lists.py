"""Stimulus ID lists derived from voxel stores: which images to extract features for, and which of
them may be used to fit anything (PCA, encoders): never the test (shared / repeated) images."""

from __future__ import annotations

from pathlib import Path

from ._io import atomic_output
from .store import open_voxel_store


def stimulus_lists(store_paths):
    """Union of the stimuli of several stores, and the subset no store marks as shared.

    Parameters
    ----------
    store_paths : list of path-like
        Voxel stores (``*.zarr``) of one dataset.

    Returns
    -------
    all_ids : list
        Every stimulus presented to any subject, sorted.
    train_ids : list
        Those that are not ``shared`` (NSD shared images, BOLD5000 repeated images) in any store.
    """
    seen, shared = set(), set()
    for path in store_paths:
        trials = open_voxel_store(path).trials
        seen.update(trials["stimulus"].tolist())
        shared.update(trials.loc[trials["shared"].astype(bool), "stimulus"].tolist())
    all_ids = sorted(seen)
    return all_ids, [s for s in all_ids if s not in shared]


def write_stimulus_lists(store_paths, ids_out, train_ids_out) -> None:
    """Write :func:`stimulus_lists` as two text files, one ID per line."""
    all_ids, train_ids = stimulus_lists(store_paths)
    for ids, out in ((all_ids, ids_out), (train_ids, train_ids_out)):
        with atomic_output(out) as tmp:
            Path(tmp).write_text("".join(f"{i}\n" for i in ids))


def simulated_category_table(simulated_dir, out) -> None:
    """Stimulus -> category table (parquet: ``stimulus``, ``category``) for the simulated BOLD5000 images
    and the unseen images, from the simulator's ground truth (``docs/simulator.md``).

    Unseen-image IDs are their paths relative to the unseen-image folder, as the folder image set names them.
    """
    import pandas as pd

    truth = Path(simulated_dir) / "ground_truth"
    b5k = pd.read_parquet(truth / "bold5000_images.parquet", columns=["stimulus", "category"])
    unseen = pd.read_parquet(truth / "unseen_images.parquet", columns=["path", "category"])
    unseen = unseen.rename(columns={"path": "stimulus"})
    table = pd.concat([b5k, unseen], ignore_index=True).astype({"stimulus": str, "category": str})
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
