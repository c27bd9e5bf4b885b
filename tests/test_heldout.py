"""Held-out discipline across the evaluation stages: a feature cache whose training record (docs/training.md)
holds an evaluated stimulus is refused, with the model named, by encoding, RSA (fMRI and EEG) and the synthetic
evaluation (NeuroFusionNet's held-out check: tests/test_training_heldout.py); the evaluation set of RSA is the
stores' shared-flagged stimuli or the user's list.

Stores and feature caches are written here straight from their documented formats (docs/store.md,
docs/features.md), with a planted training record.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import zarr
from rsa_inputs import write_two_roi_store

from brainalign.errors import InputError
from brainalign.features import open_feature_cache
from brainalign.heldout import (check_disjoint, evaluation_stimuli, record_info, training_record,
                                write_training_record)
from brainalign.store import open_voxel_store, write_eeg_store

N_STIM, SHARED_FROM = 40, 30  # stimuli 30..39 are the shared (test) images
#: a model trained on non-shared images only, and one whose record leaks two shared images into training
CLEAN = training_record(range(0, 24), range(24, 30), "subj01")
LEAKY = training_record(list(range(0, 20)) + [31, 37], range(20, 26), "subj01")


def _trials(n_reps=2):
    stim = np.repeat(np.arange(N_STIM), n_reps)
    return pd.DataFrame({"session": 1, "trial": np.arange(1, len(stim) + 1), "stimulus": stim,
                         "repetition": np.tile(np.arange(n_reps), N_STIM), "shared": stim >= SHARED_FROM})


def _cache(path, features, record=None):
    """A finished feature cache from the documented layout; with ``record``, a trained model's (its training
    record copied in and named in the attrs)."""
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("layers/l1", data=np.asarray(features, dtype=np.float32))
    attrs = {"format": "brainalign.feature_cache/1", "complete": True, "layers": ["l1"], "weights": "random",
             "weights_origin": "random", "training": None}
    if record is not None:
        write_training_record(path / "training_stimuli.parquet", record)
        attrs.update(weights=f"checkpoint:{path.stem}.pt", training={"method": "realnet",
                                                                     "record": record_info(record)})
    g.attrs.update(attrs)
    pd.DataFrame({"stimulus": np.arange(N_STIM, dtype=np.int64)}).to_parquet(path / "stimuli.parquet")
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N_STIM, 5))
    n_vox = 30
    stores = []
    for k in (1, 2):
        trials = _trials()
        betas = (latent @ rng.standard_normal((5, n_vox)))[trials["stimulus"]] + rng.standard_normal((len(trials), n_vox))
        path = root / f"subj0{k}.zarr"
        write_two_roi_store(path, betas, trials, (3, 5, 2), {"dataset": "nsd", "subject": f"subj0{k}"})
        stores.append(path)
    feats = latent @ rng.standard_normal((5, 12)) + 0.3 * rng.standard_normal((N_STIM, 12))
    caches = {name: _cache(root / f"{name}.zarr", feats + 0.1 * k, record)
              for k, (name, record) in enumerate((("untrained", None), ("clean", CLEAN), ("leaky", LEAKY)))}
    return {"root": root, "stores": stores, "caches": caches}


def test_cache_exposes_its_training_record(inputs):
    assert open_feature_cache(inputs["caches"]["untrained"]).training_stimuli is None
    rec = open_feature_cache(inputs["caches"]["leaky"]).training_stimuli
    assert sorted(rec.loc[rec["role"] == "train", "stimulus"], key=int)[-2:] == ["31", "37"]
    # a cache whose copied record was altered is refused when opened
    bad = _cache(inputs["root"] / "altered.zarr", np.zeros((N_STIM, 3)), CLEAN)
    write_training_record(bad / "training_stimuli.parquet", LEAKY)
    with pytest.raises(InputError, match="not the one"):
        open_feature_cache(bad)


def test_check_disjoint_names_the_model_the_count_and_examples():
    check_disjoint(["30", "31"], [("clean", CLEAN), ("untrained", None)], where="test stimuli")
    with pytest.raises(InputError) as err:
        check_disjoint([str(i) for i in range(30, 40)], [("clean", CLEAN), ("leaky", LEAKY)], where="test stimuli")
    msg = str(err.value)
    assert msg.startswith("leaky:") and "2 of the 10 test stimuli" in msg and "['31', '37']" in msg
    assert "train: 2" in msg and "subj01" in msg
    with pytest.raises(InputError, match="1 of the 2"):  # ids compared as strings; plain id lists work too
        check_disjoint([5, 31], [("encoder", ["5", "6"])], where="scored stimuli")


def test_evaluation_set_is_the_shared_images_or_the_users_list(inputs, tmp_path):
    stores = [open_voxel_store(p) for p in inputs["stores"]]
    caches = [open_feature_cache(inputs["caches"][n]) for n in ("untrained", "clean")]
    assert evaluation_stimuli(stores, caches, inputs["stores"]) == [str(i) for i in range(30, 40)]
    listed = tmp_path / "ids.txt"
    listed.write_text("35\n31\n33\n")
    assert evaluation_stimuli(stores, caches, inputs["stores"], listed) == ["31", "33", "35"]
    listed.write_text("35\n31\n99\n")
    with pytest.raises(InputError, match="1 of the 3 listed"):
        evaluation_stimuli(stores, caches, inputs["stores"], listed)
    with pytest.raises(InputError, match="used to train or select"):  # the user's list is checked too
        evaluation_stimuli(stores, caches, inputs["stores"], ["2", "30", "31"])


def test_encoding_refuses_a_cache_trained_on_its_test_images(inputs, tmp_path):
    from brainalign.encoding.pipeline import run_encoding

    kwargs = dict(split="nsd-shared", n_folds=3, solver="himalaya", device="cpu", figure=False)
    with pytest.raises(InputError) as err:
        run_encoding(inputs["stores"][1], inputs["caches"]["leaky"], tmp_path / "leaky", **kwargs)
    assert "leaky.zarr" in str(err.value) and "2 of the 10" in str(err.value)
    assert not (tmp_path / "leaky").exists()
    summary = run_encoding(inputs["stores"][1], inputs["caches"]["clean"], tmp_path / "clean", **kwargs)
    assert summary["n_test"] == 10  # the ridge is fitted on the model's training images: allowed, not a score


def test_rsa_runs_on_the_held_out_set_and_refuses_a_leaky_model(inputs, tmp_path):
    from brainalign.rsa.pipeline import run_fmri_rsa

    caches = [inputs["caches"][n] for n in ("untrained", "clean")]
    kwargs = dict(rois=["atlas/V1", "atlas/LO"], n_boot=0, device="cpu", trained_on="subj01")
    run_fmri_rsa(caches, inputs["stores"], out=tmp_path / "ok", **kwargs)
    rdms = np.load(tmp_path / "ok" / "rdms_fmri.npz")
    assert rdms["stimulus_ids"].tolist() == [str(i) for i in range(30, 40)]  # not the 30 training images
    with pytest.raises(InputError) as err:
        run_fmri_rsa(caches + [inputs["caches"]["leaky"]], inputs["stores"], out=tmp_path / "no", **kwargs)
    assert "leaky.zarr" in str(err.value) and "RSA evaluation stimuli" in str(err.value)
    assert not (tmp_path / "no").exists()


def test_eeg_rsa_refuses_a_leaky_model(inputs, tmp_path):
    from brainalign.rsa.pipeline import run_eeg_rsa

    trials = _trials()
    eeg = np.random.default_rng(1).standard_normal((len(trials), 3, 4))
    paths = [write_eeg_store(tmp_path / f"sub-0{k}.zarr", eeg + k, trials, ["a", "b", "c"], np.linspace(0, .3, 4),
                             attrs={"subject": f"sub-0{k}"}) for k in (1, 2)]
    with pytest.raises(InputError, match="used to train or select"):
        run_eeg_rsa([inputs["caches"]["leaky"]], paths, tmp_path / "eeg", n_boot=0, n_permutations=10, device="cpu")
    assert not (tmp_path / "eeg").exists()


def test_synthetic_evaluation_refuses_images_its_encoder_was_fitted_on(inputs, tmp_path):
    from brainalign.encoding.pipeline import run_encoding
    from brainalign.synthetic.pipeline import run_evaluation

    encoder = tmp_path / "enc"
    run_encoding(inputs["stores"][0], inputs["caches"]["untrained"], encoder, split="nsd-shared", n_folds=3,
                 solver="himalaya", device="cpu", figure=False)
    meta_path = encoder / "encoder" / "encoder.json"
    meta = json.loads(meta_path.read_text())
    assert not set(meta["train_stimuli"]) & set(meta["test_stimuli"])
    meta["train_stimuli"].append(meta["test_stimuli"][0])  # an encoder fitted on one of the scored images
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="1 of the 10 real stimuli"):
        run_evaluation(encoder / "encoder", inputs["stores"][0], inputs["stores"][0], tmp_path / "eval", figure=False)
    assert not (tmp_path / "eval").exists()
