"""Leave-k-categories-out folds of the unseen-categories split (the unit of the claim-2 test on unseen categories)."""

from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from brainalign.encoding.splits import category_folds, split_unseen_categories
from brainalign.errors import InputError
from brainalign.layout import category_fold, category_fold_split

CATS = ["bodies", "faces", "objects", "places", "words"]


def test_folds_are_every_pair_once_in_a_seeded_order():
    folds = category_folds(CATS, 2, seed=0)
    assert sorted(folds) == list(combinations(CATS, 2)) and len(folds) == 10
    assert Counter(c for f in folds for c in f) == {c: 4 for c in CATS}  # each category held out equally often
    assert category_folds(CATS, 2, seed=0) == folds and category_folds(CATS, 2, seed=1) != folds
    # the sorted order would build the first four folds around "bodies"; the seeded one does not
    assert not all("bodies" in f for f in folds[:4])


def test_split_of_a_fold_holds_out_exactly_its_categories():
    stimuli = [f"img{i}" for i in range(50)]
    table = pd.Series(np.array(CATS)[np.arange(50) % 5], index=stimuli)
    folds = category_folds(CATS, 2, seed=3)
    for k in (0, 7):
        sp = split_unseen_categories(stimuli, table, n_test_categories=2, seed=3, fold=k)
        assert sp.info["test_categories"] == sorted(folds[k]) and sp.info["fold"] == k and sp.info["n_folds"] == 10
        assert set(table[list(sp.test)]) == set(folds[k]) and not set(table[list(sp.train)]) & set(folds[k])
    with pytest.raises(InputError, match="fold 10 does not exist"):
        split_unseen_categories(stimuli, table, n_test_categories=2, fold=10)
    with pytest.raises(InputError, match="either"):
        split_unseen_categories(stimuli, table, test_categories=["faces"], fold=0)


def test_fold_split_names():
    assert category_fold_split(4) == "unseen-categories-fold4" and category_fold("unseen-categories-fold4") == 4
    assert category_fold("unseen-categories") is None and category_fold("repeated") is None
