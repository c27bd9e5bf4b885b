"""Feature cache: row alignment, values against an independent hook, PCA on the training split only
(vs scikit-learn), resume after an interruption, skip when up to date, CLI."""

import h5py
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from brainalign.cli import main as cli_main
from brainalign.errors import InputError
from brainalign.features import extract_features, open_feature_cache
from brainalign.models import load_model
from brainalign.stimuli import nsd_images

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
N_BRICK = 24


def image_for(stimulus_id: int) -> np.ndarray:
    """A 425x425 image whose content is a function of its ID (so a misplaced row is detectable)."""
    rng = np.random.default_rng(1000 + stimulus_id)
    small = rng.integers(0, 256, (17, 17, 3), dtype=np.uint8)
    return np.kron(small, np.ones((25, 25, 1), dtype=np.uint8))


@pytest.fixture(scope="module")
def brick(tmp_path_factory):
    path = tmp_path_factory.mktemp("nsd") / "nsd_stimuli.hdf5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("imgBrick", data=np.stack([image_for(i) for i in range(N_BRICK)]))
    return path


@pytest.fixture(scope="module")
def alexnet():
    return load_model("alexnet", "random", seed=11)


def reference_features(model, ids, module_paths, size=224):
    """Plain torchvision forward hooks, preprocessing written out independently of brainalign."""
    modules = dict(model.named_modules())
    got = {p: [] for p in module_paths}
    handles = [modules[p].register_forward_hook(lambda m, i, o, p=p: got[p].append(o.detach().flatten(1).clone()))
               for p in module_paths]
    try:
        with torch.no_grad():
            for i in ids:
                x = torch.from_numpy(image_for(i)).permute(2, 0, 1)
                x = TF.resize(x, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
                x = (x.float()[None] / 255 - MEAN) / STD
                model(x)
    finally:
        for h in handles:
            h.remove()
    return {p: torch.cat(v).numpy() for p, v in got.items()}


def test_rows_follow_ids_and_equal_plain_hooks(brick, alexnet, tmp_path):
    ids = [17, 3, 22, 0, 9, 14, 5, 11]  # shuffled subset
    images = nsd_images(brick).subset(ids)
    out = extract_features(images, alexnet, tmp_path / "a.zarr", layers=["conv1", "conv5", "fc7"],
                           batch_size=4, workers=2, device="cpu", chunk_rows=3, show_progress=False)
    cache = open_feature_cache(out)
    assert cache.stimulus_ids.tolist() == ids and cache.stimulus_ids.dtype == np.int64
    assert cache.layers == ["conv1", "conv5", "fc7"]
    ref = reference_features(alexnet, ids, ["features.1", "features.11", "classifier.5"])
    for name, path in [("conv1", "features.1"), ("conv5", "features.11"), ("fc7", "classifier.5")]:
        got = cache.layer(name)
        assert got.dtype == np.float32 and got.shape == ref[path].shape
        np.testing.assert_allclose(got, ref[path], rtol=1e-4, atol=1e-4)
    assert cache.layer("conv1").shape == (8, 64 * 55 * 55)
    rows = cache.rows_for([22, 17])
    np.testing.assert_allclose(cache.layer("fc7", rows), ref["classifier.5"][[2, 0]], rtol=1e-4, atol=1e-5)
    attrs = cache.attrs
    assert attrs["model"]["arch"] == "alexnet" and attrs["model"]["weights"] == "random"
    assert len(attrs["model"]["state_dict_sha256"]) == 64
    assert attrs["preprocessing"]["size"] == [224, 224] and attrs["reduction"]["method"] == "none"
    assert attrs["layer_modules"]["fc7"] == "classifier.5"


def test_cornet_s_pooled_layers(brick, tmp_path):
    model = load_model("cornet_s", "random", seed=4)
    ids = [6, 2, 19]
    out = extract_features(nsd_images(brick).subset(ids), model, tmp_path / "c.zarr", reduce="pool",
                           batch_size=2, workers=0, device="cpu", input_size=(64, 64), show_progress=False)
    cache = open_feature_cache(out)
    assert cache.layers == ["V1", "V2", "V4", "IT"]
    ref = reference_features(model, ids, ["V1", "V2", "V4", "IT"], size=64)
    for name, channels in [("V1", 64), ("V2", 128), ("V4", 256), ("IT", 512)]:
        got = cache.layer(name)
        assert got.shape == (3, channels)
        expected = ref[name].reshape(3, channels, -1).mean(-1)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert cache.attrs["layer_shapes"]["V4"] == [256, 4, 4]


def _match_up_to_sign(got, expected, atol):
    assert got.shape == expected.shape
    for j in range(expected.shape[1]):
        sign = np.sign(np.dot(got[:, j], expected[:, j])) or 1.0
        np.testing.assert_allclose(got[:, j], sign * expected[:, j], atol=atol)


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_pca_is_fitted_on_the_training_split_only(brick, alexnet, tmp_path, method):
    rows = [2, 5, 7, 11, 13, 16, 18, 20, 23, 1]                   # output rows
    train = [0, 3, 4, 6, 8, 9, 10, 12, 14, 15, 17, 19, 2, 5, 7]   # partly outside the output rows
    k = 6
    out = extract_features(nsd_images(brick).subset(rows), alexnet, tmp_path / "p.zarr", layers=["conv4", "fc6"],
                           reduce="pca", pca_components=k, pca_train_ids=train, pca_method=method,
                           batch_size=4, workers=0, device="cpu", chunk_rows=4, input_size=(96, 96),
                           show_progress=False)
    cache = open_feature_cache(out)
    ref = reference_features(alexnet, sorted(set(rows) | set(train)), ["features.9", "classifier.2"], size=96)
    index = {i: j for j, i in enumerate(sorted(set(rows) | set(train)))}
    for name, path in [("conv4", "features.9"), ("fc6", "classifier.2")]:
        x = ref[path].astype(np.float64)
        pca = PCA(n_components=k, svd_solver="full").fit(x[[index[i] for i in train]])
        expected = pca.transform(x[[index[i] for i in rows]])
        scale = np.abs(expected).max()
        got = cache.layer(name)
        _match_up_to_sign(got, expected, atol=2e-3 * scale)
        fit = cache.pca(name)
        np.testing.assert_allclose(fit["mean"], pca.mean_, rtol=1e-4, atol=1e-5 * np.abs(pca.mean_).max())
        np.testing.assert_allclose(fit["explained_variance"], pca.explained_variance_, rtol=2e-3)
        # the test can tell train-only from a fit on every row: that projection differs clearly
        everything = PCA(n_components=k, svd_solver="full").fit(x).transform(x[[index[i] for i in rows]])
        with pytest.raises(AssertionError):
            _match_up_to_sign(got, everything, atol=2e-3 * scale)
    assert cache.attrs["reduction"]["n_train"] == len(train)
    if method == "exact":  # the same PCA applied to another image set ("unseen images")
        other = extract_features(nsd_images(brick).subset([23, 4, 1]), alexnet, tmp_path / "u.zarr", layers=["fc6"],
                                 reduce="pca", pca_from=out, batch_size=4, workers=0, device="cpu",
                                 input_size=(96, 96), show_progress=False)
        applied = open_feature_cache(other)
        np.testing.assert_allclose(applied.layer("fc6")[[0, 2]], cache.layer("fc6")[[8, 9]], rtol=1e-4, atol=1e-4)
        assert applied.attrs["reduction"]["pca_from"] == str(out)


def test_pca_fit_images_bounds_the_fit_to_training_images(brick, alexnet, tmp_path):
    """--pca-fit-images: the PCA mean is that of exactly some n-subset of the training images."""
    import itertools

    train, n_fit = [0, 3, 4, 6, 8, 9, 10, 12, 14, 15], 6
    kwargs = dict(layers=["fc6"], reduce="pca", pca_components=3, pca_train_ids=train, pca_fit_images=n_fit,
                  pca_method="exact", batch_size=4, workers=0, device="cpu", input_size=(96, 96),
                  show_progress=False)
    out = extract_features(nsd_images(brick).subset([1, 2]), alexnet, tmp_path / "p.zarr", **kwargs)
    cache = open_feature_cache(out)
    assert cache.attrs["reduction"]["n_train"] == n_fit
    x = reference_features(alexnet, train, ["classifier.2"], size=96)["classifier.2"].astype(np.float64)
    subsets = np.array(list(itertools.combinations(range(len(train)), n_fit)))
    indicator = np.zeros((len(subsets), len(train)))
    np.put_along_axis(indicator, subsets, 1.0, axis=1)
    error = np.abs(indicator @ x / n_fit - cache.pca("fc6")["mean"]).max(axis=1)
    assert np.sum(error < 1e-4 * np.abs(x).max()) == 1
    again = extract_features(nsd_images(brick).subset([1, 2]), alexnet, tmp_path / "q.zarr", **kwargs)
    np.testing.assert_array_equal(open_feature_cache(again).pca("fc6")["mean"], cache.pca("fc6")["mean"])


@pytest.mark.parametrize("reduce", ["none", "pca"])
def test_interrupted_run_resumes_to_the_same_array(brick, alexnet, tmp_path, reduce):
    ids = [4, 18, 1, 12, 7, 22, 15, 9, 3]
    kwargs = dict(layers=["conv2", "fc7"], reduce=reduce, batch_size=2, workers=0, device="cpu",
                  chunk_rows=2, input_size=(96, 96), show_progress=False)
    if reduce == "pca":
        kwargs.update(pca_components=3, pca_train_ids=[0, 1, 2, 3, 4, 5], pca_method="exact")
    images = nsd_images(brick).subset(ids)
    clean = open_feature_cache(extract_features(images, alexnet, tmp_path / "clean.zarr", **kwargs))

    class Killed(RuntimeError):
        pass

    def kill_after_first_batch(b):
        if b == 0:
            raise Killed

    target = tmp_path / "resumed.zarr"
    with pytest.raises(Killed):
        extract_features(images, alexnet, target, on_batch=kill_after_first_batch, **kwargs)
    assert not target.exists()                              # nothing that looks complete
    partial = tmp_path / ".resumed.zarr.partial"
    assert partial.is_dir() and len(list((partial / "_done").glob("chunk-*"))) >= 1
    with pytest.raises(InputError):
        open_feature_cache(partial)

    batches = []
    extract_features(images, alexnet, target, on_batch=batches.append, **kwargs)
    n_batches_full = -(-len(ids) // 2)
    assert 0 < len(batches) < n_batches_full                  # finished chunks were skipped
    resumed = open_feature_cache(target)
    assert not partial.exists()
    for name in ["conv2", "fc7"]:
        np.testing.assert_allclose(resumed.layer(name), clean.layer(name), rtol=1e-5, atol=1e-5)
    assert resumed.stimulus_ids.tolist() == ids

    again = []
    extract_features(images, alexnet, target, on_batch=again.append, **kwargs)
    assert again == []                                        # up to date: nothing recomputed
    extract_features(images, alexnet, target, on_batch=again.append, **{**kwargs, "layers": ["fc7"]})
    assert again and open_feature_cache(target).layers == ["fc7"]  # new configuration: rebuilt


def test_bad_requests_fail_before_writing(brick, alexnet, tmp_path):
    images = nsd_images(brick).subset([1, 2])
    with pytest.raises(InputError, match="pca-train-ids"):
        extract_features(images, alexnet, tmp_path / "x.zarr", reduce="pca", pca_components=2, device="cpu")
    with pytest.raises(InputError, match="not in this image set"):
        extract_features(images, alexnet, tmp_path / "x.zarr", reduce="pca", pca_components=2,
                         pca_train_ids=[1, 999], device="cpu")
    with pytest.raises(InputError, match="not a layer"):
        extract_features(images, alexnet, tmp_path / "x.zarr", layers=["conv9"], device="cpu")
    assert not (tmp_path / "x.zarr").exists()
    with pytest.raises(InputError, match="not found"):
        open_feature_cache(tmp_path / "x.zarr")


def test_cli_on_a_plain_folder(tmp_path, monkeypatch, capsys):
    from PIL import Image

    for name, stimulus_id in [("cats/a.png", 1), ("dogs/b.jpg", 2), ("c.png", 3)]:
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_for(stimulus_id)[:100, :120]).save(tmp_path / "imgs" / name)
    out = tmp_path / "f.zarr"
    args = ["features", "--stimuli", f"folder:{tmp_path / 'imgs'}", "--model", "alexnet", "--weights", "random",
            "--layers", "conv1,conv3", "fc6", "--reduce", "pool", "--out", str(out), "--workers", "0",
            "--device", "cpu", "--batch-size", "2", "--no-progress"]
    assert cli_main(args) == 0
    cache = open_feature_cache(out)
    assert cache.stimulus_ids.tolist() == ["c.png", "cats/a.png", "dogs/b.jpg"]
    assert [cache.layer(n).shape for n in cache.layers] == [(3, 64), (3, 384), (3, 4096)]
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    bad = args[:]
    bad[bad.index("random")] = "imagenet"
    assert cli_main(bad) == 2
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- weights and training records
def _trained_checkpoint(run, record, **meta):
    """A ``brainalign train``-style checkpoint of a small torchvision network, with its training record beside it."""
    import torchvision

    from brainalign.heldout import record_info, write_training_record
    from brainalign.training.backbones import export_backbone

    torch.manual_seed(0)
    run.mkdir(parents=True, exist_ok=True)
    write_training_record(run / "stimuli.parquet", record)
    extra = {"method": "realnet", "control": "none", "subject": "subj01", "epoch": 2, "initial_weights": "random",
             "training_record": record_info(record), **meta}
    return export_backbone(run / "backbone.pt", torchvision.models.squeezenet1_1(), "squeezenet1_1", image_size=64,
                           extra=extra)


def test_trained_cache_carries_the_checkpoints_training_record(brick, tmp_path):
    import pandas as pd

    from brainalign.heldout import read_training_record, training_record

    record = training_record([3, 5, 7], [9], "subj01")
    ckpt = _trained_checkpoint(tmp_path / "run", record)
    kwargs = dict(layers=["features.3"], reduce="pool", device="cpu", workers=0, show_progress=False)
    images = nsd_images(brick).subset(list(range(12)))
    cache = open_feature_cache(extract_features(images, load_model(str(ckpt)), tmp_path / "c.zarr", **kwargs))
    expected = read_training_record(tmp_path / "run" / "stimuli.parquet")
    pd.testing.assert_frame_equal(cache.training_stimuli, expected)
    assert sorted(cache.training_stimuli["stimulus"]) == ["3", "5", "7", "9"]
    assert cache.attrs["weights"] == f"checkpoint:{ckpt}" and cache.attrs["weights_origin"] == "random"
    training = cache.attrs["training"]
    assert training["method"] == "realnet" and training["subject"] == "subj01" and training["record"]["n_val"] == 1
    # a record that is not the one the checkpoint was trained with, or none at all: refused, nothing written
    training_record([3, 5], [9], "subj01").to_parquet(tmp_path / "run" / "stimuli.parquet")
    with pytest.raises(InputError, match="not the one"):
        extract_features(images, load_model(str(ckpt)), tmp_path / "d.zarr", **kwargs)
    (tmp_path / "run" / "stimuli.parquet").unlink()
    with pytest.raises(InputError, match="training record not found"):
        extract_features(images, load_model(str(ckpt)), tmp_path / "d.zarr", **kwargs)
    unrecorded = _trained_checkpoint(tmp_path / "old", record, training_record=None)
    with pytest.raises(InputError, match="without a training record"):
        extract_features(images, load_model(str(unrecorded)), tmp_path / "d.zarr", **kwargs)
    assert not (tmp_path / "d.zarr").exists() and not list(tmp_path.glob(".d.zarr*"))


def test_untrained_caches_name_their_weights(brick, alexnet, tmp_path, monkeypatch):
    """Random weights, ImageNet weights (named by their file) and a plain weights file; none has training stimuli."""
    import torchvision

    kwargs = dict(reduce="pool", device="cpu", workers=0, show_progress=False)
    images = nsd_images(brick).subset([0, 1, 2])
    random = open_feature_cache(extract_features(images, alexnet, tmp_path / "r.zarr", layers=["conv1"], **kwargs))
    assert random.attrs["weights"] == random.attrs["weights_origin"] == "random"
    assert random.training_stimuli is None and random.attrs["training"] is None
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), hub / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    pretrained = load_model("squeezenet1_1", "imagenet")
    cache = open_feature_cache(extract_features(images, pretrained, tmp_path / "i.zarr", layers=["features.3"],
                                                **kwargs))
    assert cache.attrs["weights"] == cache.attrs["weights_origin"] == "imagenet:squeezenet1_1-b8a52dc0.pth"
    assert cache.training_stimuli is None
    plain = load_model("squeezenet1_1", str(hub / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"))
    cache = open_feature_cache(extract_features(images, plain, tmp_path / "f.zarr", layers=["features.3"], **kwargs))
    assert cache.attrs["weights"] == f"file:{hub / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth'}"
