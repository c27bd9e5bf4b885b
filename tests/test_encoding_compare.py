"""Paired comparison of encoders: the stimulus bootstrap against explicit resampling, and verdicts on planted
encoders (better, worse, and a near tie) through ``brainalign encode`` and ``brainalign compare-encoders``."""

import numpy as np
import pandas as pd
import pytest
import zarr

from brainalign.cli import main as cli_main
from brainalign.encoding.compare import TEST_PREDICTIONS
from brainalign.encoding.scoring import pearson_r
from brainalign.features import CACHE_FORMAT
from brainalign.features.cache import write_stimulus_ids
from brainalign.inference import paired_voxel_bootstrap, verdict
from brainalign.store import write_voxel_store


def test_bootstrap_matches_explicit_resampling():
    rng = np.random.default_rng(0)
    n, v = 40, 25
    y = rng.normal(size=(n, v))
    a = y + rng.normal(size=(n, v))
    b = 0.3 * y + rng.normal(size=(n, v))
    obs, samples = paired_voxel_bootstrap(y, a, b, n_boot=50, seed=3)
    assert obs["effect"] == pytest.approx(np.mean(pearson_r(y, a) - pearson_r(y, b)))
    assert obs["value_a"] == pytest.approx(np.mean(pearson_r(y, a)))
    picks = np.random.default_rng(3).integers(0, n, size=(50, n))  # the same draws, resampled by hand
    ref = [np.mean(pearson_r(y[p], a[p]) - pearson_r(y[p], b[p])) for p in picks]
    np.testing.assert_allclose(samples, ref, atol=1e-10)
    # chunked draws (small memory bound) give the same distribution
    _, chunked = paired_voxel_bootstrap(y, a, b, n_boot=50, seed=3, max_elements=3 * v)
    np.testing.assert_allclose(chunked, samples, atol=1e-12)


def test_voxels_are_not_the_resampling_unit():
    """Two equally good models whose errors share a stimulus-level component (as every voxel shares the stimuli):
    over repeated experiments the stimulus bootstrap's 95% interval excludes 0 about 5% of the time, while a test
    treating the voxels as independent samples would call most of these ties significant."""
    rng = np.random.default_rng(1)
    n, v, runs = 30, 200, 30
    excluded, naive_excluded = 0, 0
    for run in range(runs):
        shared = rng.normal(size=(n, 1))  # what every voxel responds to
        y = shared + 0.5 * rng.normal(size=(n, v))
        a = shared + 0.5 * rng.normal(size=(n, v)) + 0.4 * rng.normal(size=(n, 1))
        b = shared + 0.5 * rng.normal(size=(n, v)) + 0.4 * rng.normal(size=(n, 1))
        _, samples = paired_voxel_bootstrap(y, a, b, n_boot=200, seed=run)
        lo, hi = np.quantile(samples, [0.025, 0.975])
        excluded += not lo < 0 < hi
        d = pearson_r(y, a) - pearson_r(y, b)
        naive_excluded += abs(d.mean()) > 1.96 * d.std() / np.sqrt(v)
    assert excluded <= 5, excluded  # nominal 5% of 30 = 1.5 (measured: 0)
    assert naive_excluded >= runs // 2, naive_excluded  # measured: 19 of 30


def _cache(path, ids, layers):
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, arr in layers.items():
        g.create_array(f"layers/{name}", data=np.asarray(arr, np.float32))
    g.attrs.update({"format": CACHE_FORMAT, "complete": True, "layers": list(layers), "model": path.stem,
                    "weights": "random", "reduction": "none"})
    write_stimulus_ids(path, list(ids))


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """One subject (200 images, 50 shared test images x 2 repetitions); caches good (the planted features), weak
    (mostly noise) and twin (the planted features with another noise of the same size as good's)."""
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(0)
    n, p, nv = 200, 20, 60
    ids = list(range(500, 500 + n))
    latent = rng.normal(size=(n, p))
    clean = latent @ rng.normal(size=(p, nv)) / np.sqrt(p)
    order = np.concatenate([np.arange(n), np.arange(50)])
    betas = clean[order] + rng.normal(size=(len(order), nv)) * 1.0
    trials = pd.DataFrame({"session": 1, "trial": 1 + np.arange(len(order)), "stimulus": np.array(ids)[order],
                           "repetition": 0, "shared": order < 50})
    trials["repetition"] = trials.groupby("stimulus").cumcount()
    ijk = np.stack(np.unravel_index(np.arange(nv), (3, 4, 5)), axis=1)
    store = root / "subj01.zarr"
    write_voxel_store(store, betas, trials, ijk, (3, 4, 5), np.eye(4),
                      rois={"nsdgeneral": (np.ones(nv, np.int16), {1: "nsdgeneral"})}, attrs={"subject": "subj01"})
    noise = lambda s: rng.normal(size=(n, p)) * s  # noqa: E731
    caches = {"good": {"L1": latent + noise(0.7)}, "weak": {"L1": 0.2 * latent + noise(1.0)},
              "twin": {"L1": latent + noise(0.7)}}
    dirs = []
    for name, layers in caches.items():
        _cache(root / f"{name}.zarr", ids, layers)
        out = root / "enc" / name
        assert cli_main(["encode", "--store", str(store), "--features", str(root / f"{name}.zarr"),
                         "--alphas", "logspace:-1:4:11", "--no-figure", "--out", str(out)]) == 0
        dirs.append(out)
    table = root / "comparisons.parquet"
    assert cli_main(["compare-encoders", "--encoders", *map(str, dirs), "--stores", str(store), "--pairs",
                     "good:weak", "weak:good", "twin:good", "--roi", "nsdgeneral/nsdgeneral", "--n-boot", "1000",
                     "--out", str(table)]) == 0
    return root, dirs, pd.read_parquet(table).set_index(["model", "baseline"])


def test_comparison_table_agrees_with_the_encoders_own_scores(encoders):
    root, dirs, table = encoders
    vox = {d.name: pd.read_parquet(d / "voxels.parquet") for d in dirs}
    mean_r = {k: v.loc[v["layer"] == "selected", "r"].mean() for k, v in vox.items()}
    row = table.loc["good", "weak"]
    assert row["value_model"] == pytest.approx(mean_r["good"], abs=1e-5)
    assert row["value_baseline"] == pytest.approx(mean_r["weak"], abs=1e-5)
    assert row["n_stimuli"] == 50 and row["n_voxels"] == 60 and row["subject"] == "subj01"
    with np.load(dirs[0] / TEST_PREDICTIONS) as z:
        assert z["predicted"].shape == (50, 60) and len(z["stimulus"]) == 50


def test_verdicts_better_worse_and_near_tie(encoders):
    _, _, table = encoders
    decide = {k: verdict(r["effect"], r["p"]) for k, r in table.iterrows()}
    assert decide["good", "weak"] == "yes" and table.loc[("good", "weak"), "ci_low"] > 0
    assert decide["weak", "good"] == "no"
    twin = table.loc["twin", "good"]
    assert abs(twin["effect"]) < 0.03 and twin["ci_low"] < 0 < twin["ci_high"]
    assert decide["twin", "good"] == "inconclusive"


def test_compare_refuses_unpaired_encoders(encoders, tmp_path, capsys):
    root, dirs, _ = encoders
    args = ["compare-encoders", "--encoders", *map(str, dirs), "--stores", str(root / "subj01.zarr"),
            "--out", str(tmp_path / "t.parquet")]
    assert cli_main(args + ["--pairs", "good:nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert cli_main(args + ["--pairs", "good"]) == 2
    assert not (tmp_path / "t.parquet").exists()
