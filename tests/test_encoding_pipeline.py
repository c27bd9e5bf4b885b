"""encode -> synthesize -> evaluate through a voxel store and a feature cache with a planted brain.

Fixture: 2 layers ("early", "late") of random features; ROI "V1" voxels are driven by "early", ROI "FFA"
by "late", with voxel-specific noise; a third of the stimuli are shared (3 repetitions), the rest are
shown once; extra stimuli with features but no responses play the "never shown in the scanner" images.
Every stimulus has one of 3 categories, and the late features carry a category signal.
"""

import json

import numpy as np
import pandas as pd
import pytest
import zarr

from brainalign.cli import main as cli_main
from brainalign.encoding import VoxelwiseEncoder
from brainalign.features import CACHE_FORMAT, open_feature_cache
from brainalign.features.cache import write_stimulus_ids
from brainalign.store import open_voxel_store, write_voxel_store

N_STIM, N_UNSEEN, N_SHARED, P = 240, 150, 60, 30
CATS = ["animal", "food", "vehicle"]


def write_cache(path, ids, layers: dict):
    """Feature cache written straight from the documented layout (docs: brainalign.features.cache)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, arr in layers.items():
        g.create_array(f"layers/{name}", data=np.asarray(arr, np.float32))
    g.attrs.update({"format": CACHE_FORMAT, "complete": True, "layers": list(layers), "model": "planted",
                    "weights": "none", "reduction": "none"})
    write_stimulus_ids(path, list(ids))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    rng = np.random.default_rng(0)
    n_all = N_STIM + N_UNSEEN
    ids = list(range(1000, 1000 + n_all))  # int ids, like NSD
    cats = np.array([CATS[i % 3] for i in range(n_all)])
    proto = rng.normal(size=(3, P))
    early = rng.normal(size=(n_all, P))
    late = rng.normal(size=(n_all, P)) + 1.5 * proto[[CATS.index(c) for c in cats]]
    n_v1, n_ffa = 40, 40
    W_e = rng.normal(size=(P, n_v1)) / np.sqrt(P)
    W_l = rng.normal(size=(P, n_ffa)) / np.sqrt(P * 3.25)
    clean = np.hstack([early @ W_e, late @ W_l]) * 2 + 5  # (n_all, 80)
    noise_sd = np.tile(np.linspace(0.5, 4, n_v1), 2)
    # trials: shared stimuli x3 reps, other stimuli once
    shown = np.arange(N_STIM)
    order = np.concatenate([shown, np.repeat(np.arange(N_SHARED), 2)])
    rng.shuffle(order)
    betas = clean[order] + rng.normal(size=(len(order), 80)) * noise_sd
    stim = np.array(ids)[order]
    trials = pd.DataFrame({"session": 1 + np.arange(len(order)) // 100, "trial": 1 + np.arange(len(order)) % 100,
                           "stimulus": stim, "repetition": 0, "shared": order < N_SHARED})
    trials["repetition"] = trials.groupby("stimulus").cumcount()
    ijk = np.stack(np.unravel_index(np.arange(80), (4, 5, 4)), axis=1)
    labels = np.r_[np.ones(n_v1, np.int16), 2 * np.ones(n_ffa, np.int16)]
    ncsnr = 2 / noise_sd  # signal sd ≈ 2 after the *2 above (unit-variance projections)
    store = write_voxel_store(root / "real.zarr", betas, trials, ijk, (4, 5, 4), np.eye(4),
                              rois={"visual": (labels, {1: "V1", 2: "FFA"})}, ncsnr=ncsnr,
                              attrs={"dataset": "planted", "subject": "s1"})
    write_cache(root / "feat.zarr", ids, {"early": early, "late": late})
    pd.DataFrame({"stimulus": ids, "category": cats}).to_csv(root / "cats.csv", index=False)
    return {"root": root, "store": store, "features": root / "feat.zarr", "cats": root / "cats.csv",
            "clean": clean, "ids": ids, "noise_sd": noise_sd}


@pytest.fixture(scope="module")
def encoded(planted):
    out = planted["root"] / "enc"
    rc = cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                   "--split", "nsd-shared", "--alphas", "logspace:-1:5:13", "--out", str(out)])
    assert rc == 0
    return out


def test_encode_outputs_scores_and_layer_hierarchy(planted, encoded):
    vox = pd.read_parquet(encoded / "voxels.parquet")
    assert {"voxel", "layer", "alpha", "r", "r2", "nc", "score", "cv_r2", "selected"} <= set(vox.columns)
    sel = vox[vox["layer"] == "selected"].set_index("voxel").sort_index()
    # planted layer recovered from training CV: V1 voxels -> early, FFA voxels -> late
    assert (sel["chosen_layer"].iloc[:40] == "early").mean() > 0.9
    assert (sel["chosen_layer"].iloc[40:] == "late").mean() > 0.9
    # NC-normalised score is high where signal is planted (reliable voxels), r tracks noise level
    assert sel["score"].iloc[:10].mean() > 0.6 and sel["score"].iloc[40:50].mean() > 0.6
    assert sel["r"].iloc[:10].mean() > sel["r"].iloc[30:40].mean()
    # NC from ncsnr with 3 repetitions
    np.testing.assert_allclose(sel["nc"], (2 / planted["noise_sd"]) ** 2 / ((2 / planted["noise_sd"]) ** 2 + 1 / 3),
                               rtol=1e-5)
    rois = pd.read_parquet(encoded / "rois.parquet")
    v1 = rois[rois["roi"] == "visual/V1"].set_index("layer")
    ffa = rois[rois["roi"] == "visual/FFA"].set_index("layer")
    assert v1.loc["early", "mean_score"] > v1.loc["late", "mean_score"]
    assert ffa.loc["late", "mean_score"] > ffa.loc["early", "mean_score"]
    roi_layers = pd.read_parquet(encoded / "roi_layers.parquet").set_index("roi")
    assert roi_layers.loc["visual/V1", "layer"] == "early" and roi_layers.loc["visual/FFA", "layer"] == "late"
    summary = json.loads((encoded / "summary.json").read_text())
    assert summary["n_test"] == N_SHARED and summary["n_train"] == N_STIM - N_SHARED
    assert summary["nc_method"] == "ncsnr" and summary["test_reps"] == {"3": N_SHARED}
    for f in ("maps/selected_r.nii.gz", "maps/selected_score.nii.gz", "maps/nc.nii.gz", "figures/score_vs_layer.png"):
        assert (encoded / f).stat().st_size > 0
    import nibabel as nib

    img = nib.load(encoded / "maps/selected_r.nii.gz")
    assert img.shape == (4, 5, 4)
    np.testing.assert_allclose(img.get_fdata()[0, 0, 0], sel["r"].iloc[0], rtol=1e-5)


def test_encoder_roundtrip_predicts_planted_responses(planted, encoded):
    enc = VoxelwiseEncoder.load(encoded)
    assert enc.meta["test_stimuli"] and not set(enc.meta["test_stimuli"]) & set(enc.meta["train_stimuli"])
    cache = open_feature_cache(planted["features"])
    pred = enc.predict(lambda name: cache.layer(name))
    unseen = slice(N_STIM, None)  # features only, never in the store
    r = [np.corrcoef(pred[unseen, v], planted["clean"][unseen, v])[0, 1] for v in range(80)]
    assert np.median(r) > 0.8


def test_synthesize_store_roundtrip_and_evaluations(planted, encoded):
    syn_path = planted["root"] / "syn.zarr"
    rc = cli_main(["synthesize", "generate", "--encoder", str(encoded), "--features", str(planted["features"]),
                   "--out", str(syn_path)])
    assert rc == 0
    syn = open_voxel_store(syn_path)
    real = open_voxel_store(planted["store"])
    assert syn.attrs["synthetic"] is True
    assert len(syn.trials) == N_STIM + N_UNSEEN and (syn.trials["repetition"] == 0).all()
    assert syn.trials["stimulus"].dtype.kind == "i"  # same id type as the real store
    assert set(syn.roi_names()) == set(real.roi_names())
    np.testing.assert_array_equal(syn.roi_mask("visual/V1"), real.roi_mask("visual/V1"))
    np.testing.assert_array_equal(syn.voxel_ijk, real.voxel_ijk)
    assert syn.trials["shared"].sum() == N_SHARED
    enc = VoxelwiseEncoder.load(encoded)
    cache = open_feature_cache(planted["features"])
    np.testing.assert_allclose(np.asarray(syn.betas[...]), enc.predict(lambda n: cache.layer(n)), rtol=1e-5, atol=1e-5)
    ids, means, n = syn.mean_by_stimulus()
    assert (n == 1).all()

    out = planted["root"] / "eval"
    rc = cli_main(["synthesize", "evaluate", "--encoder", str(encoded), "--store", str(planted["store"]),
                   "--synthetic", str(syn_path), "--categories", str(planted["cats"]), "--out", str(out),
                   "--n-per-class", "10", "40", "--repeats", "2", "--permutations", "200"])
    assert rc == 0
    tests = pd.read_parquet(out / "claim1_tests.parquet").set_index(["roi", "level"])
    # noisy voxels: synthetic beats real-vs-real repetition correlation
    assert tests.loc[("all", "image"), "mean_a"] > tests.loc[("all", "image"), "mean_b"]
    assert tests.loc[("all", "image"), "wilcoxon_p"] < 0.01
    vox = pd.read_parquet(out / "claim1_voxels.parquet")
    noisy = vox[(vox["roi"] == "all") & vox["voxel"].isin(np.r_[20:40, 60:80])]
    assert (noisy["c_syn"] > noisy["c_real"]).mean() > 0.8
    dec = pd.read_parquet(out / "decoding.parquet")
    ffa = dec[(dec["roi"] == "visual/FFA") & (dec["train"] == "synthetic")]
    assert ffa["balanced_accuracy"].max() > 0.6 and ffa["p_value"].min() < 0.01
    assert (out / "figures" / "claim1.png").exists() and (out / "figures" / "decoding.png").exists()


def test_unseen_categories_encode_synthesize_decode(planted, tmp_path):
    out = tmp_path / "enc_cat"
    rc = cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                   "--split", "unseen-categories", "--categories", str(planted["cats"]),
                   "--test-categories", "food", "vehicle", "--layers", "late", "--alphas", "logspace:-1:4:6",
                   "--folds", "3", "--no-figure", "--out", str(out)])
    assert rc == 0
    meta = json.loads((out / "encoder" / "encoder.json").read_text())
    cats = pd.read_csv(planted["cats"]).astype(str).set_index("stimulus")["category"]
    assert {cats[s] for s in meta["test_stimuli"]} == {"food", "vehicle"}
    assert not {cats[s] for s in meta["train_stimuli"]} & {"food", "vehicle"}
    # decoder trained on synthetic responses to never-shown images of the unseen categories,
    # tested on real responses to the held-out (unseen-category) images
    syn = tmp_path / "syn.zarr"
    assert cli_main(["synthesize", "generate", "--encoder", str(out), "--features", str(planted["features"]),
                     "--out", str(syn)]) == 0
    ev = tmp_path / "eval"
    assert cli_main(["synthesize", "evaluate", "--encoder", str(out), "--store", str(planted["store"]),
                     "--synthetic", str(syn), "--categories", str(planted["cats"]), "--rois", "visual/FFA",
                     "--n-per-class", "40", "--repeats", "1", "--permutations", "200", "--no-figure",
                     "--out", str(ev)]) == 0
    dec = pd.read_parquet(ev / "decoding.parquet")
    s = dec[(dec["roi"] == "visual/FFA") & (dec["train"] == "synthetic")].iloc[0]
    assert s["n_classes"] == 2 and s["chance"] == 0.5
    assert s["balanced_accuracy"] > 0.75 and s["p_value"] < 0.01


def test_bad_inputs_fail_before_output(planted, tmp_path):
    bad = tmp_path / "bad"
    rc = cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                   "--layers", "nope", "--out", str(bad)])
    assert rc == 2 and not bad.exists()
    rc = cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                   "--split", "unseen-categories", "--out", str(bad)])
    assert rc == 2 and not bad.exists()
    rc = cli_main(["synthesize", "generate", "--encoder", str(tmp_path), "--features", str(planted["features"]),
                   "--out", str(tmp_path / "s.zarr")])
    assert rc == 2 and not (tmp_path / "s.zarr").exists()


def test_synthesize_from_several_caches(planted, encoded, tmp_path):
    """Real-image and unseen-image caches go into one synthetic store, in order; overlapping caches are refused."""
    from brainalign.errors import InputError
    from brainalign.synthetic import synthesize

    cache = open_feature_cache(planted["features"])
    ids = cache.stimulus_ids.tolist()
    half = len(ids) // 2
    parts = []
    for k, rows in enumerate((np.arange(half), np.arange(half, len(ids)))):
        path = tmp_path / f"part{k}.zarr"
        write_cache(path, [ids[i] for i in rows], {n: cache.layer(n)[rows] for n in cache.layers})
        parts.append(path)
    syn = open_voxel_store(synthesize(encoded, parts, tmp_path / "syn.zarr"))
    assert syn.trials["stimulus"].tolist() == ids
    enc = VoxelwiseEncoder.load(encoded)
    np.testing.assert_allclose(np.asarray(syn.betas[...]), enc.predict(lambda n: cache.layer(n)), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="share stimuli"):
        synthesize(encoded, [parts[0], parts[0]], tmp_path / "dup.zarr")
    assert not (tmp_path / "dup.zarr").exists()


def test_banded_encode_recovers_planted_layers_and_synthesizes(planted, tmp_path):
    """--banded: one banded ridge over both layers; V1 voxels put their band weight on "early", FFA voxels on
    "late" (planted), the encoder round-trips and synthesises from the concatenated layers."""
    out = tmp_path / "enc_banded"
    rc = cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                   "--split", "nsd-shared", "--alphas", "logspace:-1:5:13", "--banded", "--band-search", "grid:10",
                   "--no-figure", "--out", str(out)])
    assert rc == 0
    bands = pd.read_parquet(out / "bands.parquet")
    assert {"voxel", "band", "band_weight", "band_alpha", "share", "dominant", "r2_split"} <= set(bands.columns)
    assert len(bands) == 2 * 80
    w = bands.pivot(index="voxel", columns="band", values="band_weight").sort_index()
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    share = bands.pivot(index="voxel", columns="band", values="share").sort_index()
    np.testing.assert_allclose(share.sum(axis=1), 1.0)
    assert (share["early"].iloc[:40] > 0.8).mean() >= 0.9 and (share["late"].iloc[40:] > 0.8).mean() >= 0.9
    reliable = np.r_[0:20, 40:60]  # the less noisy half of each ROI
    assert (w["early"].iloc[reliable[:20]] > 0.5).mean() >= 0.9
    assert (w["late"].iloc[reliable[20:]] > 0.5).mean() >= 0.9
    split = bands.pivot(index="voxel", columns="band", values="r2_split").sort_index()
    assert (split["early"].iloc[:20] > split["late"].iloc[:20]).mean() >= 0.9
    assert (split["late"].iloc[40:60] > split["early"].iloc[40:60]).mean() >= 0.9
    rb = pd.read_parquet(out / "roi_bands.parquet").set_index(["roi", "band"])
    assert rb.loc[("visual/V1", "early"), "fraction_dominant"] > 0.8
    assert rb.loc[("visual/FFA", "late"), "fraction_dominant"] > 0.8
    vox = pd.read_parquet(out / "voxels.parquet")
    sel = vox[vox["layer"] == "selected"]
    assert (sel["chosen_layer"] == "banded").all() and set(vox["layer"]) == {"early", "late", "banded", "selected"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["banded"]["bands"] == ["early", "late"] and summary["banded"]["n_candidates"] == 11
    for f in ("maps/band-early_weight.nii.gz", "maps/banded_dominant_band.nii.gz"):
        assert (out / f).stat().st_size > 0
    # the saved encoder reads both layers, concatenated, and predicts the planted responses of unseen stimuli
    enc = VoxelwiseEncoder.load(out)
    assert enc.required_layers() == ["early", "late"]
    cache = open_feature_cache(planted["features"])
    pred = enc.predict(lambda name: cache.layer(name))
    unseen = slice(N_STIM, None)
    r = [np.corrcoef(pred[unseen, v], planted["clean"][unseen, v])[0, 1] for v in range(80)]
    assert np.median(r) > 0.8
    syn = tmp_path / "syn.zarr"
    assert cli_main(["synthesize", "generate", "--encoder", str(out), "--features", str(planted["features"]),
                     "--out", str(syn)]) == 0
    np.testing.assert_allclose(np.asarray(open_voxel_store(syn).betas[...]), pred, rtol=1e-5, atol=1e-5)
    # a banded model needs at least two layers
    bad = tmp_path / "bad"
    assert cli_main(["encode", "--store", str(planted["store"]), "--features", str(planted["features"]),
                     "--layers", "early", "--banded", "--out", str(bad)]) == 2
    assert not bad.exists()
