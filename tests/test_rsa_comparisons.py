"""``brainalign rsa --compare``: paired model comparisons at layers chosen without the evaluation stimuli.

Hand-built stores (two subjects: 30 shared evaluation images, 40 own training images each) and feature caches
with a planted structure; the references are scipy (Spearman of correlation-distance RDMs) and the planted
ground truth.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from rsa_inputs import write_feature_cache, write_two_roi_store
from scipy.spatial.distance import pdist

from brainalign.inference import verdict
from brainalign.rsa.pipeline import run_fmri_rsa

N_EVAL, N_TRAIN, N_VOX = 30, 40, 40


def _setup(root, noise_eval=False, seed=0):
    """Stores of subj01/subj02 and caches of models good / base / twin; returns paths and the latent."""
    rng = np.random.default_rng(seed)
    eval_ids = np.arange(N_EVAL)
    train_ids = {1: 100 + np.arange(N_TRAIN), 2: 200 + np.arange(N_TRAIN)}
    all_ids = np.concatenate([eval_ids, train_ids[1], train_ids[2]])
    latent = rng.standard_normal((len(all_ids), 5))
    row = {int(s): i for i, s in enumerate(all_ids)}
    stores = []
    for subj in (1, 2):
        ids = np.concatenate([eval_ids, train_ids[subj]])
        order = np.concatenate([ids, ids])
        clean = latent[[row[int(s)] for s in order]] @ rng.standard_normal((5, N_VOX))
        betas = clean + 0.8 * rng.standard_normal(clean.shape)
        if noise_eval:  # the evaluation images' responses replaced by noise
            ev = np.isin(order, eval_ids)
            betas[ev] = np.random.default_rng(99).standard_normal((ev.sum(), N_VOX))
        trials = pd.DataFrame({"session": 1, "trial": np.arange(1, len(order) + 1), "stimulus": order,
                               "repetition": np.repeat([0, 1], len(ids)), "shared": np.isin(order, eval_ids)})
        path = root / f"subj0{subj}.zarr"
        write_two_roi_store(path, betas, trials, (4, 5, 2), {"subject": f"subj0{subj}"})
        stores.append(path)
    noise = lambda k: rng.standard_normal((len(all_ids), k))  # noqa: E731
    signal = latent @ rng.standard_normal((5, 20))
    caches = [
        # good: the planted structure in its *second* layer, noise in the first
        write_feature_cache(root / "good.zarr", all_ids, {"L1": noise(20), "L2": signal + 1.0 * noise(20)}),
        write_feature_cache(root / "base.zarr", all_ids, {"L1": noise(20), "L2": noise(20)}),
        # twin: the same structure with its own noise of the same size (a near tie with good)
        write_feature_cache(root / "twin.zarr", all_ids, {"L1": noise(20), "L2": signal + 1.0 * noise(20)}),
    ]
    return stores, caches, latent


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa_compare")
    stores, caches, _ = _setup(root)
    result = run_fmri_rsa(caches, stores, ["atlas/V1", "atlas/LO"], root / "out", trained_on="subj01", n_boot=200,
                          compare=[("good", "base"), ("base", "good"), ("twin", "good")], device="cpu")
    return root, stores, caches, result


def test_layers_are_chosen_on_training_stimuli(compared):
    root, *_ = compared
    layers = pd.read_parquet(root / "out" / "rsa_layers.parquet")
    assert set(layers["model"]) == {"good", "base", "twin"} and len(layers) == 3 * 2 * 2
    assert (layers.loc[layers["model"] == "good", "layer"] == "L2").all()  # the planted layer
    assert (layers["n_selection_stimuli"] == N_TRAIN).all()
    assert "outside the evaluation set" in layers["criterion"].iloc[0]


def test_layer_choice_does_not_see_the_evaluation_responses(compared, tmp_path):
    """Replacing the evaluation images' responses by noise leaves every choice and selection value unchanged."""
    root, *_ = compared
    stores, caches, _ = _setup(tmp_path, noise_eval=True)
    run_fmri_rsa(caches, stores, ["atlas/V1", "atlas/LO"], tmp_path / "out", trained_on="subj01", n_boot=0,
                 compare=[("good", "base")], device="cpu")
    a = pd.read_parquet(root / "out" / "rsa_layers.parquet")
    b = pd.read_parquet(tmp_path / "out" / "rsa_layers.parquet")
    pd.testing.assert_frame_equal(a, b)


def _reference_rho(cache, layer, store, roi_cols):
    """Spearman between the model RDM and the subject's ROI RDM on the evaluation images (scipy)."""
    from brainalign.features import open_feature_cache
    from brainalign.store import open_voxel_store

    c, s = open_feature_cache(cache), open_voxel_store(store)
    ids = list(range(N_EVAL))
    feats = c.layer(layer, rows=c.rows_for([str(i) for i in ids]))
    _, means, _ = s.mean_by_stimulus(stimuli=ids, voxels=roi_cols)
    return scipy.stats.spearmanr(pdist(feats, "correlation"), pdist(means, "correlation"))[0]


