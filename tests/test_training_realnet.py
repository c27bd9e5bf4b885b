"""ReAlnet-fMRI training: losses, gradients, teacher, controls, per-subject init, exact resume, export.

Runs on CPU with the TinyCORnet stand-in backbone and a hand-built in-memory voxel store that follows
the store API of docs/DEVELOPING.md (so it does not depend on the simulator).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from brainalign.errors import InputError
from brainalign.training import engine
from brainalign.training.config import make_config
from brainalign.training.data import prepare_targets, shuffle_pairs
from brainalign.training.losses import batch_pearson_matrix, pearson_contrastive_loss, realnet_loss
from brainalign.training.realnet import ReAlnetFMRI, make_teacher
from brainalign.training.realnet_train import RealnetTask, build_realnet, train_realnet, train_realnet_subjects
from brainalign.training.standin import TinyCORnet


# ----------------------------------------------------------------------------------------- fixtures
class FakeStore:
    """Minimal voxel store: n_stim stimuli x 2 repetitions, the last n_shared flagged shared."""

    def __init__(self, seed=0, n_stim=36, n_shared=8, n_vox=40):
        rng = np.random.default_rng(seed)
        stim = np.repeat(np.arange(n_stim), 2)
        self.trials = pd.DataFrame({
            "session": 1, "trial": np.arange(1, len(stim) + 1), "stimulus": stim,
            "repetition": np.tile([0, 1], n_stim), "shared": stim >= n_stim - n_shared})
        signal = rng.normal(size=(n_stim, n_vox)).astype(np.float32)
        self._betas = (signal[stim] + 0.3 * rng.normal(size=(len(stim), n_vox))).astype(np.float32)
        self.betas = self._betas
        self.attrs = {"subject": f"s{seed}"}
        self._roi = np.zeros(n_vox, np.int16)
        self._roi[: n_vox // 2] = 1

    def roi_names(self):
        return ["prf-visualrois/V1v"]

    def roi_mask(self, name):
        if name in ("prf-visualrois/V1v", "prf-visualrois"):
            return self._roi == 1
        raise KeyError(name)

    def mean_by_stimulus(self, stimuli=None, voxels=None):
        b = self._betas if voxels is None else self._betas[:, voxels]
        ids = np.unique(self.trials["stimulus"].to_numpy())
        means = np.stack([b[self.trials["stimulus"].to_numpy() == i].mean(0) for i in ids]).astype(np.float32)
        return ids, means, np.full(len(ids), 2)


class FakeImages:
    def __init__(self, n=36, seed=0):
        rng = np.random.default_rng(seed + 100)
        self._imgs = {i: rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8) for i in range(n)}
        self.ids = list(self._imgs)

    def load(self, i):
        return self._imgs[i]


def tiny_cfg(**kw):
    base = dict(epochs=2, batch_size=6, lr=1e-3, image_size=32, hidden=8, n_components=6, roi="all",
                max_train_images=0, max_test_images=0, val_fraction=0.2, beta=1.0)
    base.update(kw)
    return make_config("realnet", "tiny", base)


def train_one_epoch(task, model, lr=1e-2):
    """One epoch of plain Adam steps on ``task.loss`` (the loop of engine.fit without its bookkeeping)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    task.on_train_epoch_start()
    for batch in task.train_loader(0, 0, 1):
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

def factory():
    return TinyCORnet(width=4, n_classes=10)


# ----------------------------------------------------------------------------------------- losses
def test_batch_pearson_matches_numpy_closed_form():
    rng = np.random.default_rng(1)
    p, y = rng.normal(size=(5, 13)), rng.normal(size=(5, 13))
    ref = np.corrcoef(p, y)[:5, 5:]  # r(p_i, y_j)
    r = batch_pearson_matrix(torch.tensor(p), torch.tensor(y)).numpy()
    np.testing.assert_allclose(r, ref, atol=1e-6)
    off = ref[~np.eye(5, dtype=bool)].mean()
    expected = 1 - np.diag(ref).mean() + off
    got = float(pearson_contrastive_loss(torch.tensor(p), torch.tensor(y)))
    assert got == pytest.approx(expected, abs=1e-6)


