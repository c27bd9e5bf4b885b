"""Feature cache on the device (bf16 autocast, channels_last, decode workers, pinned memory) against the
fp32 CPU cache of the same images and weights.

Tolerances per layer, as a fraction of the fp32 values: bf16 keeps 8 significant bits (relative rounding
error 2**-9 per value), accumulated over a layer's depth; measured on the CPU's bf16 path these runs give a
relative RMS error of 0.3-0.5 % and a largest error of at most 4.5 % of the layer's standard deviation, so
the bounds below leave a 4-6x margin for other kernels (cuDNN, cuBLAS).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from brainalign.features import extract_features, open_feature_cache
from brainalign.models import load_model
from brainalign.stimuli import nsd_images
from gpu_data import DEVICE, MARKS, ON_CUDA, write_brick

pytestmark = MARKS

#: relative RMS error bound per layer (||bf16 - fp32|| / ||fp32||)
REL_RMS_TOLERANCE = {
    "conv1": 0.01, "conv2": 0.02, "conv3": 0.02, "conv4": 0.02, "conv5": 0.025, "fc6": 0.03, "fc7": 0.03,
    "V1": 0.01, "V2": 0.02, "V4": 0.02, "IT": 0.03,
}
#: largest absolute error bound per layer, as a fraction of the layer's standard deviation
MAX_ERROR_TOLERANCE = 0.2
#: (arch, reduce, input side, images); CORnet-S on the CPU's bf16 path takes tens of seconds, so CUDA only
CASES = [("alexnet", "none", 224 if ON_CUDA else 64, 48 if ON_CUDA else 4)]
if ON_CUDA:
    CASES.append(("cornet_s", "pool", 224, 48))


#: (images, components) of the PCA check
PCA_CASE = (24, 3) if ON_CUDA else (6, 2)


@pytest.fixture(scope="module")
def models():
    """Random-weight models, built once (AlexNet's initialisation alone takes seconds on a CPU); each
    extraction gets a copy, as extraction moves a model to its device and memory format."""
    return {arch: load_model(arch, "random", seed=5) for arch in {c[0] for c in CASES} | {"alexnet"}}


@pytest.fixture(scope="module")
def brick(tmp_path_factory):
    n_images = max([n for *_, n in CASES] + [PCA_CASE[0]])
    return write_brick(tmp_path_factory.mktemp("brick") / "nsd_stimuli.hdf5", n_images)


@pytest.mark.parametrize("arch, reduce, side, n_images", CASES, ids=[c[0] for c in CASES])
def test_device_cache_matches_fp32_cpu_cache(brick, models, tmp_path, arch, reduce, side, n_images):
    model = copy.deepcopy(models[arch])
    ids = list(range(n_images))[::-1]  # reversed: row order must follow the IDs through the decode workers
    images = nsd_images(brick).subset(ids)
    common = dict(reduce=reduce, batch_size=8 if ON_CUDA else 4, input_size=(side, side), show_progress=False,
                  chunk_rows=16)
    reference = open_feature_cache(extract_features(images, model, tmp_path / "cpu.zarr", device="cpu", workers=0,
                                                    precision="fp32", channels_last=False, **common))
    # on CUDA the defaults are the GPU path (bf16 autocast + channels_last); on the CPU they are asked for
    options = {} if ON_CUDA else dict(precision="bf16", channels_last=True)
    got = open_feature_cache(extract_features(images, copy.deepcopy(models[arch]), tmp_path / "dev.zarr",
                                              device=DEVICE, workers=2, **common, **options))
    assert got.attrs["precision"] == "bf16" and got.attrs["channels_last"] is True
    assert got.stimulus_ids.tolist() == ids == reference.stimulus_ids.tolist()
    assert got.layers == reference.layers
    for layer in reference.layers:
        ref, dev = reference.layer(layer), got.layer(layer)
        assert dev.dtype == np.float32 and dev.shape == ref.shape
        rel_rms = np.linalg.norm(dev - ref) / np.linalg.norm(ref)
        max_err = np.abs(dev - ref).max() / ref.std()
        assert rel_rms <= REL_RMS_TOLERANCE[layer], f"{layer}: relative RMS error {rel_rms:.4f}"
        assert max_err <= MAX_ERROR_TOLERANCE, f"{layer}: largest error {max_err:.3f} x std"


def test_device_pca_matches_cpu_pca(brick, models, tmp_path):
    """PCA fitted and applied on the device (float64 Gram eigendecomposition) equals the CPU's, in fp32.

    The bound is 1 % of the largest projection on CUDA, where cuDNN runs fp32 convolutions in TF32 (10-bit
    mantissa) by default, and 0.2 % on the CPU."""
    n, k = PCA_CASE
    images = nsd_images(brick).subset(list(range(n)))
    common = dict(layers=["conv5", "fc6"], reduce="pca", pca_components=k, pca_train_ids=list(range(0, n, 2)),
                  pca_method="exact", batch_size=4, input_size=(64, 64), precision="fp32", show_progress=False)
    ref = open_feature_cache(extract_features(images, copy.deepcopy(models["alexnet"]), tmp_path / "c.zarr",
                                              device="cpu", workers=0, **common))
    dev = open_feature_cache(extract_features(images, copy.deepcopy(models["alexnet"]), tmp_path / "d.zarr",
                                              device=DEVICE, workers=2, **common))
    for layer in ("conv5", "fc6"):
        a, b = ref.layer(layer), dev.layer(layer)
        # components are sign-fixed the same way on every device, so projections agree directly
        np.testing.assert_allclose(b, a, atol=(1e-2 if ON_CUDA else 2e-3) * np.abs(a).max(), rtol=0)
