"""Scores, noise ceilings (closed forms, planted reliability) and split builders."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score as sk_r2

from brainalign.encoding import scoring
from brainalign.encoding.splits import restrict, split_ids, split_shared, split_unseen_categories
from brainalign.errors import InputError


def test_pearson_and_r2_match_references():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    b[:, 1] += a[:, 1]
    np.testing.assert_allclose(scoring.pearson_r(a, b), [stats.pearsonr(a[:, k], b[:, k])[0] for k in range(4)])
    np.testing.assert_allclose(scoring.r2_score(a, b), sk_r2(a, b, multioutput="raw_values"))


def test_nc_formula_closed_form():
    # ncsnr = 1, 3 reps: 1 / (1 + 1/3) = 0.75 ; ncsnr = 0 -> 0 ; ncsnr = 2, 1 rep: 4/5
    np.testing.assert_allclose(scoring.noise_ceiling_from_ncsnr([1.0, 0.0], 3), [0.75, 0.0])
    np.testing.assert_allclose(scoring.noise_ceiling_from_ncsnr([2.0], [1, 1]), [0.8])
    # Algonauts mixed repetitions: A = (n3/3 + n2/2 + n1/1) / (n3 + n2 + n1) with n3=5, n2=2, n1=1
    A = (5 / 3 + 2 / 2 + 1 / 1) / 8
    nc = scoring.noise_ceiling_from_ncsnr([0.5, 1.5], [3] * 5 + [2] * 2 + [1])
    np.testing.assert_allclose(nc, [0.25 / (0.25 + A), 2.25 / (2.25 + A)])


def test_nc_equals_r2_of_perfect_model_on_simulated_reps():
    # signal sd 1, noise sd sigma: ncsnr = 1/sigma; a noise-free model's r² with the n-rep mean -> NC
    rng = np.random.default_rng(1)
    m, n, sigma = 20000, 3, np.array([0.5, 1.0, 2.0])
    signal = rng.normal(size=(m, 3))
    mean_n = signal + rng.normal(size=(m, 3)) * sigma / np.sqrt(n)
    r2 = scoring.pearson_r(signal, mean_n) ** 2
    np.testing.assert_allclose(r2, scoring.noise_ceiling_from_ncsnr(1 / sigma, n), atol=0.01)


def test_split_half_spearman_brown_on_planted_reliability():
    rng = np.random.default_rng(2)
    m, R, sigma = 4000, 4, np.array([0.5, 1.0, 2.0, 100.0])
    signal = rng.normal(size=(m, 1, 4))
    reps = signal + rng.normal(size=(m, R, 4)) * sigma
    reps[:50, 3:] = np.nan  # a few images with only 3 reps
    nc = scoring.split_half_noise_ceiling(reps)
    expected = 1 / (1 + sigma**2 / R)
    np.testing.assert_allclose(nc, expected, atol=0.03)


def test_split_half_reliability_from_trials():
    rng = np.random.default_rng(5)
    n_img = 50
    x = rng.normal(size=(n_img, 3))
    y = x + rng.normal(size=(n_img, 3))
    betas = np.concatenate([x, y])  # rep 0 of every image, then rep 1
    stim = np.concatenate([np.arange(n_img), np.arange(n_img)])
    r = np.array([np.corrcoef(x[:, v], y[:, v])[0, 1] for v in range(3)])
    np.testing.assert_allclose(scoring.split_half_reliability(betas, stim, correct=False), r, rtol=1e-10)
    np.testing.assert_allclose(scoring.split_half_reliability(betas, stim), 2 * r / (1 + r), rtol=1e-10)
    np.testing.assert_allclose(scoring.spearman_brown(0.5, 3), 1.5 / 2.0)
    # identical repetitions -> reliability 1 for any random split
    same = np.concatenate([x, x, x, x])
    stim4 = np.tile(np.arange(n_img), 4)
    np.testing.assert_allclose(scoring.split_half_reliability(same, stim4, n_splits=5), 1.0)


def test_normalized_score_caps_and_clips():
    s = scoring.normalized_score([0.5, -0.3, 0.9, 0.2, np.nan], [0.5, 0.5, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(s[:4], [0.5, 0.0, 1.0, 1.0])
    assert np.isnan(s[4])


def test_stack_repetitions_order_and_padding():
    stim = np.array([3, 1, 3, 2, 3, 1])
    vals = np.arange(6, dtype=float)[:, None]
    ids, reps, n = scoring.stack_repetitions(stim, vals, order=["3", "1"])
    assert list(ids) == ["3", "1"] and list(n) == [3, 2]
    np.testing.assert_array_equal(reps[0, :, 0], [0, 2, 4])
    np.testing.assert_array_equal(reps[1, :2, 0], [1, 5])
    assert np.isnan(reps[1, 2, 0])


def trials_table():
    return pd.DataFrame({
        "session": 1, "trial": np.arange(1, 11),
        "stimulus": [5, 6, 7, 5, 8, 9, 7, 10, 5, 7], "repetition": [0, 0, 0, 1, 0, 0, 1, 0, 2, 2],
        "shared": [True, False, True, True, False, False, True, False, True, True],
    })


def test_shared_split_has_no_leakage():
    sp = split_shared(trials_table())
    assert set(sp.test) == {"5", "7"} and set(sp.train) == {"6", "8", "9", "10"}
    sp2 = split_shared(trials_table(), "repeated")
    assert sp2.info["test_reps_min"] == 3
    # a stimulus flagged shared on any trial is test only
    t = trials_table()
    t.loc[0, "shared"] = False
    assert "5" in split_shared(t).test and "5" not in split_shared(t).train


def test_repeated_split_rejects_unrepeated_test():
    t = trials_table()
    t["shared"] = [False, True, False, False, True, True, False, True, False, False]
    with pytest.raises(InputError):
        split_shared(t, "repeated")


def test_unseen_categories_hold_out_whole_categories():
    stim = [f"s{i}" for i in range(40)]
    cat = pd.Series([f"c{i % 5}" for i in range(39)], index=stim[:39])  # s39 unlabelled
    sp = split_unseen_categories(stim, cat, test_categories=["c1", "c3"])
    assert {cat[s] for s in sp.test} == {"c1", "c3"}
    assert not {cat[s] for s in sp.train} & {"c1", "c3"}
    assert "s39" not in set(sp.train) | set(sp.test)
    drawn = split_unseen_categories(stim, cat, n_test_categories=2, seed=3)
    assert len({cat[s] for s in drawn.test}) == 2 and not set(drawn.train) & set(drawn.test)
    with pytest.raises(InputError):
        split_unseen_categories(stim, cat, test_categories=["nope"])


def test_id_split_and_restrict():
    with pytest.raises(InputError):
        split_ids(["a", "b"], ["b", "c"])
    sp = restrict(split_ids(["a", "b", "x"], ["c"]), ["a", "b", "c"])
    assert list(sp.train) == ["a", "b"] and sp.info["n_train_dropped"] == 1
    with pytest.raises(InputError):
        restrict(sp, ["a", "b"])


def test_id_split_reads_id_files_with_comments(tmp_path):
    from brainalign.encoding.pipeline import build_split

    (tmp_path / "train.txt").write_text("# training images\na.png\n\n  b.png  # the second one\n")
    (tmp_path / "test.txt").write_text("c.png\n#d.png\n")
    sp = build_split("ids", pd.DataFrame(), train_ids=tmp_path / "train.txt", test_ids=tmp_path / "test.txt")
    assert list(sp.train) == ["a.png", "b.png"] and list(sp.test) == ["c.png"]
    with pytest.raises(InputError):
        build_split("ids", pd.DataFrame(), train_ids=tmp_path / "missing.txt", test_ids=tmp_path / "test.txt")
