"""``brainalign rsa`` end to end on hand-built stores and feature caches (layouts from docs/DEVELOPING.md)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from rsatoolbox.data import Dataset
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import RDMs, calc_rdm, compare
from scipy.spatial.distance import pdist
from rsa_inputs import trial_table, write_feature_cache, write_two_roi_store

from brainalign.cli import main
from brainalign.store import write_eeg_store

N_STIM = 14


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
        path = root / f"sub{k + 1}.zarr"
        labels = write_two_roi_store(path, betas, trial_table(order), (4, 5, 2), {"subject": f"subj0{k + 1}"})
        stores.append((path, stim, order, betas, labels))
    feats = {"conv": latent @ rng.standard_normal((6, 30)) + 0.5 * rng.standard_normal((N_STIM, 30)),
             "fc": rng.standard_normal((N_STIM, 8))}
    cache_stim = np.concatenate([np.arange(N_STIM) * 10, [5000]])
    cache = write_feature_cache(root / "netA.zarr", cache_stim,
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
        write_eeg_store(path, eeg, trial_table(order), [f"ch{c}" for c in range(n_chan)], times,
                        attrs={"subject": f"sub-{k + 1:02d}"})
        paths.append(str(path))
    a = write_feature_cache(tmp_path / "good.zarr", stim, {"IT": latent @ rng.standard_normal((n_chan, 20))})
    b = write_feature_cache(tmp_path / "bad.zarr", stim, {"IT": rng.standard_normal((n_stim, 20))})
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


# ---------------------------------------------------------------- crossnobis across repetitions
@pytest.fixture(scope="module")
def fmri_reps_setup(tmp_path_factory):
    """Three subjects, 3 repetitions of 12 stimuli in shuffled trial order; subj03 saw stimulus 50 only twice."""
    root = tmp_path_factory.mktemp("rsa_cv")
    rng = np.random.default_rng(7)
    n_stim, n_vox = 12, 30
    stim = np.arange(n_stim) * 10
    latent = rng.standard_normal((n_stim, 5))
    stores = []
    for k in range(3):
        order = np.concatenate([stim, stim, stim])
        if k == 2:
            order = order[:-n_stim + 5].tolist() + order[-n_stim + 6:].tolist()  # drop the 3rd showing of 50
            order = np.asarray(order)
        order = order[rng.permutation(len(order))]
        clean = latent @ rng.standard_normal((5, n_vox))
        betas = clean[order // 10] + 1.0 * rng.standard_normal((len(order), n_vox)) + 4.0
        path = root / f"sub{k + 1}.zarr"
        labels = write_two_roi_store(path, betas, trial_table(order), (5, 3, 2), {"subject": f"subj0{k + 1}"})
        stores.append((path, order, betas, labels))
    feats = {"conv": latent @ rng.standard_normal((5, 20)) + 0.3 * rng.standard_normal((n_stim, 20))}
    cache = write_feature_cache(root / "netA.zarr", stim, feats)
    return stores, cache, feats, stim


def _rsatoolbox_crossnobis(betas, order, labels, lab, keep, n_folds):
    """rsatoolbox crossnobis RDM, folds = repetition rank modulo n_folds, on the stimuli in ``keep``."""
    rank = pd.Series(order).groupby(order).cumcount().to_numpy()
    ds = Dataset(betas[:, labels == lab].astype(np.float32).astype(float),
                 obs_descriptors={"stim": order, "fold": rank % n_folds})
    ds = ds.subset_obs("stim", keep)
    with warnings.catch_warnings():  # rsatoolbox fills an int descriptor with NaN internally
        warnings.simplefilter("ignore", RuntimeWarning)
        return calc_rdm(ds, method="crossnobis", descriptor="stim", cv_descriptor="fold")


@pytest.mark.parametrize("cv_folds", [None, 3])
def test_fmri_crossnobis_matches_rsatoolbox(fmri_reps_setup, tmp_path, cv_folds):
    stores, cache, feats, stim = fmri_reps_setup
    out = tmp_path / "out"
    args = ["rsa", "--features", str(cache), "--stores", *[str(s[0]) for s in stores], "--rois", "atlas/V1",
            "atlas/LO", "--rdm-method", "crossnobis", "--n-boot", "0", "--out", str(out)]
    assert main(args + (["--cv-folds", str(cv_folds)] if cv_folds else [])) == 0
    df = pd.read_parquet(out / "rsa_fmri.parquet")
    per = df[df.subject != "mean"]
    # default: every stimulus (subj03 has 2 folds, as one stimulus has 2 showings); --cv-folds 3: stimulus 50 left out
    keep = stim if cv_folds is None else stim[stim != 50]
    folds = [3, 3, 2] if cv_folds is None else [3, 3, 3]
    model = calc_rdm(Dataset(feats["conv"][np.isin(stim, keep)].astype(np.float32).astype(float)), method="euclidean")
    with np.load(out / "rdms_fmri.npz") as z:
        assert list(z["stimulus_ids"]) == [str(s) for s in keep]
        assert str(z["rdm_method"]) == "crossnobis" and str(z["model_rdm_method"]) == "euclidean"
        assert list(z["cv_folds"]) == folds
        np.testing.assert_allclose(z["model/netA/conv"], model.get_vectors()[0], rtol=1e-5, atol=1e-6)
        negative = False
        for k, (path, order, betas, labels) in enumerate(stores):
            for roi, lab in (("atlas/V1", 1), ("atlas/LO", 2)):
                ref = _rsatoolbox_crossnobis(betas, order, labels, lab, keep, folds[k])
                ours = z[f"brain/subj0{k + 1}/{roi}"]
                vec = ref.get_vectors()[0]
                np.testing.assert_allclose(ours, vec, rtol=1e-4, atol=1e-5 * np.abs(vec).max())
                negative |= bool((vec < 0).any())
                row = per[(per.subject == f"subj0{k + 1}") & (per.roi == roi)]
                assert row.value.item() == pytest.approx(compare(model, ref, "spearman").item(), abs=1e-5)
    # crossnobis is unbiased: with this much noise some entries fall below zero, and we reproduce them
    assert negative


def test_crossnobis_options_are_checked(fmri_reps_setup, tmp_path, capsys):
    stores, cache, _, _ = fmri_reps_setup
    out = tmp_path / "out"
    args = ["rsa", "--features", str(cache), "--stores", *[str(s[0]) for s in stores], "--rois", "atlas/V1",
            "--out", str(out)]
    assert main(args + ["--cv-folds", "3"]) == 2  # --cv-folds without crossnobis
    assert main(args + ["--rdm-method", "crossnobis", "--cv-folds", "4"]) == 2  # nobody saw anything 4 times
    assert "repetitions" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- object dimensions
@pytest.fixture(scope="module")
def dimension_setup(fmri_setup):
    """Two CORnet-like caches on the fMRI fixture's stimuli: 'realnet' encodes the category, the initial one less."""
    root, stores, _, _ = fmri_setup
    rng = np.random.default_rng(3)
    stim = np.arange(N_STIM) * 10
    category = np.array(["faces", "places", "words"])[np.arange(N_STIM) % 3]
    onehot = (category[:, None] == np.array(["faces", "places", "words"])).astype(float)
    size = rng.standard_normal(N_STIM)
    feats = {}
    for name, gain in (("cornet_s-initial", 0.3), ("realnet", 3.0)):
        feats[name] = {layer: gain * onehot @ rng.standard_normal((3, 25)) + rng.standard_normal((N_STIM, 25))
                       for layer in ("V1", "IT")}
        write_feature_cache(root / f"{name}.zarr", stim, feats[name])
    table = pd.DataFrame({"stimulus": np.concatenate([stim, [777]]),
                          "category": np.concatenate([category, ["faces"]]),
                          "size": np.concatenate([size, [0.0]])})
    return root, stores, feats, table, onehot, size