def test_paired_effects_match_scipy_and_verdicts_follow(compared):
    root, stores, caches, result = compared
    comp = pd.read_parquet(root / "out" / "rsa_comparisons.parquet")
    rsa = comp[comp["analysis"] == "rsa"]
    assert len(rsa) == 3 * 2 * (2 + 2)  # pairs x ROIs x (2 subjects + 2 relation groups of one subject)
    cols = {"atlas/V1": np.arange(N_VOX // 2), "atlas/LO": np.arange(N_VOX // 2, N_VOX)}
    layers = pd.read_parquet(root / "out" / "rsa_layers.parquet").set_index(["model", "subject", "roi"])["layer"]
    paths = dict(zip(["good", "base", "twin"], caches))
    for row in rsa[rsa["subject"] != "mean"].itertuples():
        store = stores[int(row.subject[-1]) - 1]
        ref_a = _reference_rho(paths[row.model], layers[row.model, row.subject, row.roi], store, cols[row.roi])
        ref_b = _reference_rho(paths[row.baseline], layers[row.baseline, row.subject, row.roi], store, cols[row.roi])
        assert row.effect == pytest.approx(ref_a - ref_b, abs=1e-5)
        assert row.ci_low <= row.effect <= row.ci_high
    good = rsa[(rsa["model"] == "good") & (rsa["subject"] != "mean")]
    assert (good["effect"] > 0.2).all() and (good["p"] < 0.01).all()
    assert {verdict(r.effect, r.p) for r in good.itertuples()} == {"yes"}
    reverse = rsa[(rsa["model"] == "base") & (rsa["subject"] != "mean")]
    assert {verdict(r.effect, r.p) for r in reverse.itertuples()} == {"no"}
    # the near tie: both models carry the same structure; the difference is noise, the bootstrap says so
    tie = rsa[rsa["model"] == "twin"]
    assert (tie["effect"].abs() < 0.1).all()
    assert {verdict(r.effect, r.p) for r in tie.itertuples()} == {"inconclusive"}, tie[["effect", "p"]]
    # a relation group of one subject is that subject's row
    within = rsa[(rsa["relation"] == "within") & (rsa["model"] == "good")]
    assert within.groupby("roi")["effect"].nunique().eq(1).all()


def test_compare_checks_names_before_writing(tmp_path):
    from brainalign.errors import InputError

    stores, caches, _ = _setup(tmp_path)
    with pytest.raises(InputError, match="--compare"):
        run_fmri_rsa(caches, stores, ["atlas/V1"], tmp_path / "out", n_boot=0, compare=[("good", "nobody")],
                     device="cpu")
    assert not (tmp_path / "out").exists()


def test_group_rows_and_dimension_comparisons_on_arrays():
    """Relation groups average their subjects and resample them; dimension comparisons average shared layers."""
    from brainalign.rsa.comparisons import choose_layers, paired_comparisons
    from brainalign.rsa.dimensions import dimension_comparisons

    rng = np.random.default_rng(0)
    keys = [("a", "L1"), ("a", "L2"), ("b", "L1"), ("b", "L2")]
    sims = rng.uniform(0, 0.5, size=(4, 3, 1))  # keys x 3 subjects x 1 ROI
    boots = sims[None] + 0.01 * rng.normal(size=(500, 4, 3, 1))
    choices = pd.concat([choose_layers(keys, np.array([[0.1], [0.3], [0.2], [0.1]]), s, ["roi"], 50, "test")
                         for s in ("s1", "s2", "s3")], ignore_index=True)
    assert set(choices.loc[choices["model"] == "a", "layer"]) == {"L2"}
    assert set(choices.loc[choices["model"] == "b", "layer"]) == {"L1"}
    table = paired_comparisons(keys, sims, boots, ["s1", "s2", "s3"], ["within", "across", "across"], ["roi"],
                               [("a", "b")], choices, n_stimuli=40, seed=0)
    per = table[table["subject"] != "mean"].set_index("subject")["effect"]
    np.testing.assert_allclose(per.to_numpy(), sims[1, :, 0] - sims[2, :, 0])
    across = table[(table["subject"] == "mean") & (table["relation"] == "across")].iloc[0]
    assert across["effect"] == pytest.approx(per[["s2", "s3"]].mean())
    assert across["n_subjects"] == 2 and across["test"] == "paired bootstrap over stimuli and subjects"
    # resampling two subjects widens the interval beyond the stimulus bootstrap of their mean
    stim_only = (boots[:, 1, 1:, 0] - boots[:, 2, 1:, 0]).mean(axis=1)
    assert across["ci_high"] - across["ci_low"] > np.subtract(*np.quantile(stim_only, [0.975, 0.025]))

    dsims = rng.uniform(size=(4, 3))  # keys x dimensions
    dboots = dsims[None] + 0.01 * rng.normal(size=(200, 4, 3))
    dims = dimension_comparisons(keys, dsims, dboots, [("a", "b")], n_stimuli=40)
    row = dims.iloc[0]
    assert row["effect"] == pytest.approx((dsims[:2] - dsims[2:]).mean())
    draws = (dboots[:, :2] - dboots[:, 2:]).mean(axis=(1, 2))
    assert row["ci_low"] == pytest.approx(np.quantile(draws, 0.025))
