"""Models: CORnet-S architecture (methods.md §1.1), AlexNet layers, weights handling."""

import pytest
import torch
import torchvision

from brainalign.errors import InputError
from brainalign.models import CORnetS, load_model, resolve_layers


def cornet_s_parameter_count() -> int:
    """Published CORnet-S parameter count, from the architecture (all convs bias-free, BN weight+bias)."""
    v1 = 3 * 64 * 7 * 7 + 2 * 64 + 64 * 64 * 3 * 3 + 2 * 64

    def block(i, o, times):
        wide = 4 * o
        convs = i * o + o * o + o * wide + wide * wide * 9 + wide * o   # conv_input, skip, conv1, conv2, conv3
        norms = 2 * o + times * (2 * wide + 2 * wide + 2 * o)           # norm_skip + per-step norm1/2/3
        return convs + norms

    decoder = 512 * 1000 + 1000
    return v1 + block(64, 128, 2) + block(128, 256, 4) + block(256, 512, 2) + decoder


@pytest.fixture(scope="module")
def cornet():
    return load_model("cornet_s", "random", seed=1)


def _hooked(model, paths, x):
    modules = dict(model.named_modules())
    got = {}
    handles = [modules[p].register_forward_hook(lambda m, i, o, p=p: got.__setitem__(p, o.detach().clone()))
               for p in paths]
    with torch.no_grad():
        out = model(x)
    for h in handles:
        h.remove()
    return got, out


def test_cornet_s_parameter_count_and_shapes(cornet):
    assert cornet_s_parameter_count() == 53_416_616
    assert sum(p.numel() for p in cornet.parameters()) == cornet_s_parameter_count()
    assert isinstance(cornet, CORnetS)
    assert [n for n, _ in cornet.named_children()] == ["V1", "V2", "V4", "IT", "decoder"]
    assert [n for n, _ in cornet.decoder.named_children()] == ["avgpool", "flatten", "linear"]
    got, out = _hooked(cornet, ["V1", "V2", "V4", "IT", "decoder.avgpool"], torch.randn(1, 3, 224, 224))
    assert got["V1"].shape == (1, 64, 56, 56)
    assert got["V2"].shape == (1, 128, 28, 28)
    assert got["V4"].shape == (1, 256, 14, 14)
    assert got["IT"].shape == (1, 512, 7, 7)
    assert got["decoder.avgpool"].shape == (1, 512, 1, 1)
    assert out.shape == (1, 1000)
    assert cornet.brainalign.layers["avgpool"] == "decoder.avgpool"


def test_cornet_s_state_dict_keys_match_published_checkpoint(cornet):
    keys = set(cornet.state_dict())
    for key in ["V1.conv1.weight", "V1.norm1.running_var", "V1.conv2.weight", "V2.conv_input.weight",
                "V2.skip.weight", "V2.norm_skip.weight", "V2.conv1.weight", "V2.conv2.weight", "V2.conv3.weight",
                "V2.norm1_0.weight", "V2.norm3_1.bias", "V4.norm2_3.running_mean", "IT.norm1_1.weight",
                "decoder.linear.weight", "decoder.linear.bias"]:
        assert key in keys, key
    assert "V4.norm1_4.weight" not in keys and "IT.norm1_2.weight" not in keys
    assert not any("bias" in k for k in keys if ".conv" in k or ".skip" in k)
    assert cornet.state_dict()["V4.conv2.weight"].shape == (1024, 1024, 3, 3)


def test_cornet_s_uses_every_recurrent_step(cornet):
    """Changing the BN of the last V4 step must change the V4 output (all 4 steps run, BN per step)."""
    x = torch.randn(1, 3, 32, 32)
    before, _ = _hooked(cornet, ["V4"], x)
    bias = cornet.V4.norm3_3.bias
    with torch.no_grad():
        bias += 0.5
    after, _ = _hooked(cornet, ["V4"], x)
    with torch.no_grad():
        bias -= 0.5
    assert not torch.allclose(before["V4"], after["V4"])


def test_checkpoint_with_module_prefix_loads(tmp_path, cornet):
    sd = {f"module.{k}": v.clone() for k, v in cornet.state_dict().items()}
    path = tmp_path / "cornet_s-ckpt.pth"
    torch.save({"epoch": 43, "arch": "CORnet_S", "state_dict": sd}, path)  # the published file's structure
    loaded = load_model("cornet_s", str(path))
    mine = loaded.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in cornet.state_dict().items())
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"V1.conv1.weight": torch.zeros(1)}}, bad)
    with pytest.raises(InputError, match="do not fit"):
        load_model("cornet_s", str(bad))


def test_missing_imagenet_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(InputError) as err:
        load_model("alexnet", "imagenet")
    assert str(expected) in str(err.value) and "alexnet-owt-7be5be79.pth" in str(err.value)
    with pytest.raises(InputError, match="cornet_s-1d3f7974.pth"):
        load_model("cornet_s", "imagenet")
    # once the file is where the message says, it is used (no download); a small model keeps this fast
    reference = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = load_model("squeezenet1_1", "imagenet")
    assert torch.equal(model.features[0].weight, reference.features[0].weight)
    assert model.brainalign.weights_file == str(path) and len(model.brainalign.weights_file_sha256) == 64