@pytest.mark.parametrize("fmt", ["parquet", "tsv"])
def test_dimension_analysis_matches_scipy(dimension_setup, tmp_path, fmt):
    root, stores, feats, table, onehot, size = dimension_setup
    path = tmp_path / f"dims.{fmt}"
    if fmt == "parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, sep="\t", index=False)
    out = tmp_path / "out"
    assert main(["rsa", "--features", str(root / "cornet_s-initial.zarr"), str(root / "realnet.zarr"),
                 "--stores", *[str(s[0]) for s in stores], "--rois", "atlas/V1", "--n-boot", "100",
                 "--dimensions", str(path), "--out", str(out)]) == 0
    dims = pd.read_parquet(out / "dimensions.parquet")
    assert (out / "dimensions.png").stat().st_size > 1000
    assert set(dims.dimension) == {"faces", "places", "words", "size", "all"}
    assert (dims.n_stimuli == N_STIM).all() and (dims.baseline == "cornet_s-initial").all()
    scores = np.column_stack([onehot, size])
    ref = {}
    for model, layers in feats.items():
        for layer, f in layers.items():
            rdm = calc_rdm(Dataset(f.astype(np.float32).astype(float)), method="correlation").get_vectors()[0]
            for d, dname in enumerate(["faces", "places", "words", "size"]):
                ref[model, layer, dname] = scipy.stats.spearmanr(rdm, pdist(scores[:, d:d + 1], "cityblock"))[0]
    per = dims[dims.layer != "all"].set_index(["model", "layer", "dimension"])
    for key, r in ref.items():
        assert per.loc[key, "value"] == pytest.approx(r, abs=1e-5)
        if key[0] == "realnet":
            assert per.loc[key, "diff"] == pytest.approx(r - ref[("cornet_s-initial",) + key[1:]], abs=1e-5)
            assert per.loc[key, "diff_ci_low"] <= per.loc[key, "diff"] + 1e-9 <= per.loc[key, "diff_ci_high"] + 2e-9
        else:
            assert np.isnan(per.loc[key, "diff"])
    summary = dims[(dims.layer == "all") & (dims.model == "realnet")].iloc[0]
    diffs = [ref[k] - ref[("cornet_s-initial",) + k[1:]] for k in ref if k[0] == "realnet"]
    assert summary["diff"] == pytest.approx(np.mean(diffs), abs=1e-5)
    # the planted category code: realnet's layers separate the categories more than the initial model's
    cat = [k for k in ref if k[0] == "realnet" and k[2] != "size"]
    assert np.mean([per.loc[k, "diff"] for k in cat]) > 0.1 and summary["diff_ci_low"] > 0


