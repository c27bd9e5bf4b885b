"""End to end on the simulator (tiny preset): ingest NSD subj01 -> encode -> synthesize -> evaluate.

Features are the simulator's own planted image features (``brainalign.simulate.features``) rather than a
CNN, so the "layers" have a known hierarchy: ``energy`` (fine oriented energy, pooled 8x8) drives early
voxels, ``category`` (a one-hot of the planted category) drives category-blob voxels. The unseen images
(never in any tree) provide the synthetic decoder's training set.
"""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainalign.cli import main as cli_main


CATEGORIES = ["faces", "bodies", "places", "words", "objects"]


def _features(images):
    from brainalign.simulate.features import image_features

    energy, mid = [], []
    for img in images:
        f = image_features(img)
        energy.append(f["energy"].reshape(4, 8, 4, 8, 4).mean(axis=(2, 4)).ravel())
        mid.append(f["mid"].reshape(2, 8, 4, 8, 4).mean(axis=(2, 4)).ravel())
    return np.asarray(energy), np.asarray(mid)


@pytest.fixture(scope="module")
def sim(simulated_root, tmp_path_factory):
    import h5py

    from brainalign.ingest import ingest_nsd
    from test_encoding_pipeline import write_cache

    out = tmp_path_factory.mktemp("encsim")
    store = ingest_nsd(simulated_root / "nsd", 1, out / "subj01.zarr")
    gt = pd.read_parquet(simulated_root / "ground_truth" / "nsd_images.parquet")
    from brainalign.store import open_voxel_store

    ids = np.unique(open_voxel_store(store).trials["stimulus"].to_numpy())
    cat_of = gt.set_index("stimulus")["category"].astype(str)
    with h5py.File(simulated_root / "nsd/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5", "r") as h:
        brick = h["imgBrick"]
        imgs = [brick[int(i)] for i in ids]
    unseen = sorted((simulated_root / "unseen_images").glob("*/*.png"))
    u_imgs = [np.asarray(Image.open(p).convert("RGB")) for p in unseen]
    u_ids = [f"{p.parent.name}/{p.name}" for p in unseen]
    e, m = _features(imgs + u_imgs)
    cats = [cat_of[int(i)] for i in ids] + [p.parent.name for p in unseen]
    onehot = np.eye(5)[[CATEGORIES.index(c) for c in cats]] + np.random.default_rng(0).normal(size=(len(cats), 5)) * 0.05
    all_ids = [str(i) for i in ids] + u_ids
    write_cache(out / "feat.zarr", all_ids, {"energy": e, "mid": m, "category": onehot})
    pd.DataFrame({"stimulus": all_ids, "category": cats}).to_csv(out / "cats.csv", index=False)
    enc = out / "enc"
    assert cli_main(["encode", "--store", str(store), "--features", str(out / "feat.zarr"), "--split", "nsd-shared",
                     "--alphas", "logspace:-1:5:13", "--out", str(enc)]) == 0
    syn = out / "syn.zarr"
    assert cli_main(["synthesize", "generate", "--encoder", str(enc), "--features", str(out / "feat.zarr"),
                     "--out", str(syn)]) == 0
    ev = out / "eval"
    assert cli_main(["synthesize", "evaluate", "--encoder", str(enc), "--store", str(store), "--synthetic", str(syn),
                     "--categories", str(out / "cats.csv"), "--rois", "prf-visualrois/V1v", "floc-faces/FFA-1",
                     "--n-per-class", "4", "--repeats", "3", "--permutations", "200", "--out", str(ev)]) == 0
    return {"root": simulated_root, "store": store, "enc": enc, "eval": ev}


def test_scores_high_where_signal_is_planted(sim):
    gt = np.load(sim["root"] / "ground_truth" / "nsd_subj01.npz")
    from brainalign.store import open_voxel_store

    s = open_voxel_store(sim["store"])
    key = {tuple(v): k for k, v in enumerate(s.voxel_ijk.tolist())}
    idx = np.array([key.get(tuple(v), -1) for v in gt["voxel_ijk"].tolist()])
    vox = pd.read_parquet(sim["enc"] / "voxels.parquet")
    sel = vox[vox["layer"] == "selected"].set_index("voxel")
    roles = gt["role"]
    inside = idx >= 0
    signal = inside & (roles > 0) & (gt["ncsnr"] > 0.5)
    # the simulator's "very noisy" signal voxels (planted ncsnr < 0.15)
    noisy = inside & (roles > 0) & (gt["ncsnr"] < 0.15)
    print("signal score", sel.loc[idx[signal], "score"].mean(), "r", sel.loc[idx[signal], "r"].mean(),
          "noisy r", sel.loc[idx[noisy], "r"].mean(), signal.sum(), noisy.sum())
    assert signal.sum() >= 50 and noisy.sum() >= 10
    assert sel.loc[idx[signal], "score"].mean() > 0.5
    assert sel.loc[idx[signal], "r"].mean() > sel.loc[idx[noisy], "r"].mean() + 0.3


