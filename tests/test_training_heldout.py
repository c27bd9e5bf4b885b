"""Held-out discipline in training: the training records, the leak tests (noise in place of every held-out
response leaves the trained weights and the chosen epoch bit-identical), NeuroFusionNet's refusal of a trained
held-out subject and its shuffled-pairs control, ReAlnet's beta search, and the frozen classifier that lets DDP
train NeuroFusionNet.

Stand-in backbone (TinyCORnet) and the in-memory stores of the other training tests.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_training_neurofusion import ROIS, FakeImages as NFImages, FakeNSDStore
from test_training_realnet import FakeImages, FakeStore, factory, tiny_cfg

from brainalign.errors import InputError
from brainalign.heldout import TRAINING_RECORD, read_training_record, record_sha256
from brainalign.layout import ResultsLayout
from brainalign.training.config import make_config
from brainalign.training.neurofusion import NeuroFusionNet, token_roi_weights, window_mean_coords
from brainalign.training.neurofusion_train import prepare_subject, shuffle_subject_pairs, train_neurofusion
from brainalign.training.realnet_train import train_realnet
from brainalign.training.standin import TinyCORnet


def with_noise(store, stimuli=None, seed=99):
    """The store with the responses to ``stimuli`` (default: every stimulus) replaced by independent noise."""
    rows = np.ones(len(store.trials), bool) if stimuli is None else store.trials["stimulus"].isin(stimuli).to_numpy()
    noise = np.random.default_rng(seed).normal(size=store._b.shape if hasattr(store, "_b") else store._betas.shape)
    betas = store._b if hasattr(store, "_b") else store._betas
    betas[rows] = noise[rows].astype(np.float32)
    return store


def shared_ids(store):
    t = store.trials
    return sorted(set(t.loc[t["shared"], "stimulus"]))


def states(run):
    return {name: torch.load(run / "checkpoints" / name, weights_only=False)["model"] for name in ("best.pt", "last.pt")}


def assert_identical_weights(a, b):
    sa, sb = states(a), states(b)
    for name in sa:
        assert sa[name].keys() == sb[name].keys()
        for key in sa[name]:
            assert torch.equal(sa[name][key], sb[name][key]), f"{name}: {key}"


# ----------------------------------------------------------------------------------------- ReAlnet-fMRI
@pytest.fixture(scope="module")
def realnet_runs(tmp_path_factory):
    """The same tiny training twice: on the store as is, and with every test (shared) response replaced by noise."""
    root = tmp_path_factory.mktemp("realnet_leak")
    cfg = tiny_cfg(epochs=2, keep_checkpoints=True)  # the leak tests compare the runs' checkpoints
    clean = train_realnet(FakeStore(), FakeImages(), root / "clean", cfg, backbone_factory=factory)
    store = FakeStore()
    noisy = train_realnet(with_noise(store, shared_ids(store)), FakeImages(), root / "noisy", cfg,
                          backbone_factory=factory)
    return root, clean, noisy


def test_realnet_record_lists_train_and_val_images_and_its_export_names_it(realnet_runs):
    root, summary, _ = realnet_runs
    tmp_path, store = root / "clean", FakeStore()
    assert ResultsLayout(".").training_record(str(tmp_path)) == str(tmp_path / TRAINING_RECORD)
    record = pd.read_parquet(tmp_path / TRAINING_RECORD)
    assert list(record.columns) == ["stimulus", "role", "subject"]
    assert all(isinstance(v, str) for v in record["stimulus"])
    split = np.load(tmp_path / "targets.npz")
    assert sorted(record.loc[record["role"] == "train", "stimulus"]) == sorted(split["train_ids"].tolist())
    assert sorted(record.loc[record["role"] == "val", "stimulus"]) == sorted(split["val_ids"].tolist())
    assert set(record["subject"]) == {"s0"}
    assert not set(record["stimulus"]) & {str(i) for i in shared_ids(store)}  # the test images are not in it
    meta = torch.load(tmp_path / "backbone.pt", weights_only=True)["meta"]
    assert meta["training_record"]["sha256"] == record_sha256(record) == summary["training_record"]["sha256"]
    assert meta["initial_weights"] == summary["initial_weights"] == "backbone_factory"
    assert summary["teacher"]["weights"] == "backbone_factory" and summary["teacher"]["mode"] == "eval"


def test_realnet_leak_noise_in_held_out_responses_changes_nothing_trained(realnet_runs):
    """Replacing every test (shared) response by noise leaves the trained weights, the selected epoch and the
    validation curve bit-identical; only the test scores move."""
    tmp_path, clean, noisy = realnet_runs
    assert noisy["best_epoch"] == clean["best_epoch"]
    assert_identical_weights(tmp_path / "clean", tmp_path / "noisy")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "clean/metrics.csv").drop(columns=["train_seconds",
                                                                                            "images_per_s"]),
                                  pd.read_csv(tmp_path / "noisy/metrics.csv").drop(columns=["train_seconds",
                                                                                            "images_per_s"]))
    assert noisy["test"]["pattern_r"] != clean["test"]["pattern_r"]  # the noise did reach the test set


def test_beta_search_keeps_the_best_validation_alignment(tmp_path):
    cfg = tiny_cfg(epochs=1, beta_grid=[0.5, 20])
    summary = train_realnet(FakeStore(), FakeImages(), tmp_path, cfg, backbone_factory=factory)
    search = summary["beta_search"]
    candidates = {c["beta"]: c for c in search["candidates"]}
    assert set(candidates) == {0.5, 20.0} and search["criterion"] == "val_pattern_r"
    for beta, c in candidates.items():  # each candidate's own run, scored on its validation images
        own = json.loads((tmp_path / "beta_search" / f"beta-{beta:g}" / "summary.json").read_text())
        assert own["beta"] == beta and c["val_pattern_r"] == own["val"]["pattern_r"]
    best = max(candidates.values(), key=lambda c: c["val_pattern_r"])["beta"]
    assert search["chosen"] == summary["beta"] == best
    chosen_dir = tmp_path / "beta_search" / f"beta-{best:g}"
    for name in ("backbone.pt", TRAINING_RECORD, "metrics.csv"):
        assert (tmp_path / name).read_bytes() == (chosen_dir / name).read_bytes(), name
    # the beta0 control has no beta to choose: one run, no search
    control = train_realnet(FakeStore(), FakeImages(), tmp_path / "beta0", tiny_cfg(epochs=1, beta_grid=[0.5, 20],
                                                                                     control="beta0"),
                            backbone_factory=factory)
    assert control["beta"] == 0 and "beta_search" not in control and not (tmp_path / "beta0/beta_search").exists()


# ----------------------------------------------------------------------------------------- NeuroFusionNet
def nf_cfg(**kw):
    values = dict(epochs=2, dim=16, heads=2, window=4, window_stride=2, image_size=32, batch_size=6,
                  rois=list(ROIS))
    values.update(kw)
    return make_config("neurofusion", "tiny", values)


def test_neurofusion_leak_noise_in_held_out_responses_changes_nothing_trained(tmp_path):
    """Noise in place of the training subjects' shared (test) responses and of every response of the held-out
    subject: the same trained weights and selected epoch; the held-out scores change."""
    runs = {}
    for name, noisy in (("clean", False), ("noisy", True)):
        stores = {"subj01": FakeNSDStore(1)}
        held = FakeNSDStore(3)
        if noisy:
            for s in stores.values():
                with_noise(s, shared_ids(s))
            with_noise(held)
        runs[name] = train_neurofusion(stores, NFImages(), tmp_path / name, nf_cfg(keep_checkpoints=True),
                                       heldout=held, backbone_factory=TinyCORnet)
    assert runs["clean"]["best_epoch"] == runs["noisy"]["best_epoch"]
    assert_identical_weights(tmp_path / "clean", tmp_path / "noisy")
    assert runs["clean"]["heldout"]["mean_pcc"] != runs["noisy"]["heldout"]["mean_pcc"]
    record = read_training_record(tmp_path / "clean" / TRAINING_RECORD)
    assert set(record["subject"]) == {"subj01"} and set(record["role"]) == {"train", "val"}
    assert sorted(record["stimulus"], key=int) == [str(i) for i in range(22)]  # its non-shared images
    # what a paired stimulus bootstrap needs: the held-out predictions, from which the stored PCCs follow
    pred = np.load(tmp_path / "clean" / "heldout_predictions.npz")
    pcc = np.load(tmp_path / "clean" / "heldout_voxel_pcc.npz")
    assert pred["stimulus"].tolist() == [str(i) for i in range(22, 30)]
    for which in ("trained", "initial"):
        reference = [np.corrcoef(pred[which][:, v], pred["measured"][:, v])[0, 1] for v in range(120)]
        np.testing.assert_allclose(pcc[which], reference, atol=1e-5)


def test_neurofusion_refuses_a_held_out_subject_it_trains_on(tmp_path):
    with pytest.raises(InputError, match="also a training subject"):
        train_neurofusion({"subj01": FakeNSDStore(1)}, NFImages(), tmp_path / "out", nf_cfg(),
                          heldout=FakeNSDStore(1), backbone_factory=TinyCORnet)
    # a held-out subject scored on images a training subject was trained on
    held = FakeNSDStore(3, n_shared=12)  # shared 18..29; subj01 trains and validates on 0..21
    with pytest.raises(InputError, match="used to train or select") as err:
        train_neurofusion({"subj01": FakeNSDStore(1)}, NFImages(), tmp_path / "out", nf_cfg(), heldout=held,
                          backbone_factory=TinyCORnet)
    assert "4 of the 12" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_shuffled_pairs_control_permutes_within_each_subject(tmp_path):
    cfg = nf_cfg()
    subjects = [prepare_subject(FakeNSDStore(k), cfg, f"subj0{k}", seed=0) for k in (1, 2)]
    original = [(s.x_train.copy(), s.x_val.copy()) for s in subjects]
    perms = shuffle_subject_pairs(subjects, seed=0)
    assert set(perms) == {"subj01/train", "subj01/val", "subj02/train", "subj02/val"}
    for s, (x_train, x_val) in zip(subjects, original):
        for part, x in (("train", x_train), ("val", x_val)):
            perm = perms[f"{s.label}/{part}"]
            assert sorted(perm) == list(range(len(x))) and not np.any(perm == np.arange(len(x)))
            np.testing.assert_array_equal(getattr(s, f"x_{part}"), x[perm])
    assert not np.array_equal(perms["subj01/train"], perms["subj02/train"])
    summary = train_neurofusion({"subj01": FakeNSDStore(1)}, NFImages(), tmp_path, nf_cfg(epochs=1,
                                                                                        control="shuffled"),
                                heldout=FakeNSDStore(3), backbone_factory=TinyCORnet)
    assert summary["control"] == "shuffled" and summary["heldout"]["n_test"] == 8
    saved = np.load(tmp_path / "shuffled_pairs.npz")
    assert not np.any(saved["subj01/train"] == np.arange(len(saved["subj01/train"])))


def test_unused_classifier_is_frozen_and_every_trained_parameter_gets_a_gradient():
    """What DDP needs without find_unused_parameters: every parameter that requires a gradient receives one."""
    torch.manual_seed(0)
    model = NeuroFusionNet(TinyCORnet(), 32, dim=16, heads=2, window=4, window_stride=2)
    assert model.image.frozen_backbone_parameters == ["decoder.linear.weight", "decoder.linear.bias"]
    labels = np.repeat(np.arange(7), [20, 50, 40, 50, 40, 50, 50])
    total, _ = model(torch.randn(4, 3, 32, 32), torch.randn(4, 300), window_mean_coords(np.random.rand(300, 3), 32, 16),
                     token_roi_weights(labels, 6, 32, 16), return_loss=True)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(p.grad is None for p in model.image.backbone.decoder.parameters())