def _grads_of(term_fn):
    torch.manual_seed(0)
    model = ReAlnetFMRI(factory(), n_out=5, image_size=32, hidden=8)
    x, y = torch.randn(6, 3, 32, 32), torch.randn(6, 5)
    logits, pred = model(x)
    term_fn(logits, pred, y).backward()
    return model


@pytest.mark.parametrize("term", ["ce", "mse", "corr"])
def test_every_loss_term_alone_sends_gradient(term):
    teacher = make_teacher(factory())
    fns = {
        "ce": lambda lo, p, y: F.cross_entropy(lo, torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(0))),
        "mse": lambda lo, p, y: F.mse_loss(p, y),
        "corr": lambda lo, p, y: pearson_contrastive_loss(p, y),
    }
    model = _grads_of(fns[term])
    bb = model.backbone.V1.conv.weight.grad
    assert bb is not None and bb.abs().sum() > 0
    if term == "ce":
        assert model.head.out.weight.grad is None  # CE does not touch the encoding head
    else:
        for p in (model.head.out.weight, model.head.layer_proj[0].weight, model.head.layer_proj[3].weight):
            assert p.grad is not None and p.grad.abs().sum() > 0
    del teacher


def test_code_mode_gradient_is_ce_plus_beta_mse():
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32), torch.randn(6, 5)
    grads = {}
    for mode in ("code", "manual"):
        torch.manual_seed(0)
        model = ReAlnetFMRI(factory(), n_out=5, image_size=32, hidden=8)
        teacher = make_teacher(factory())
        logits, pred = model(x)
        t = teacher(x)
        if mode == "code":
            loss, _ = realnet_loss(logits, t, pred, y, beta=3.0, mode="code")
        else:
            loss = F.cross_entropy(logits, t.argmax(1)) + 3.0 * F.mse_loss(pred, y)
        loss.backward()
        grads[mode] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads["code"], grads["manual"]):
        torch.testing.assert_close(a, b)


def test_beta0_alignment_loss_sends_no_gradient():
    torch.manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32), torch.randn(6, 5)
    model = ReAlnetFMRI(factory(), n_out=5, image_size=32, hidden=8)
    teacher = make_teacher(factory())
    logits, pred = model(x)
    t = teacher(x)
    loss, parts = realnet_loss(logits, t, pred, y, beta=0.0)
    loss.backward()
    assert all(p.grad is None for p in model.head.parameters())
    assert parts["mse"] > 0  # still logged
    g0 = model.backbone.V1.conv.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    logits, _ = model(x)
    F.cross_entropy(logits, t.argmax(1)).backward()
    torch.testing.assert_close(g0, model.backbone.V1.conv.weight.grad)
    assert make_config("realnet", "tiny", {"control": "beta0"}).control == "beta0"


# ----------------------------------------------------------------------------------------- data
def test_targets_split_and_fit_on_training_images_only():
    store = FakeStore()
    t = prepare_targets(store, roi="prf-visualrois/V1v", n_components=5, val_fraction=0.25, seed=3)
    assert set(t.test_ids) == set(range(28, 36))  # exactly the shared stimuli
    assert not set(t.train_ids) & set(t.val_ids) and not (set(t.train_ids) | set(t.val_ids)) & set(t.test_ids)
    assert t.y_train.shape == (21, 5) and t.components.shape == (5, 20)
    np.testing.assert_allclose(t.y_train.mean(0), 0, atol=1e-4)  # PCA centred on training images
    # corrupting val/test responses must not change the training targets (nothing fitted on them)
    store2 = FakeStore()
    rows = store2.trials["stimulus"].isin(list(t.val_ids) + list(t.test_ids)).to_numpy()
    store2._betas[rows] *= 50
    t2 = prepare_targets(store2, roi="prf-visualrois/V1v", n_components=5, val_fraction=0.25, seed=3)
    np.testing.assert_allclose(t2.y_train, t.y_train, atol=1e-4)
    with pytest.raises(InputError):
        prepare_targets(store, roi="nope")