def test_layer_hierarchy(sim):
    rl = pd.read_parquet(sim["enc"] / "roi_layers.parquet").set_index("roi")["layer"]
    print(rl.to_dict())
    early = [r for r in rl.index if r.startswith("prf-visualrois/V1")]
    cat = [r for r in rl.index if r.startswith("floc-faces/FFA") or r.startswith("floc-places/PPA")]
    assert early and cat
    assert all(rl[r] == "energy" for r in early)
    assert all(rl[r] == "category" for r in cat)


def test_synthetic_beats_repetitions_and_decodes(sim):
    tests = pd.read_parquet(sim["eval"] / "claim1_tests.parquet").set_index(["roi", "level"])
    print(tests[["mean_a", "mean_b", "wilcoxon_p"]])
    assert tests.loc[("all", "image"), "mean_a"] > tests.loc[("all", "image"), "mean_b"]
    assert tests.loc[("all", "image"), "wilcoxon_p"] < 0.01
    dec = pd.read_parquet(sim["eval"] / "decoding.parquet")
    print(dec)
    syn = dec[(dec["roi"] == "all") & (dec["train"] == "synthetic")].iloc[0]
    assert syn["n_classes"] == 5 and syn["n_per_class"] == 4
    assert syn["balanced_accuracy"] > syn["chance"] + 0.2 and syn["p_value"] < 0.01


def test_unseen_category_decoding_beats_chance_with_image_features(sim, tmp_path):
    """Claim 2 with unseen categories on the simulator: the encoder is fitted without faces and places, the decoder
    is trained on synthetic responses to never-shown face and place images and tested on real responses to the
    held-out face and place images.

    Only the image-computable layers (``energy``, ``mid``) are used, as a CNN would provide: the ``category``
    layer is the label itself, and its held-out columns are never active in training. Early visual voxels respond
    to image content, which the encoder learns from any category, so decoding from them and from all voxels beats
    chance. The planted category-selective responses are a lookup on the label (docs/simulator.md), so no
    encoder fitted without a category can predict a voxel's selective response to it; the test does not ask for
    decoding from category ROIs.
    """
    folder = sim["store"].parent
    cats, feats = folder / "cats.csv", folder / "feat.zarr"
    enc = tmp_path / "enc"
    assert cli_main(["encode", "--store", str(sim["store"]), "--features", str(feats), "--layers", "energy", "mid",
                     "--split", "unseen-categories", "--categories", str(cats), "--test-categories", "faces", "places",
                     "--alphas", "logspace:-1:5:13", "--no-figure", "--out", str(enc)]) == 0
    syn = tmp_path / "syn.zarr"
    assert cli_main(["synthesize", "generate", "--encoder", str(enc), "--features", str(feats), "--out", str(syn)]) == 0
    ev = tmp_path / "eval"
    assert cli_main(["synthesize", "evaluate", "--encoder", str(enc), "--store", str(sim["store"]), "--synthetic",
                     str(syn), "--categories", str(cats), "--rois", "prf-visualrois/V1v", "prf-visualrois/V1d",
                     "--n-per-class", "4", "--repeats", "3", "--permutations", "200", "--no-figure",
                     "--out", str(ev)]) == 0
    dec = pd.read_parquet(ev / "decoding.parquet")
    print(dec[["roi", "train", "n_per_class", "balanced_accuracy", "p_value", "n_test"]])
    syn_rows = dec[dec["train"] == "synthetic"].set_index("roi")
    assert (syn_rows["n_classes"] == 2).all() and (syn_rows["chance"] == 0.5).all()
    assert (syn_rows["standardize"] == "center").all()
    for roi in ("all", "prf-visualrois/V1v", "prf-visualrois/V1d"):
        assert syn_rows.loc[roi, "balanced_accuracy"] > 0.65 and syn_rows.loc[roi, "p_value"] < 0.01, roi
