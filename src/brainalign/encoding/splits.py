"""Train/test splits of stimuli for encoding models (ids are compared as strings).

* ``nsd-shared``: test = stimuli flagged ``shared`` in the trial table (NSD shared1000), train = the rest.
* ``repeated``: the same rule, for BOLD5000 whose ``shared`` column marks the 113 repeated images;
  additionally checks that the test stimuli are repeated.
* ``unseen-categories``: whole categories held out, given a stimulus → category table; with a fold index,
  fold ``i`` of the leave-k-categories-out design (:func:`category_folds`).
* ``ids``: explicit id lists (files are read with :func:`brainalign.stimuli.read_ids_file`).

Every builder returns disjoint id sets; stimuli not known to both the voxel store and the feature
cache are dropped by :func:`restrict`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

SPLITS = ("nsd-shared", "repeated", "unseen-categories", "ids")


@dataclass
class Split:
    """Disjoint train and test stimulus ids (strings) and how they were made."""

    name: str
    train: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.train = np.asarray(sorted(set(map(str, self.train))), dtype=object)
        self.test = np.asarray(sorted(set(map(str, self.test))), dtype=object)
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise InputError(self.name, f"{len(overlap)} stimuli are in both train and test, e.g. {sorted(overlap)[:3]}")


def split_shared(trials: pd.DataFrame, name: str = "nsd-shared") -> Split:
    """Test = stimuli with ``shared`` True on any trial; train = all other stimuli.

    Parameters
    ----------
    trials : DataFrame with columns ``stimulus``, ``shared`` (and ``repetition`` for ``repeated``)
    """
    for col in ("stimulus", "shared"):
        if col not in trials.columns:
            raise InputError("trials.parquet", f"missing column {col!r}")
    stim = trials["stimulus"].astype(str)
    shared = trials["shared"].astype(bool).groupby(stim).any()
    test = shared.index[shared.values]
    train = shared.index[~shared.values]
    info = {"n_train": int(len(train)), "n_test": int(len(test))}
    if name == "repeated":
        reps = stim[trials["shared"].astype(bool).values].value_counts()
        info["test_reps_min"] = int(reps.min()) if len(reps) else 0
        if len(reps) and (reps < 2).mean() > 0.5:
            raise InputError("trials.parquet", "split 'repeated': most 'shared' stimuli were shown only once")
    if len(test) == 0:
        raise InputError("trials.parquet", f"split {name!r}: no stimulus has shared == True")
    return Split(name, train, test, info)


def read_category_table(path) -> pd.Series:
    """Read a stimulus → category table (csv/tsv/parquet with columns ``stimulus`` and ``category``).

    Returns
    -------
    Series indexed by str(stimulus) with category strings.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "category table not found")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep=None, engine="python")
    if not {"stimulus", "category"} <= set(df.columns):
        raise InputError(path, f"needs columns 'stimulus' and 'category', has {list(df.columns)}")
    s = pd.Series(df["category"].astype(str).values, index=df["stimulus"].astype(str).values)
    if s.index.duplicated().any():
        raise InputError(path, "a stimulus is listed twice")
    return s


def category_folds(categories, k: int, seed: int = 0) -> list[tuple]:
    """Every set of ``k`` held-out categories (each fold of a leave-k-categories-out design), in a seeded order.

    Fold ``i`` is element ``i``: with all folds run, every category is held out equally often; with fewer, the
    first folds are not all built around the alphabetically first category.

    Parameters
    ----------
    categories : iterable of str (duplicates ignored)
    k : int, categories held out per fold (1 <= k < number of categories)

    Returns
    -------
    list of tuples of str, each sorted
    """
    cats = sorted(set(map(str, categories)))
    if not 1 <= k < len(cats):
        raise InputError("categories", f"cannot hold out {k} of {len(cats)} categories")
    combos = list(itertools.combinations(cats, k))
    order = np.random.default_rng(seed).permutation(len(combos))
    return [combos[i] for i in order]


def split_unseen_categories(stimuli, categories: pd.Series, test_categories=None, n_test_categories=None,
                            test_fraction: float = 0.2, seed: int = 0, fold=None) -> Split:
    """Hold out whole categories: every stimulus of a test category is in test, none in train.

    Parameters
    ----------
    stimuli : array of stimulus ids
    categories : Series str(stimulus) -> category (stimuli without a category are dropped)
    test_categories : list of str, optional
        Explicit held-out categories; otherwise ``n_test_categories`` (or ``test_fraction`` of the
        categories, at least 1) are drawn with ``seed``.
    fold : int, optional
        Hold out the categories of fold ``fold`` of :func:`category_folds` (``n_test_categories`` per fold,
        order seeded with ``seed``) instead of drawing them.
    """
    stimuli = np.asarray([str(s) for s in stimuli], dtype=object)
    cat = categories.reindex(stimuli)
    known = cat.notna().values
    cats = np.array(sorted(cat[known].unique()))
    if len(cats) < 2:
        raise InputError("categories", f"need at least 2 categories among the stimuli, found {len(cats)}")
    info = {}
    if fold is not None:
        if test_categories is not None:
            raise InputError("--category-fold", "give either the held-out categories or a fold, not both")
        folds = category_folds(cats, n_test_categories or max(1, int(round(test_fraction * len(cats)))), seed)
        if not 0 <= int(fold) < len(folds):
            raise InputError("--category-fold", f"fold {fold} does not exist: {len(folds)} folds of "
                                                f"{len(folds[0])} of {len(cats)} categories")
        test_categories = list(folds[int(fold)])
        info = {"fold": int(fold), "n_folds": len(folds)}
    if test_categories is None:
        k = n_test_categories or max(1, int(round(test_fraction * len(cats))))
        if not 1 <= k < len(cats):
            raise InputError("categories", f"cannot hold out {k} of {len(cats)} categories")
        test_categories = list(np.random.default_rng(seed).choice(cats, size=k, replace=False))
    test_categories = [str(c) for c in test_categories]
    missing = set(test_categories) - set(cats)
    if missing:
        raise InputError("categories", f"test categories not found among the stimuli: {sorted(missing)}")
    is_test = cat.isin(test_categories).values & known
    return Split("unseen-categories", stimuli[known & ~is_test], stimuli[is_test],
                 {"test_categories": sorted(test_categories), "n_unlabelled_dropped": int((~known).sum()), **info})


def split_ids(train_ids, test_ids) -> Split:
    """Explicit lists; they must be disjoint."""
    return Split("ids", list(train_ids), list(test_ids))


def restrict(split: Split, available) -> Split:
    """Keep only stimuli in ``available`` (e.g. present in both the store and the feature cache)."""
    avail = set(map(str, available))
    tr = [s for s in split.train if s in avail]
    te = [s for s in split.test if s in avail]
    info = dict(split.info, n_train_dropped=len(split.train) - len(tr), n_test_dropped=len(split.test) - len(te))
    if not tr or not te:
        raise InputError(split.name, f"empty after keeping stimuli with both responses and features "
                                     f"(train {len(tr)}, test {len(te)})")
    return Split(split.name, tr, te, info)