def test_shuffled_control_permutes_pairs(tmp_path):
    y = np.arange(20, dtype=np.float32).reshape(10, 2)
    ys, perm = shuffle_pairs(y, 0)
    assert sorted(perm) == list(range(10)) and not np.any(perm == np.arange(10))
    np.testing.assert_array_equal(ys, y[perm])
    cfg = tiny_cfg(control="shuffled", epochs=1)
    train_realnet(FakeStore(), FakeImages(), tmp_path, cfg, backbone_factory=factory)
    saved = np.load(tmp_path / "targets.npz")
    perm = saved["perm_train"]
    assert len(perm) == len(saved["train_ids"]) and not np.any(perm == np.arange(len(perm)))


# ----------------------------------------------------------------------------------------- training
def test_teacher_stays_frozen():
    torch.manual_seed(0)
    cfg = tiny_cfg(epochs=1)
    store, images = FakeStore(), FakeImages()
    from brainalign.training.data import PairDataset, load_images
    t = prepare_targets(store, roi="all", n_components=4, val_fraction=0.2)
    ds = PairDataset(load_images(images, t.train_ids, 32), t.y_train)
    model, teacher = build_realnet(cfg, t.n_out, factory)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = model.backbone.V1.conv.weight.detach().clone()
    train_one_epoch(RealnetTask(model, teacher, ds, None, cfg), model)
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(model.backbone.V1.conv.weight, student_before)  # the student did move


def test_subjects_start_from_identical_weights(tmp_path):
    cfg = tiny_cfg(epochs=1)
    out = train_realnet_subjects({"s1": FakeStore(seed=1), "s2": FakeStore(seed=2)}, FakeImages(), tmp_path, cfg,
                                 backbone_factory=factory)
    fresh, _ = build_realnet(cfg, out["s1"]["n_out"], factory)
    assert out["s1"]["backbone_init_sha"] == out["s2"]["backbone_init_sha"]
    assert out["s1"]["backbone_init_sha"] == engine.state_fingerprint(fresh.backbone.state_dict())
    assert out["s1"]["init_sha"] == out["s2"]["init_sha"] == engine.state_fingerprint(fresh.state_dict())
    b1 = torch.load(tmp_path / "s1" / "backbone.pt", weights_only=False)["state_dict"]
    b2 = torch.load(tmp_path / "s2" / "backbone.pt", weights_only=False)["state_dict"]
    assert not torch.equal(b1["backbone.V1.conv.weight"], b2["backbone.V1.conv.weight"])  # trained on different data


class Killed(RuntimeError):
    pass


def test_resume_after_kill_reproduces_uninterrupted_run(tmp_path):
    cfg = tiny_cfg(epochs=3)
    kept = tiny_cfg(epochs=3, keep_checkpoints=True)  # the finished runs' last.pt are compared below
    store, images = FakeStore(), FakeImages()
    train_realnet(store, images, tmp_path / "a", kept, backbone_factory=factory)

    def kill_after_1(epoch, row):
        if epoch == 1:
            raise Killed

    # killed mid-way with keep_checkpoints false: the resumable state stays (it goes only when a run succeeds)
    with pytest.raises(Killed):
        train_realnet(store, images, tmp_path / "b", cfg, backbone_factory=factory, on_epoch_end=kill_after_1)
    assert torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["epoch"] == 1
    # keep_checkpoints does not change the result: a resume may change it
    summary = train_realnet(store, images, tmp_path / "b", kept, backbone_factory=factory, resume=True)
    assert summary["resumed_from"] == 1
    a = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=False)
    b = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    ma, mb = pd.read_csv(tmp_path / "a/metrics.csv"), pd.read_csv(tmp_path / "b/metrics.csv")
    pd.testing.assert_series_equal(ma["train_loss"], mb["train_loss"])
    # changing an option between kill and resume is refused
    with pytest.raises(InputError):
        train_realnet(store, images, tmp_path / "b", tiny_cfg(epochs=4, lr=5e-3), backbone_factory=factory,
                      resume=True)


