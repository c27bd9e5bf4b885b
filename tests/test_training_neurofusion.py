"""NeuroFusionNet: token shapes, windows, losses against hand computations, multi-subject training,
held-out evaluation and exact resume (with dropout, so RNG restoration matters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_training_realnet import assert_same_tensors, load_standin_checkpoint

from brainalign.training.config import make_config
from brainalign.training.losses import info_nce, roi_guided_loss
from brainalign.training.neurofusion import (FMRIEncoder, NeuroFusionNet, n_tokens, token_roi_weights,
                                             window_mean_coords, window_starts)
from brainalign.training.neurofusion_train import assign_rois, train_neurofusion
from brainalign.training.standin import TinyCORnet

ROIS = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")


class FakeNSDStore:
    """Store-API stand-in with NSD-like atlases; stimuli 0..n_stim-1, the last n_shared shared."""

    def __init__(self, seed, n_vox=120, n_stim=30, n_shared=8):
        rng = np.random.default_rng(seed)
        stim = np.repeat(np.arange(n_stim), 2)
        self.trials = pd.DataFrame({"session": 1, "trial": np.arange(1, 2 * n_stim + 1), "stimulus": stim,
                                    "repetition": np.tile([0, 1], n_stim), "shared": stim >= n_stim - n_shared})
        sig = rng.normal(size=(n_stim, n_vox)).astype(np.float32)
        self._b = (sig[stim] + 0.5 * rng.normal(size=(2 * n_stim, n_vox))).astype(np.float32)
        self.betas = self._b
        self.voxel_ijk = rng.integers(0, 20, size=(n_vox, 3)).astype(np.int32)
        self.affine = np.diag([1.8, 1.8, 1.8, 1.0]) + seed * 0.1
        self.affine[3, 3] = 1.0
        self.attrs = {"subject": f"subj{seed:02d}"}
        self._atlas = {"streams": np.ones(n_vox, bool)}
        for k, name in enumerate(ROIS[:5]):
            m = np.zeros(n_vox, bool)
            m[k * (n_vox // 6):(k + 1) * (n_vox // 6)] = True
            self._atlas[name] = m

    def roi_names(self):
        return list(self._atlas)

    def roi_mask(self, name):
        if name not in self._atlas:
            raise KeyError(name)
        return self._atlas[name]

    def mean_by_stimulus(self, stimuli=None, voxels=None):
        b = self._b if voxels is None else self._b[:, voxels]
        ids = np.unique(self.trials["stimulus"])
        s = self.trials["stimulus"].to_numpy()
        return ids, np.stack([b[s == i].mean(0) for i in ids]), np.full(len(ids), 2)


class FakeImages:
    def __init__(self, n=30):
        rng = np.random.default_rng(5)
        self._im = {i: rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for i in range(n)}
        self.ids = list(self._im)

    def load(self, i):
        return self._im[i]


@pytest.mark.parametrize("v", [32, 100, 15724, 39548])
def test_token_count_and_window_coverage(v):
    assert n_tokens(v) == (v - 32) // 16 + 1
    enc = FMRIEncoder(dim=8, heads=2, depth=1)
    tok = enc.tokens(torch.randn(2, v), torch.zeros(n_tokens(v), 3))
    assert tok.shape == (2, (v - 32) // 16 + 1, 8)
    L = n_tokens(v)
    starts = window_starts(L, 64, 32)
    covered = np.zeros(L, bool)
    for s in starts:
        covered[s:s + 64] = True
    assert covered.all() and all(s + min(64, L) <= L for s in starts)
    if v == 15724:
        assert L == 981


def test_roi_weights_and_coords():
    labels = np.array([1] * 40 + [2] * 24 + [0] * 16)
    w = token_roi_weights(labels, 3, 32, 16)
    assert w.shape == (n_tokens(80), 3)
    np.testing.assert_allclose(w[0].numpy(), [1, 0, 0])  # voxels 0..31
    np.testing.assert_allclose(w[2].numpy(), [8 / 32, 24 / 32, 0])  # voxels 32..63
    c = window_mean_coords(np.arange(80 * 3, dtype=np.float32).reshape(80, 3), 32, 16)
    np.testing.assert_allclose(c[1].numpy(), np.arange(16 * 3, 48 * 3).reshape(32, 3).mean(0))


def test_info_nce_matches_hand_computation():
    rng = np.random.default_rng(0)
    a, b, tau = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)), 0.1
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    s = an @ bn.T / tau
    row = -np.mean([s[i, i] - np.log(np.exp(s[i]).sum()) for i in range(5)])
    col = -np.mean([s[i, i] - np.log(np.exp(s[:, i]).sum()) for i in range(5)])
    got = float(info_nce(torch.tensor(a), torch.tensor(b), tau))
    assert got == pytest.approx(0.5 * (row + col), rel=1e-5)


def test_roi_guided_loss_matches_hand_computation():
    rng = np.random.default_rng(1)
    v, f, tau = rng.normal(size=(3, 4, 6)), rng.normal(size=(3, 4, 6)), 0.5
    vn = v / np.linalg.norm(v, axis=2, keepdims=True)
    fn = f / np.linalg.norm(f, axis=2, keepdims=True)
    terms = []
    for bi in range(3):
        for k in range(4):
            s = np.array([vn[bi, k] @ fn[bi, g] for g in range(4)]) / tau
            terms.append(s[k] - np.log(np.exp(s).sum()))
    assert float(roi_guided_loss(torch.tensor(v), torch.tensor(f), tau)) == pytest.approx(-np.mean(terms), rel=1e-5)
    valid = torch.tensor([True, False, True, True])
    terms = []
    for bi in range(3):
        for k in (0, 2, 3):
            s = np.array([vn[bi, k] @ fn[bi, g] for g in (0, 2, 3)]) / tau
            terms.append(s[(0, 2, 3).index(k)] - np.log(np.exp(s).sum()))
    got = float(roi_guided_loss(torch.tensor(v), torch.tensor(f), tau, valid))
    assert got == pytest.approx(-np.mean(terms), rel=1e-5)


def test_model_shapes_and_gradients_reach_both_branches():
    torch.manual_seed(0)
    m = NeuroFusionNet(TinyCORnet(), 32, dim=16, heads=2, window=4, window_stride=2)
    v = 300
    labels = np.repeat(np.arange(7), [20, 50, 40, 50, 40, 50, 50])
    out = m(torch.randn(4, 3, 32, 32), torch.randn(4, v), window_mean_coords(np.random.rand(v, 3), 32, 16),
            token_roi_weights(labels, 6, 32, 16))
    assert out["v"].shape == (4, 6, 16) and out["f"].shape == (4, 6, 16)
    assert out["z_v"].shape == out["z_f"].shape == (4, 16) and out["roi_valid"].all()
    for term, lam in (("con", (1, 0, 0)), ("bfg", (0, 1, 0)), ("match", (0, 0, 1))):
        m.zero_grad(set_to_none=True)
        total, parts = m.loss(out, *lam)
        total.backward(retain_graph=True)
        assert m.fmri.tokenizer.weight.grad.abs().sum() > 0, term
        assert m.image.backbone.V1.conv.weight.grad.abs().sum() > 0, term
    assert m.fusion.layers[0].linear1.weight.grad.abs().sum() > 0


def test_assign_rois_prefers_specific():
    s = FakeNSDStore(0)
    lab = assign_rois(s, ROIS, np.ones(120, bool))
    assert (lab[:20] == 1).all() and (lab[20:40] == 2).all() and (lab[100:] == 6).all()


def tiny_nf_cfg(**kw):
    values = dict(epochs=2, dim=16, heads=2, window=4, window_stride=2, image_size=32, dropout=0.1, batch_size=6,
                  rois=list(ROIS))
    values.update(kw)
    return make_config("neurofusion", "tiny", values)


def test_multi_subject_training_heldout_eval_and_exact_resume(tmp_path, monkeypatch):
    cfg = tiny_nf_cfg()
    kept = tiny_nf_cfg(keep_checkpoints=True)  # the finished runs' checkpoints are compared below
    stores = {"subj01": FakeNSDStore(1), "subj02": FakeNSDStore(2, n_vox=150)}
    images = FakeImages()

    class Killed(RuntimeError):
        pass

    def kill(epoch, row):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):  # a killed run keeps its resumable state
        train_neurofusion(stores, images, tmp_path / "b", cfg, backbone_factory=TinyCORnet, on_epoch_end=kill)
    assert torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["epoch"] == 1
    b = train_neurofusion(stores, images, tmp_path / "b", kept, backbone_factory=TinyCORnet, resume=True,
                          heldout=FakeNSDStore(3))
    a = train_neurofusion(stores, images, tmp_path / "a", kept, backbone_factory=TinyCORnet)
    assert b["resumed_from"] == 1 and a["epochs_run"] == b["epochs_run"] == 2
    sa = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=False)["model"]
    sb = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["model"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    h = b["heldout"]
    assert h["n_test"] == 8 and h["n_voxels"] == 120 and set(h["roi_pcc"]) == set(ROIS)
    assert -1 <= h["mean_pcc"] <= 1 and b["heldout_initial"] is not None
    # backbone.pt: the full model of the selected epoch; load_model reads its image backbone
    best = torch.load(tmp_path / "b/checkpoints/best.pt", weights_only=False)
    assert best["epoch"] == b["best_epoch"]
    ck = torch.load(tmp_path / "b/backbone.pt", weights_only=True)
    assert ck["state_dict_prefix"] == "image.backbone." and ck["full_model"]["kind"] == "neurofusionnet"
    assert_same_tensors(ck["state_dict"], best["model"])
    prefix = "image.backbone."
    trained_backbone = {k[len(prefix):]: v for k, v in best["model"].items() if k.startswith(prefix)}
    assert_same_tensors(load_standin_checkpoint(tmp_path / "b/backbone.pt", monkeypatch).state_dict(),
                        trained_backbone)


def test_successful_run_keeps_one_weights_file_the_full_model(tmp_path, monkeypatch):
    """Without keep_checkpoints a successful run (here the shuffled-pairs control) removes checkpoints/ and keeps
    one ``*.pt``, backbone.pt, from which the whole NeuroFusionNet is rebuilt and its image backbone loaded."""
    from brainalign.training.config import config_from_dict
    from brainalign.training.neurofusion_train import build_neurofusion

    cfg = tiny_nf_cfg(epochs=1, control="shuffled")
    summary = train_neurofusion({"subj01": FakeNSDStore(1)}, FakeImages(), tmp_path, cfg, backbone_factory=TinyCORnet,
                                heldout=FakeNSDStore(3))
    assert summary["control"] == "shuffled"
    assert not (tmp_path / "checkpoints").exists()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.pt")] == ["backbone.pt"]
    ck = torch.load(tmp_path / "backbone.pt", weights_only=True)
    rebuilt = build_neurofusion(config_from_dict("neurofusion", ck["full_model"]["config"]), TinyCORnet)
    rebuilt.load_state_dict(ck["state_dict"], strict=True)
    assert_same_tensors(load_standin_checkpoint(tmp_path / "backbone.pt", monkeypatch).state_dict(),
                        rebuilt.image.backbone.state_dict())
