"""``brainalign rsa`` end to end on hand-built stores and feature caches (layouts from docs/DEVELOPING.md)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import zarr
from rsatoolbox.data import Dataset
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs, calc_rdm, compare

from brainalign.cli import main
from brainalign.store import write_eeg_store, write_voxel_store

N_STIM = 14


def _feature_cache(path, stim_ids, layers):
    """A finished feature cache written straight from the documented layout."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, arr in layers.items():
        g.create_array(f"layers/{name}", data=np.asarray(arr, dtype=np.float32))
    g.attrs.update({"format": "brainalign.feature_cache/1", "complete": True, "layers": list(layers),
                    "model": path.stem})
    pd.DataFrame({"stimulus": np.asarray(stim_ids, dtype=np.int64)}).to_parquet(path / "stimuli.parquet")
    return path


def _trials(stim_per_trial):
    s = pd.Series(stim_per_trial)
    return pd.DataFrame({"session": 1, "trial": np.arange(1, len(s) + 1), "stimulus": s,
                         "repetition": s.groupby(s).cumcount(), "shared": True})


@pytest.fixture(scope="module")
def fmri_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa_fmri")
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N_STIM, 6))
    n_vox = 40
    stores = []
    for k in range(3):
        stim = np.arange(N_STIM) * 10  # nsdId-like ints
        extra = np.array([999 + k])  # a stimulus only this subject saw
        order = np.concatenate([stim, stim, extra])  # 2 repetitions
        proj = rng.standard_normal((6, n_vox))
        clean = latent @ proj
        betas = np.concatenate([clean, clean, rng.standard_normal((1, n_vox))]) \
            + 1.5 * rng.standard_normal((len(order), n_vox))
        labels = np.repeat([1, 2], n_vox // 2).astype(np.int16)
        ijk = np.stack(np.unravel_index(np.arange(n_vox), (4, 5, 2)), 1)
        path = root / f"sub{k + 1}.zarr"
        write_voxel_store(path, betas, _trials(order), ijk, (4, 5, 2), np.eye(4),
                          rois={"atlas": (labels, {1: "V1", 2: "LO"})}, attrs={"subject": f"subj0{k + 1}"})
        stores.append((path, stim, order, betas, labels))
    feats = {"conv": latent @ rng.standard_normal((6, 30)) + 0.5 * rng.standard_normal((N_STIM, 30)),
             "fc": rng.standard_normal((N_STIM, 8))}
    cache_stim = np.concatenate([np.arange(N_STIM) * 10, [5000]])
    cache = _feature_cache(root / "netA.zarr", cache_stim,
                           {k: np.concatenate([v, rng.standard_normal((1, v.shape[1]))]) for k, v in feats.items()})
    return root, stores, cache, feats


def test_fmri_mode_matches_rsatoolbox(fmri_setup, tmp_path):
    root, stores, cache, feats = fmri_setup
    out = tmp_path / "out"
    rc = main(["rsa", "--features", str(cache), "--stores", *[str(s[0]) for s in stores],
               "--rois", "atlas/V1", "atlas/LO", "--trained-on", "subj02", "--n-boot", "50", "--out", str(out)])
    assert rc == 0
    df = pd.read_parquet(out / "rsa_fmri.parquet")
    assert list(df.columns) == ["model", "layer", "roi", "subject", "relation", "method", "value", "ci_low",
                                "ci_high", "nc_low", "nc_high"]
    assert (out / "rsa_fmri.png").stat().st_size > 1000
    per = df[df.subject != "mean"]
    assert len(per) == 2 * 3 * 2  # layers x subjects x ROIs
    assert set(per[per.subject == "subj02"].relation) == {"within"}
    assert set(per[per.subject != "subj02"].relation) == {"across"}
    # independent reference: rsatoolbox on the repetition-averaged betas of the 14 shared stimuli
    brain = {}
    for path, stim, order, betas, labels in stores:
        subj = f"subj0{int(path.stem[-1])}"
        for roi, lab in (("atlas/V1", 1), ("atlas/LO", 2)):
            ds = Dataset(betas[:, labels == lab].astype(np.float32).astype(float),
                         obs_descriptors={"stim": order})
            ds = ds.subset_obs("stim", stim)
            brain[subj, roi] = calc_rdm(ds, method="correlation", descriptor="stim")
    for layer, f in feats.items():
        model = calc_rdm(Dataset(f.astype(np.float32).astype(float)), method="correlation")
        for (subj, roi), rdm in brain.items():
            row = per[(per.layer == layer) & (per.subject == subj) & (per.roi == roi)]
            assert row.value.item() == pytest.approx(compare(model, rdm, "spearman").item(), abs=1e-5)
            assert row.ci_low.item() <= row.value.item() + 0.05 and row.ci_high.item() >= row.value.item() - 0.05
    for roi in ("atlas/V1", "atlas/LO"):
        vecs = np.concatenate([brain[f"subj0{k}", roi].get_vectors() for k in (1, 2, 3)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low, high = boot_noise_ceiling(RDMs(vecs), method="spearman")
        r = per[per.roi == roi]
        assert r.nc_low.iloc[0] == pytest.approx(low, abs=1e-5) and r.nc_high.iloc[0] == pytest.approx(high, abs=1e-5)
    mean = df[(df.subject == "mean") & (df.relation == "across") & (df.layer == "conv") & (df.roi == "atlas/V1")]
    assert mean.value.item() == pytest.approx(
        per[(per.relation == "across") & (per.layer == "conv") & (per.roi == "atlas/V1")].value.mean())
    # the planted shared structure is visible in conv, not in the random fc layer
    assert per[per.layer == "conv"].value.mean() > per[per.layer == "fc"].value.mean() + 0.2
    with np.load(out / "rdms_fmri.npz") as z:
        assert z["brain/subj01/atlas/V1"].shape == (N_STIM * (N_STIM - 1) // 2,)
        assert list(z["stimulus_ids"]) == [str(s) for s in np.arange(N_STIM) * 10]


def test_fmri_bad_input_writes_nothing(fmri_setup, tmp_path, capsys):
    root, stores, cache, _ = fmri_setup
    out = tmp_path / "out"
    args = ["rsa", "--features", str(cache), "--stores", *[str(s[0]) for s in stores], "--out", str(out)]
    assert main(args + ["--rois", "atlas/V9"]) == 2
    assert "atlas/V9" in capsys.readouterr().err
    assert main(args + ["--rois", "atlas/V1", "--trained-on", "nobody"]) == 2
    assert main(args + ["--rois", "atlas/V1", "--layers", "nope"]) == 2
    assert not out.exists()


def test_eeg_mode_finds_planted_window(tmp_path):
    rng = np.random.default_rng(1)
    n_stim, n_reps, n_chan, n_t = 16, 4, 6, 30
    latent = rng.standard_normal((n_stim, n_chan))
    times = np.linspace(-0.1, 0.48, n_t)
    stim = np.arange(n_stim)
    paths = []
    for k in range(8):
        data = rng.standard_normal((n_stim, n_reps, n_chan, n_t))
        data[..., 12:20] += 1.2 * latent[:, None, :, None]  # stimulus information from t index 12 to 19
        order = np.repeat(stim[None], n_reps, 0).T.ravel()  # condition-major trials
        eeg = data.reshape(n_stim * n_reps, n_chan, n_t)
        path = tmp_path / f"sub-{k + 1:02d}.zarr"
        write_eeg_store(path, eeg, _trials(order), [f"ch{c}" for c in range(n_chan)], times,
                        attrs={"subject": f"sub-{k + 1:02d}"})
        paths.append(str(path))
    a = _feature_cache(tmp_path / "good.zarr", stim, {"IT": latent @ rng.standard_normal((n_chan, 20))})
    b = _feature_cache(tmp_path / "bad.zarr", stim, {"IT": rng.standard_normal((n_stim, 20))})
    out = tmp_path / "out"
    rc = main(["rsa", "--features", str(a), str(b), "--eeg-stores", *paths, "--n-permutations", "500",
               "--n-boot", "100", "--out", str(out)])
    assert rc == 0
    df = pd.read_parquet(out / "rsa_eeg.parquet")
    assert {"time", "value", "nc_low", "nc_high", "ci_low"} <= set(df.columns)
    assert len(df[df.subject != "mean"]) == 2 * 8 * n_t
    clusters = pd.read_parquet(out / "rsa_eeg_clusters.parquet")
    good = clusters[(clusters.model == "good") & (clusters.versus == "zero") & clusters.significant]
    assert len(good) >= 1
    assert good.start_index.min() >= 10 and good.stop_index.max() <= 22
    paired = clusters[(clusters.versus == "bad") & clusters.significant]
    assert len(paired) >= 1 and (paired.sign == 1).all()
    assert (out / "rsa_eeg.png").stat().st_size > 1000
    mean = df[(df.subject == "mean") & (df.model == "good")].sort_values("time")
    assert (mean.ci_low.to_numpy()[14:18] > 0).all()
    assert (mean.nc_high.to_numpy()[14:18] > mean.value.to_numpy()[14:18]).all()