def load_standin_checkpoint(path, monkeypatch):
    """``brainalign.models.load_model(path)`` of a checkpoint whose ``cornet_s`` is the stand-in backbone."""
    from brainalign.models import load_model, loading

    monkeypatch.setattr(loading, "_build", lambda arch: factory())
    return load_model(str(path))


def assert_same_tensors(got: dict, expected: dict):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_outputs_and_exported_backbone(tmp_path, monkeypatch):
    """A successful run keeps one weights file, ``backbone.pt``: the whole trained model (backbone + head) of the
    selected epoch, which ``load_model`` reads as the backbone; its resumable state is removed unless
    ``keep_checkpoints``."""
    store, images = FakeStore(), FakeImages()
    summary = train_realnet(store, images, tmp_path / "run", tiny_cfg(epochs=2), backbone_factory=factory)
    run = tmp_path / "run"
    for name in ("metrics.csv", "training_curve.png", "backbone.pt", "summary.json", "targets.npz",
                 "stimuli.parquet"):
        assert (run / name).exists(), name
    assert not (run / "checkpoints").exists()
    assert [p.relative_to(run).as_posix() for p in run.rglob("*.pt")] == ["backbone.pt"]
    m = pd.read_csv(run / "metrics.csv")
    assert list(m["epoch"]) == [1, 2] and {"train_ce", "train_corr", "val_loss", "val_mse"} <= set(m.columns)
    assert summary["best_epoch"] == int(m["val_loss"].idxmin()) + 1
    assert summary["test"]["pattern_r"] == summary["test"]["pattern_r"]  # not NaN

    # the same training keeping its checkpoints: the reference for what the exported file must hold
    cfg = tiny_cfg(epochs=2, keep_checkpoints=True)
    train_realnet(store, images, tmp_path / "kept", cfg, backbone_factory=factory)
    kept = tmp_path / "kept"
    assert (kept / "checkpoints/last.pt").is_file() and (kept / "checkpoints/best.pt").is_file()
    best = torch.load(kept / "checkpoints/best.pt", weights_only=False)
    assert best["epoch"] == summary["best_epoch"]
    trained_backbone = {k[len("backbone."):]: v for k, v in best["model"].items() if k.startswith("backbone.")}

    ck = torch.load(run / "backbone.pt", weights_only=True)
    assert ck["arch"] == "cornet_s" and "layers" in ck and ck["state_dict_prefix"] == "backbone."
    assert_same_tensors(ck["state_dict"], best["model"])  # backbone and head of the selected epoch
    loaded = load_standin_checkpoint(run / "backbone.pt", monkeypatch)
    assert_same_tensors(loaded.state_dict(), trained_backbone)
    assert tuple(loaded.brainalign.preprocessing["size"]) == (cfg.image_size, cfg.image_size)
    # the head is rebuilt from what the file records
    info = ck["full_model"]
    assert info["kind"] == "realnet_fmri" and info["n_out"] == summary["n_out"]
    model = ReAlnetFMRI(factory(), n_out=info["n_out"], image_size=cfg.image_size, layers=info["layers"],
                        hidden=info["hidden"], pool=info["pool"])
    model.load_state_dict(ck["state_dict"], strict=True)