def test_dimension_table_errors(dimension_setup, tmp_path, capsys):
    root, stores, _, table, _, _ = dimension_setup
    out = tmp_path / "out"
    args = ["rsa", "--features", str(root / "cornet_s-initial.zarr"), "--stores", *[str(s[0]) for s in stores],
            "--rois", "atlas/V1", "--n-boot", "0", "--out", str(out)]
    bad = tmp_path / "no_stimulus.csv"
    table.drop(columns="stimulus").to_csv(bad, index=False)
    assert main(args + ["--dimensions", str(bad)]) == 2
    assert "no_stimulus.csv" in capsys.readouterr().err
    text = tmp_path / "text.csv"
    table.assign(size="big").to_csv(text, index=False)
    assert main(args + ["--dimensions", str(text)]) == 2
    assert "numeric" in capsys.readouterr().err
    other = tmp_path / "other_ids.parquet"
    table.assign(stimulus=np.arange(len(table)) + 5000).to_parquet(other)
    assert main(args + ["--dimensions", str(other)]) == 2
    good = tmp_path / "good.parquet"
    table.to_parquet(good)
    assert main(args + ["--dimensions", str(good), "--dimension-baseline", "nobody"]) == 2
    assert not out.exists()


def test_eeg_crossnobis_matches_rsatoolbox(tmp_path):
    rng = np.random.default_rng(5)
    n_stim, n_reps, n_chan, n_t = 9, 3, 5, 4
    stim = np.arange(n_stim)
    latent = rng.standard_normal((n_stim, n_chan, n_t))
    order = np.tile(stim, n_reps)[rng.permutation(n_stim * n_reps)]
    paths, data = [], []
    for k in range(2):
        eeg = latent[order] + rng.standard_normal((len(order), n_chan, n_t))
        path = tmp_path / f"sub-{k + 1:02d}.zarr"
        write_eeg_store(path, eeg, trial_table(order), [f"ch{c}" for c in range(n_chan)], np.linspace(0, 0.3, n_t),
                        attrs={"subject": f"sub-{k + 1:02d}"})
        paths.append(str(path))
        data.append(eeg)
    cache = write_feature_cache(tmp_path / "net.zarr", stim, {"IT": rng.standard_normal((n_stim, 12))})
    out = tmp_path / "out"
    assert main(["rsa", "--features", str(cache), "--eeg-stores", *paths, "--rdm-method", "crossnobis",
                 "--n-permutations", "10", "--n-boot", "0", "--out", str(out)]) == 0
    rank = pd.Series(order).groupby(order).cumcount().to_numpy()
    with np.load(out / "rdms_eeg.npz") as z:
        assert list(z["cv_folds"]) == [n_reps, n_reps]
        for k, eeg in enumerate(data):
            for t in range(n_t):
                ds = Dataset(eeg[..., t].astype(np.float32).astype(float), obs_descriptors={"stim": order, "rep": rank})
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ref = calc_rdm(ds, method="crossnobis", descriptor="stim", cv_descriptor="rep").get_vectors()[0]
                np.testing.assert_allclose(z["eeg"][k, t], ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


# ---------------------------------------------------------------- the pipeline functions, called without argparse
def test_run_fmri_rsa_euclidean_corr_matches_rsatoolbox(fmri_setup, tmp_path):
    from brainalign.rsa.pipeline import run_fmri_rsa

    root, stores, cache, feats = fmri_setup
    out = tmp_path / "out"
    result = run_fmri_rsa([cache], [s[0] for s in stores[:2]], ["atlas/LO"], out, layers=["conv"],
                          rdm_method="euclidean", method="corr", n_boot=0, device="cpu")
    assert result["dimensions"] is None
    pd.testing.assert_frame_equal(result["rsa"], pd.read_parquet(out / "rsa_fmri.parquet"))
    per = result["rsa"][result["rsa"].subject != "mean"]
    assert per.ci_low.isna().all() and set(per.relation) == {"across"}
    model = calc_rdm(Dataset(feats["conv"].astype(np.float32).astype(float)), method="euclidean")
    brain = []
    for path, stim, order, betas, labels in stores[:2]:
        ds = Dataset(betas[:, labels == 2].astype(np.float32).astype(float), obs_descriptors={"stim": order})
        brain.append(calc_rdm(ds.subset_obs("stim", stim), method="euclidean", descriptor="stim"))
        row = per[per.subject == f"subj0{int(path.stem[-1])}"]
        assert row.value.item() == pytest.approx(compare(model, brain[-1], "corr").item(), abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low, high = boot_noise_ceiling(RDMs(np.concatenate([b.get_vectors() for b in brain])), method="corr")
    assert per.nc_low.iloc[0] == pytest.approx(low, abs=1e-5) and per.nc_high.iloc[0] == pytest.approx(high, abs=1e-5)


def test_run_fmri_rsa_checks_options_before_writing(fmri_setup, tmp_path):
    import torch

    from brainalign.errors import InputError
    from brainalign.rsa.pipeline import run_fmri_rsa

    _, stores, cache, _ = fmri_setup
    out = tmp_path / "out"
    paths = [s[0] for s in stores]
    for kwargs, option in (({"method": "pearson"}, "--method"), ({"rdm_method": "mahalanobis"}, "--rdm-method"),
                           ({"model_rdm_method": "crossnobis"}, "--model-rdm-method"), ({"ci": 1.5}, "--ci"),
                           ({"rois": []}, "--rois")):
        args = {"rois": ["atlas/V1"], **kwargs}
        with pytest.raises(InputError, match=option):
            run_fmri_rsa([cache], paths, out=out, n_boot=0, **args)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device"):
            run_fmri_rsa([cache], paths, ["atlas/V1"], out, n_boot=0, device="cuda")
    assert not out.exists()


def test_run_eeg_rsa_one_subject(tmp_path):
    """One subject: curves and RDMs, but no noise ceiling and an empty (typed) cluster table."""
    from brainalign.rsa.pipeline import CLUSTER_COLUMNS, run_eeg_rsa

    rng = np.random.default_rng(11)
    n_stim, n_reps, n_chan, n_t = 8, 2, 4, 6
    stim = np.arange(n_stim)
    order = np.tile(stim, n_reps)
    eeg = rng.standard_normal((len(order), n_chan, n_t))
    write_eeg_store(tmp_path / "sub-01.zarr", eeg, trial_table(order), [f"ch{c}" for c in range(n_chan)],
                    np.linspace(0, 0.5, n_t), attrs={"subject": "sub-01"})
    feats = rng.standard_normal((n_stim, 10))
    cache = write_feature_cache(tmp_path / "net.zarr", stim, {"IT": feats})
    out = tmp_path / "out"
    result = run_eeg_rsa([cache], [tmp_path / "sub-01.zarr"], out, n_boot=0, time_range=(0.1, 0.5), window=2,
                         device="cpu")
    assert list(result["clusters"].columns) == CLUSTER_COLUMNS and result["clusters"].empty
    df = result["rsa"]
    per = df[df.subject != "mean"]
    assert per.nc_low.isna().all() and len(per) == 4  # times 0.1..0.5: 5 samples, windows of 2 -> 4
    model = calc_rdm(Dataset(feats.astype(np.float32).astype(float)), method="correlation")
    means = eeg.reshape(n_reps, n_stim, n_chan, n_t).mean(axis=0)  # condition-major repetition average
    keep = np.flatnonzero(np.linspace(0, 0.5, n_t) >= 0.1 - 1e-9)
    for w, row in enumerate(per.sort_values("time").itertuples()):
        pattern = means[..., keep[w:w + 2]].mean(axis=-1)
        ref = calc_rdm(Dataset(pattern.astype(np.float32).astype(float)), method="correlation")
        assert row.value == pytest.approx(compare(model, ref, "spearman").item(), abs=1e-5)
        assert row.time == pytest.approx(np.linspace(0, 0.5, n_t)[keep[w:w + 2]].mean())
    assert (out / "rsa_eeg_clusters.parquet").exists() and (out / "rdms_eeg.npz").exists()
