"""ReAlnet-fMRI model: a CORnet-S backbone plus the multi-layer encoding head (methods.md §1.2)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def get_submodule(model: nn.Module, name: str) -> nn.Module:
    """``model.V1`` / ``model.decoder.avgpool`` by dotted name (works through a ``module.`` wrapper)."""
    return model.get_submodule(name)


class EncodingHead(nn.Module):
    """Per-layer ``Linear(flat_dim -> hidden) + ReLU``, concatenation, ``Linear(n_layers*hidden -> n_out)``.

    Parameters
    ----------
    flat_dims : sequence of int
        Flattened size of each tapped layer (e.g. 64*56*56 for V1 at 224 px).
    n_out : int
        Number of predicted brain dimensions (voxels or PCA components).
    hidden : int
        Width of each per-layer projection (128 in ReAlnet).
    """

    def __init__(self, flat_dims, n_out: int, hidden: int = 128):
        super().__init__()
        self.layer_proj = nn.ModuleList(nn.Linear(int(d), hidden) for d in flat_dims)
        self.out = nn.Linear(hidden * len(self.layer_proj), n_out)

    def forward(self, feats):
        """feats: list of Tensor (B, ...) in layer order -> Tensor (B, n_out)."""
        h = [torch.relu(proj(f.flatten(1))) for proj, f in zip(self.layer_proj, feats)]
        return self.out(torch.cat(h, dim=1))


class ReAlnetFMRI(nn.Module):
    """Backbone + encoding head trained jointly; ``forward(x) -> (logits, y_hat)``.

    One backbone pass; the tapped block outputs are captured with forward hooks (equivalent to the
    original's second V1->IT pass, but the BN running statistics are updated once per step).

    Parameters
    ----------
    backbone : nn.Module
        CORnet-S-like model whose ``forward`` returns class logits and which has submodules named
        ``layers``.
    n_out : int
    image_size : int
        Input side length; used once to infer the flattened layer sizes.
    layers : sequence of str
    hidden : int
    pool : int
        0: the head reads each tapped output flattened (C*H*W, ReAlnet); k > 0: average-pooled to k x k
        first (C*k*k; 1 = the per-channel means that a ``--reduce pool`` feature cache holds).
    """

    def __init__(self, backbone: nn.Module, n_out: int, image_size: int,
                 layers=("V1", "V2", "V4", "IT"), hidden: int = 128, pool: int = 0):
        super().__init__()
        self.backbone = backbone
        self.layers = tuple(layers)
        self.pool = int(pool)
        self._feats: dict[str, torch.Tensor] = {}
        for name in self.layers:
            get_submodule(backbone, name).register_forward_hook(self._make_hook(name))
        flat_dims = self._probe_dims(image_size)
        self.head = EncodingHead(flat_dims, n_out, hidden)

    def _make_hook(self, name):
        def hook(module, inputs, output):
            self._feats[name] = output
        return hook

    @torch.no_grad()
    def _probe_dims(self, image_size):
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            param = next(self.backbone.parameters())
            self.backbone(torch.zeros(1, 3, image_size, image_size, dtype=param.dtype, device=param.device))
            dims = [self._pooled(self._feats[n])[0].numel() for n in self.layers]
        finally:
            self._feats.clear()
            self.backbone.train(was_training)
        return dims

    def _pooled(self, f):
        return nn.functional.adaptive_avg_pool2d(f, self.pool) if self.pool and f.dim() == 4 else f

    def forward(self, x):
        """x: float Tensor (B, 3, S, S) -> (class logits (B, n_classes), predicted brain (B, n_out))."""
        self._feats.clear()
        logits = self.backbone(x)
        feats = [self._pooled(self._feats[n]) for n in self.layers]
        self._feats.clear()
        return logits, self.head(feats)


def make_teacher(backbone: nn.Module, eval_mode: bool = True) -> nn.Module:
    """A frozen copy of ``backbone``: no gradients, eval mode unless ``eval_mode=False``."""
    teacher = copy.deepcopy(backbone)
    for module in teacher.modules():  # never inherit the student's feature-capture hooks
        module._forward_hooks.clear()
    teacher.requires_grad_(False)
    teacher.train(not eval_mode)
    return teacher