def test_beta_search_removes_every_candidates_checkpoints_when_it_succeeds(tmp_path):
    store, images = FakeStore(), FakeImages()
    summary = train_realnet(store, images, tmp_path / "run", tiny_cfg(epochs=1, beta_grid=[0.5, 20]),
                            backbone_factory=factory)
    run = tmp_path / "run"
    assert len(summary["beta_search"]["candidates"]) == 2 and summary["checkpoints"] is None
    assert not list(run.rglob("checkpoints")) and not list(run.rglob("last.pt"))
    assert [p.name for p in run.glob("*.pt")] == ["backbone.pt"]
    for c in summary["beta_search"]["candidates"]:
        assert [p.name for p in Path(c["run"]).glob("*.pt")] == ["backbone.pt"]
    kept = train_realnet(store, images, tmp_path / "kept", tiny_cfg(epochs=1, beta_grid=[0.5, 20],
                                                                    keep_checkpoints=True),
                         backbone_factory=factory)
    for c in kept["beta_search"]["candidates"]:
        assert {p.name for p in (Path(c["run"]) / "checkpoints").iterdir()} == {"last.pt", "best.pt"}
    assert kept["checkpoints"] == str(tmp_path / "kept" / "beta_search" / f"beta-{kept['beta']:g}" / "checkpoints")


# ----------------------------------------------------------------------------------------- speed-ups and options
def _dataset_and_model(cfg):
    from brainalign.training.data import PairDataset, load_images

    store, images = FakeStore(), FakeImages()
    t = prepare_targets(store, roi="all", n_components=4, val_fraction=0.2)
    ds = PairDataset(load_images(images, t.train_ids, 32), t.y_train)
    model, teacher = build_realnet(cfg, t.n_out, factory)
    return ds, model, teacher


def test_cached_teacher_labels_equal_running_the_teacher():
    from brainalign.training.realnet_train import teacher_labels

    cfg = tiny_cfg(epochs=1)
    ds, model, teacher = _dataset_and_model(cfg)
    assert not ds.has_labels
    task = RealnetTask(model, teacher, ds, None, cfg)
    model.eval()  # same student output for both calls
    batch = next(iter(task.train_loader(0, 0, 1)))
    assert bool((batch[2] == -1).all())
    total_run, parts_run = task.loss(model, batch)  # no cache: the teacher runs on the batch
    labels = teacher_labels(teacher, ds.images, 5, torch.device("cpu"))
    with torch.no_grad():
        from brainalign.training.data import normalize_images

        reference = teacher(normalize_images(ds.images)).argmax(1)
    assert torch.equal(labels, reference)
    ds.set_labels(labels)
    assert ds.has_labels
    batch = next(iter(task.train_loader(0, 0, 1)))
    assert bool((batch[2] >= 0).all())
    total_cached, parts_cached = task.loss(model, batch)
    torch.testing.assert_close(total_cached, total_run)
    for k in parts_run:
        torch.testing.assert_close(parts_cached[k], parts_run[k])


def test_training_uses_cached_labels_only_with_an_eval_mode_teacher(tmp_path, monkeypatch):
    from brainalign.training import realnet_train

    calls = []
    real = realnet_train.teacher_labels
    monkeypatch.setattr(realnet_train, "teacher_labels", lambda *a, **k: calls.append(1) or real(*a, **k))
    train_realnet(FakeStore(), FakeImages(), tmp_path / "eval", tiny_cfg(epochs=1), backbone_factory=factory)
    assert len(calls) == 3  # train, val, test sets, once each
    calls.clear()
    train_realnet(FakeStore(), FakeImages(), tmp_path / "train", tiny_cfg(epochs=1, teacher_eval=False),
                  backbone_factory=factory)
    assert not calls  # a train-mode teacher depends on the batch: it runs every step


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_bn_stats_keeps_running_statistics(freeze):
    cfg = tiny_cfg(epochs=1, freeze_bn_stats=freeze)
    ds, model, teacher = _dataset_and_model(cfg)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    weight = model.backbone.V2.norm.weight.detach().clone()
    train_one_epoch(RealnetTask(model, teacher, ds, None, cfg), model)
    now = model.state_dict()
    same = [torch.equal(now[k], v) for k, v in stats.items()]
    assert all(same) if freeze else not any(same)
    assert not torch.equal(model.backbone.V2.norm.weight, weight)  # the affine BN weights train either way


