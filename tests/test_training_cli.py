"""End to end: ``brainalign train realnet`` on a real (tiny) voxel store, a folder image set and the
real CORnet-S (random weights, 32 px); the exported backbone loads with ``brainalign.models.load_model``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brainalign import models
from brainalign import store as store_mod
from brainalign.cli import main


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    rng = np.random.default_rng(0)
    names = [f"cat{i % 2}/img{i:02d}.png" for i in range(14)]
    for n in names:
        (root / "images" / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / "images" / n)
    stim = np.repeat(names, 2)
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, 29), "stimulus": stim,
                           "repetition": np.tile([0, 1], 14), "shared": np.isin(stim, names[-4:])})
    n_vox = 30
    store_mod.write_voxel_store(root / "s.zarr", rng.normal(size=(28, n_vox)).astype(np.float32), trials,
                                rng.integers(0, 5, (n_vox, 3)).astype(np.int32), [5, 5, 5], np.eye(4),
                                attrs={"dataset": "test", "subject": "01"})
    return root


def test_cli_realnet_tiny_with_real_cornet_s(tiny_inputs, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "realnet", "--store", str(tiny_inputs / "s.zarr"), "--stimuli", f"folder:{tiny_inputs / 'images'}",
            "--out", str(out), "--config", "tiny", "--epochs", "1", "--image-size", "32", "--batch-size", "4",
            "--control", "beta0"]
    assert main(argv + ["--keep-checkpoints"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["control"] == "beta0" and summary["beta"] == 0 and summary["n_test"] == 4
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.pt")) == [
        "backbone.pt", "checkpoints/best.pt", "checkpoints/last.pt"]
    best = torch.load(out / "checkpoints/best.pt", weights_only=False)["model"]
    trained_backbone = {k[len("backbone."):]: v for k, v in best.items() if k.startswith("backbone.")}
    # the one weights file: backbone + head, the backbone keys selected by load_model through the prefix
    assert torch.load(out / "backbone.pt", weights_only=True)["state_dict"].keys() == best.keys()
    m = models.load_model(str(out / "backbone.pt"))
    assert m.state_dict().keys() == trained_backbone.keys()
    for key, value in trained_backbone.items():
        assert torch.equal(m.state_dict()[key], value), key
    assert tuple(m.brainalign.preprocessing["size"]) == (32, 32)
    # resuming the finished run without --keep-checkpoints (an option a resume may change): nothing left to
    # train; the same weights are exported again and the resumable state is removed
    assert main(argv + ["--resume"]) == 0
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.pt")] == ["backbone.pt"]
    again = models.load_model(str(out / "backbone.pt"))
    for key, value in trained_backbone.items():
        assert torch.equal(again.state_dict()[key], value), key
    # bad input is reported before any output is written
    assert main(["train", "realnet", "--store", str(tmp_path / "missing.zarr"), "--stimuli",
                 f"folder:{tiny_inputs / 'images'}", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_cli_initial_backbone_is_the_presets_untrained_cornet_s(tmp_path):
    """``brainalign train initial-backbone``: the CORnet-S every ReAlnet run of the preset starts from (its
    configured weights and seed), as a checkpoint ``load_model`` reads with the preset's image size."""
    from brainalign.training import make_config

    out = tmp_path / "initial.pt"
    assert main(["train", "initial-backbone", "--config", "tiny", "--out", str(out)]) == 0
    cfg = make_config("realnet", "tiny", {})
    reference = models.load_model(cfg.backbone, cfg.weights, seed=cfg.seed)
    loaded = models.load_model(str(out))
    assert loaded.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert tuple(loaded.brainalign.preprocessing["size"]) == (cfg.image_size, cfg.image_size)


def test_cli_neurofusion_refuses_a_held_out_subject_it_trains_on(tiny_inputs, tmp_path, capsys):
    """``--heldout-store`` naming a training store, or another store of a training subject: exit status 2, both
    paths named, nothing written."""
    import shutil

    same_subject = tmp_path / "s_copy.zarr"
    shutil.copytree(tiny_inputs / "s.zarr", same_subject)  # another file, the same subject "01"
    for heldout in (tiny_inputs / "s.zarr", same_subject):
        out = tmp_path / "nf"
        argv = ["train", "neurofusion", "--store", str(tiny_inputs / "s.zarr"), "--heldout-store", str(heldout),
                "--stimuli", f"folder:{tiny_inputs / 'images'}", "--out", str(out), "--config", "tiny"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(heldout) in err and str(tiny_inputs / "s.zarr") in err and "training subject" in err
        assert not out.exists()