def test_alexnet_layers_are_post_relu_with_expected_shapes():
    model = load_model("alexnet", "random", seed=3)
    modules = resolve_layers(model, None)
    assert list(modules) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    paths = [model.brainalign.layers[n] for n in modules]
    got, _ = _hooked(model, paths, torch.randn(2, 3, 224, 224))
    shapes = {n: tuple(got[p].shape[1:]) for n, p in zip(modules, paths)}
    assert shapes == {"conv1": (64, 55, 55), "conv2": (192, 27, 27), "conv3": (384, 13, 13),
                      "conv4": (256, 13, 13), "conv5": (256, 13, 13), "fc6": (4096,), "fc7": (4096,)}
    assert all(isinstance(modules[n], torch.nn.ReLU) for n in modules)
    assert all(float(got[p].min()) >= 0 for p in paths)
    with pytest.raises(InputError, match="not a layer"):
        resolve_layers(model, ["conv9"])


def test_random_weights_are_seeded_and_torchvision_names_work():
    a = load_model("resnet18", "random", seed=5)
    b = load_model("resnet18", "random", seed=5)
    c = load_model("resnet18", "random", seed=6)
    assert a.brainalign.state_dict_sha256 == b.brainalign.state_dict_sha256 != c.brainalign.state_dict_sha256
    assert "layer3" in resolve_layers(a, ["layer3", "avgpool"])
    with pytest.raises(InputError, match="unknown model"):
        load_model("no_such_net", "random")


def test_training_checkpoint_format(tmp_path):
    base = load_model("squeezenet1_1", "random", seed=2)
    ckpt = tmp_path / "realnet.pt"
    sd = {f"backbone.{k}": v for k, v in base.state_dict().items()}
    sd["head.weight"] = torch.zeros(3, 3)
    torch.save({"arch": "squeezenet1_1", "state_dict": sd, "state_dict_prefix": "backbone.",
                "layers": {"fire8": "features.11"}}, ckpt)
    model = load_model(str(ckpt))
    assert model.brainalign.arch == "squeezenet1_1" and model.brainalign.layers == {"fire8": "features.11"}
    assert list(resolve_layers(model, None)) == ["fire8"]
    assert model.brainalign.state_dict_sha256 == base.brainalign.state_dict_sha256
    torch.save({"state_dict": sd}, tmp_path / "noarch.pt")
    with pytest.raises(InputError, match="arch"):
        load_model(str(tmp_path / "noarch.pt"))


# ----------------------------------------------------------------------------------- CPU GEMM convolution
@pytest.mark.parametrize("shape, k, stride", [
    ((3, 8, 4, 4), 3, 2), ((3, 8, 2, 2), 3, 1), ((2, 6, 5, 5), 3, 2), ((2, 6, 3, 3), 1, 2),
    ((2, 6, 4, 4), 1, 1), ((1, 4, 1, 1), 3, 1)])
def test_gemm_convolution_equals_conv2d(shape, k, stride):
    from brainalign.models.cornet_s import _conv_gemm

    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, shape[1], k, k, generator=g, dtype=torch.float64, requires_grad=True)
    pad = k // 2
    got = _conv_gemm(x, w, stride, pad)
    ref = torch.nn.functional.conv2d(x, w, None, stride=stride, padding=pad)
    assert got.shape == ref.shape and got.is_contiguous()
    torch.testing.assert_close(got, ref)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    gx, gw = torch.autograd.grad(got, (x, w), gy)
    rx, rw = torch.autograd.grad(ref, (x, w), gy)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_cornet_s_cpu_gemm_path_matches_conv2d(monkeypatch):
    """At 64 px V4 (4x4) and IT (2x2) take the GEMM path; outputs, gradients and BN statistics equal the
    F.conv2d route's. In float64: the check is the algebra, not float32 summation order (the gradients of the
    BatchNorm weights are sums with cancellation, whose float32 error depends on the thread count)."""
    import copy

    from brainalign.models import cornet_s as cs

    torch.manual_seed(0)
    a = CORnetS().double().train()
    b = copy.deepcopy(a)
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    calls = []
    real = cs._conv_gemm
    monkeypatch.setattr(cs, "_conv_gemm", lambda *args: calls.append(args[0].shape) or real(*args))
    out_a = a(x)
    out_a.square().mean().backward()
    assert {tuple(s[-2:]) for s in calls} >= {(4, 4), (2, 2)}  # V4 and IT convolutions went through GEMM
    monkeypatch.setattr(cs, "CPU_GEMM_MAX_POSITIONS", 0)
    calls.clear()
    out_b = b(x)
    out_b.square().mean().backward()
    assert not calls
    torch.testing.assert_close(out_a, out_b, rtol=1e-9, atol=1e-9)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        scale = pb.grad.abs().max().clamp_min(1e-12)
        assert float((pa.grad - pb.grad).abs().max() / scale) < 1e-8, name
    for (name, ba), (_, bb) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(ba, bb, rtol=1e-9, atol=1e-9, msg=name)


def test_block_convolutions_fire_forward_hooks(cornet):
    x = torch.randn(1, 3, 64, 64)
    got, _ = _hooked(cornet, ["IT.conv2", "V4.conv1"], x)
    assert got["IT.conv2"].shape == (1, 2048, 2, 2) and got["V4.conv1"].shape == (1, 1024, 4, 4)