def test_head_pool_reads_average_pooled_layers():
    torch.manual_seed(0)
    model = ReAlnetFMRI(factory(), n_out=5, image_size=32, hidden=8, pool=1).eval()
    widths = [4, 8, 8, 16]  # TinyCORnet(width=4) channels of V1, V2, V4, IT
    assert [p.in_features for p in model.head.layer_proj] == widths
    x = torch.randn(3, 3, 32, 32)
    got = {}
    for name in ("V1", "V2", "V4", "IT"):
        getattr(model.backbone, name).register_forward_hook(lambda m, i, o, n=name: got.__setitem__(n, o))
    _, pred = model(x)
    h = [torch.relu(proj(got[n].mean(dim=(2, 3)))) for proj, n in zip(model.head.layer_proj, ("V1", "V2", "V4", "IT"))]
    torch.testing.assert_close(pred, model.head.out(torch.cat(h, 1)))
    model2 = ReAlnetFMRI(factory(), n_out=5, image_size=32, hidden=8, pool=2)
    assert [p.in_features for p in model2.head.layer_proj] == [4 * w for w in widths]
    with pytest.raises(InputError):
        tiny_cfg(head_pool=-1)


def test_resume_from_a_checkpoint_that_predates_an_option(tmp_path):
    cfg = tiny_cfg(epochs=2)
    store, images = FakeStore(), FakeImages()

    def kill(epoch, row):
        raise Killed

    with pytest.raises(Killed):
        train_realnet(store, images, tmp_path, cfg, backbone_factory=factory, on_epoch_end=kill)
    path = tmp_path / "checkpoints/last.pt"
    ckpt = torch.load(path, weights_only=False)
    # written before these options existed
    del ckpt["config"]["head_pool"], ckpt["config"]["freeze_bn_stats"], ckpt["config"]["keep_checkpoints"]
    torch.save(ckpt, path)
    assert train_realnet(store, images, tmp_path, cfg, backbone_factory=factory, resume=True)["resumed_from"] == 1


@pytest.mark.parametrize("method", ["realnet", "neurofusion"])
def test_every_preset_builds_and_a_yaml_file_sets_new_options(method, tmp_path):
    from brainalign.training.config import PRESETS

    for name in PRESETS[method]:
        make_config(method, name)
    if method == "realnet":
        (tmp_path / "opts.yaml").write_text("freeze_bn_stats: true\nhead_pool: 2\nkeep_checkpoints: true\n")
        cfg = make_config("realnet", str(tmp_path / "opts.yaml"))
        assert cfg.freeze_bn_stats is True and cfg.head_pool == 2 and cfg.epochs == 30  # applied over full
        assert cfg.keep_checkpoints is True and make_config("realnet", "small").keep_checkpoints is False
        with pytest.raises(InputError):
            make_config("realnet", "small", {"freeze_bn_stats": "yes"})
    with pytest.raises(InputError, match="keep_checkpoints"):
        make_config(method, "tiny", {"keep_checkpoints": "yes"})


# ----------------------------------------------------------------------------------------- gradients of the full loss
def _loss_inputs(seed=0, b=5, n_classes=7, n_out=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n_classes, generator=g, dtype=torch.float64, requires_grad=True)
    pred = torch.randn(b, n_out, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(b, n_out, generator=g, dtype=torch.float64)
    teacher = torch.randn(b, n_classes, generator=g, dtype=torch.float64)
    return logits, pred, target, teacher


def _finite_difference(fn, inputs, eps=1e-6):
    """Central differences of a scalar function of float64 tensors (an independent reference for autograd)."""
    grads = []
    for k, x in enumerate(inputs):
        g = torch.zeros_like(x)
        for i in range(x.numel()):
            plus = [y.detach().clone() for y in inputs]
            minus = [y.detach().clone() for y in inputs]
            plus[k].view(-1)[i] += eps
            minus[k].view(-1)[i] -= eps
            g.view(-1)[i] = (fn(*plus) - fn(*minus)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("beta, shuffled", [(2.0, False), (0.0, False), (2.0, True)])
def test_intent_loss_gradient_matches_finite_differences(beta, shuffled):
    """``intent``: torch.autograd.gradcheck of the whole objective (CE to the teacher's pseudo-labels, MSE and the
    batch-Pearson term) on float64 inputs; with beta = 0 and with shuffled targets (the controls) too."""
    logits, pred, target, teacher = _loss_inputs()
    if shuffled:
        target = target[torch.tensor(shuffle_pairs(np.arange(len(target))[:, None], 3)[1])]
    assert torch.autograd.gradcheck(lambda lo, p: realnet_loss(lo, teacher, p, target, beta, "intent")[0],
                                    (logits, pred), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("beta, shuffled", [(2.0, False), (0.0, False), (2.0, True)])
def test_code_loss_gradient_is_that_of_ce_plus_beta_mse_and_corr_carries_none(beta, shuffled):
    """``code`` (the released recipe): the gradient of the full loss equals the finite-difference gradient of
    CE + beta*MSE alone, and differs from that of the value it reports (which includes the correlation terms):
    the correlation part carries no gradient."""
    logits, pred, target, teacher = _loss_inputs(seed=1)
    if shuffled:
        target = target[torch.tensor(shuffle_pairs(np.arange(len(target))[:, None], 5)[1])]
    labels = teacher.argmax(1)
    total, parts = realnet_loss(logits, teacher, pred, target, beta, "code")
    analytic = torch.autograd.grad(total, (logits, pred), allow_unused=True)
    analytic = [torch.zeros_like(x) if g is None else g for g, x in zip(analytic, (logits, pred))]

    def ce_mse(lo, p):
        return float(F.cross_entropy(lo, labels) + beta * ((p - target) ** 2).mean())

    def reported(lo, p):
        return float(realnet_loss(lo, teacher, p, target, beta, "code")[0])

    reference = _finite_difference(ce_mse, [logits, pred])
    for a, r in zip(analytic, reference):
        torch.testing.assert_close(a, r, atol=1e-6, rtol=1e-5)
    assert not parts["corr"].requires_grad
    if beta:  # the logged total includes beta * corr; its finite-difference gradient differs from the analytic one
        assert float(parts["corr"]) != 0.0
        differs = _finite_difference(reported, [logits, pred])[1]
        assert (differs - analytic[1]).abs().max() > 1e-3
    # the same inputs in intent mode: the correlation term does send gradient to the prediction
    intent = torch.autograd.grad(realnet_loss(logits, teacher, pred, target, beta, "intent")[0], pred,
                                 allow_unused=True)[0]
    if beta:
        assert (intent - analytic[1]).abs().max() > 1e-3
    else:
        assert intent is None or float(intent.abs().max()) == 0.0


def test_full_presets_name_both_recipes():
    code = make_config("realnet", "full")
    assert code.loss == "code" and code.beta == 100.0 and code.beta_grid == ()
    intent = make_config("realnet", "full-intent")
    assert intent.loss == "intent" and intent.beta_grid == (1.0, 10.0, 100.0)
    assert {make_config("realnet", p).loss for p in ("small", "tiny")} == {"intent"}
    with pytest.raises(InputError):
        make_config("realnet", "full-intent", {"val_fraction": 0.0})
    with pytest.raises(InputError):
        make_config("realnet", "full", {"beta_grid": [1, 0]})
