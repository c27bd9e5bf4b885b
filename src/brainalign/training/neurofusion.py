"""NeuroFusionNet (methods.md §3): fMRI branch (Conv1d tokens + 3-D voxel embedding + multi-scale
Timeformer + ROI read-out), image branch (backbone -> ROI queries + context), cross-modal fusion."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .losses import info_nce, roi_guided_loss


def n_tokens(n_voxels: int, kernel: int = 32, stride: int = 16) -> int:
    """Token count of the Conv1d tokenizer: ``floor((V - kernel) / stride) + 1``."""
    return (n_voxels - kernel) // stride + 1


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Starts of overlapping windows covering ``n`` tokens; the last window is aligned to the end."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        starts.append(n - window)
    return starts


def _encoder(dim, heads, mlp_ratio, dropout, depth):
    layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, batch_first=True, norm_first=True,
                                       activation="gelu")
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


def token_roi_weights(roi_labels: np.ndarray, n_rois: int, kernel: int, stride: int) -> torch.Tensor:
    """Fraction of each token's voxels in each ROI.

    Parameters
    ----------
    roi_labels : int ndarray (V,)
        0 = no ROI, k = ROI k (1-based), in the voxel order fed to the network.

    Returns
    -------
    Tensor (L, n_rois)
    """
    onehot = np.zeros((len(roi_labels), n_rois), np.float32)
    has = roi_labels > 0
    onehot[np.flatnonzero(has), roi_labels[has] - 1] = 1.0
    t = torch.from_numpy(onehot).T.unsqueeze(0)  # (1, N_r, V)
    return F.avg_pool1d(t, kernel, stride)[0].T.contiguous()


def window_mean_coords(coords: np.ndarray, kernel: int, stride: int) -> torch.Tensor:
    """Mean coordinate of each token's voxels: (V, 3) -> Tensor (L, 3)."""
    t = torch.as_tensor(np.asarray(coords, np.float32)).T.unsqueeze(0)
    return F.avg_pool1d(t, kernel, stride)[0].T.contiguous()


class FMRIEncoder(nn.Module):
    """fMRI branch; input x (B, V) plus per-subject token coordinates (L, 3) and ROI weights (L, N_r).

    Returns tokens (B, L, D), ROI features f (B, N_r, D), global embedding z_f (B, D), roi_valid (N_r,).
    """

    def __init__(self, dim=512, n_rois=6, kernel=32, stride=16, window=64, window_stride=32, depth=2, heads=8,
                 mlp_ratio=4.0, dropout=0.0):
        super().__init__()
        self.kernel, self.stride, self.window, self.window_stride = kernel, stride, window, window_stride
        self.tokenizer = nn.Conv1d(1, dim, kernel, stride)
        self.coord_embed = nn.Linear(3, dim)
        self.local = _encoder(dim, heads, mlp_ratio, dropout, depth)
        self.glob = _encoder(dim, heads, mlp_ratio, dropout, depth)
        self.norm = nn.LayerNorm(dim)
        self.roi_proj = nn.Parameter(torch.empty(n_rois, dim, dim))
        self.roi_bias = nn.Parameter(torch.zeros(n_rois, dim))
        nn.init.normal_(self.roi_proj, std=1.0 / math.sqrt(dim))

    def tokens(self, x, token_coords):
        t = self.tokenizer(x.unsqueeze(1)).transpose(1, 2)  # (B, L, D)
        return t + self.coord_embed(token_coords).unsqueeze(0)

    def timeformer(self, t):
        b, n, d = t.shape
        starts = window_starts(n, self.window, self.window_stride)
        w = min(self.window, n)
        idx = torch.tensor([list(range(s, s + w)) for s in starts], device=t.device)  # (n_win, w)
        win = t[:, idx].reshape(b * len(starts), w, d)
        local = self.local(win).reshape(b, len(starts), w, d)
        counts = torch.zeros(n, device=t.device, dtype=t.dtype).index_add_(
            0, idx.reshape(-1), torch.ones(idx.numel(), device=t.device, dtype=t.dtype))
        flat_idx = idx.reshape(-1)
        scale1 = torch.zeros_like(t).index_add_(1, flat_idx, local.reshape(b, -1, d)) / counts.view(1, n, 1)
        pooled = local.mean(dim=2)  # (B, n_win, D)
        glob = self.glob(pooled)  # (B, n_win, D)
        up = glob.unsqueeze(2).expand(b, len(starts), w, d).reshape(b, -1, d)
        scale2 = torch.zeros_like(t).index_add_(1, flat_idx, up) / counts.view(1, n, 1)
        return self.norm(scale1 + scale2)

    def forward(self, x, token_coords, roi_weights):
        t = self.timeformer(self.tokens(x, token_coords))
        mass = roi_weights.sum(0)  # (N_r,)
        roi_valid = mass > 0
        pooled = torch.einsum("lk,bld->bkd", roi_weights.to(t.dtype), t) / mass.clamp_min(1e-6).view(1, -1, 1)
        f = torch.einsum("bkd,kde->bke", pooled, self.roi_proj.to(t.dtype)) + self.roi_bias.to(t.dtype)
        z_f = (f * roi_valid.view(1, -1, 1)).sum(1) / roi_valid.sum().clamp_min(1)
        return t, f, z_f, roi_valid


def freeze_unused_backbone_parameters(backbone: nn.Module, feature_layer: str, image_size: int) -> list[str]:
    """Stop training the backbone parameters that the ``feature_layer`` output does not depend on.

    The image branch runs the whole backbone (its classifier included) but reads only one layer's output; the
    parameters after it (CORnet-S: ``decoder.linear``) would get no gradient, which DDP treats as an error unless
    every step traverses the graph to find them (``find_unused_parameters``). They are found once here, by
    differentiating the layer's output of a probe image, and set ``requires_grad=False``: not trained, not in the
    optimiser, not reduced by DDP (they stay in the state dict, unchanged).

    Returns
    -------
    list of str
        Names of the frozen parameters.
    """
    captured = {}
    handle = backbone.get_submodule(feature_layer).register_forward_hook(
        lambda m, i, o: captured.__setitem__("f", o))
    was = backbone.training
    backbone.eval()  # the probe must not move the BatchNorm running statistics
    try:
        param = next(backbone.parameters())
        backbone(torch.zeros(1, 3, image_size, image_size, dtype=param.dtype, device=param.device))
        named = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(captured.pop("f").sum(), [p for _, p in named], allow_unused=True)
    finally:
        handle.remove()
        backbone.train(was)
    frozen = [n for (n, p), g in zip(named, grads) if g is None]
    for n, p in named:
        if n in frozen:
            p.requires_grad_(False)
    return frozen


class ImageEncoder(nn.Module):
    """Image branch: backbone feature map (layer ``feature_layer``) -> tokens; ``n_rois`` learnable queries
    cross-attend to them (ROI features v); context c = FC(GAP); z_v = FC([c; mean_k v_k]).

    Backbone parameters after ``feature_layer`` (the classifier) are frozen
    (:func:`freeze_unused_backbone_parameters`): nothing the branch outputs depends on them.
    """

    def __init__(self, backbone: nn.Module, image_size: int, dim=512, n_rois=6, heads=8, mlp_ratio=4.0,
                 dropout=0.0, feature_layer="IT"):
        super().__init__()
        self.backbone = backbone
        self.frozen_backbone_parameters = freeze_unused_backbone_parameters(backbone, feature_layer, image_size)
        self._feat = {}
        backbone.get_submodule(feature_layer).register_forward_hook(lambda m, i, o: self._feat.__setitem__("f", o))
        with torch.no_grad():
            was = backbone.training
            backbone.eval()
            backbone(torch.zeros(1, 3, image_size, image_size))
            channels = self._feat.pop("f").shape[1]
            backbone.train(was)
        self.token_proj = nn.Linear(channels, dim)
        self.queries = nn.Parameter(torch.randn(n_rois, dim) * 0.02)
        self.cross = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.q_norm = nn.LayerNorm(dim)
        self.kv_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(),
                                 nn.Linear(int(dim * mlp_ratio), dim))
        self.context = nn.Linear(channels, dim)
        self.global_proj = nn.Linear(2 * dim, dim)

    def forward(self, x):
        self._feat.clear()
        self.backbone(x)
        fmap = self._feat.pop("f")  # (B, C, h, w)
        tokens = self.kv_norm(self.token_proj(fmap.flatten(2).transpose(1, 2)))
        q = self.q_norm(self.queries).unsqueeze(0).expand(x.shape[0], -1, -1)
        v, _ = self.cross(q, tokens, tokens, need_weights=False)
        v = v + self.mlp(v)
        c = self.context(fmap.mean(dim=(2, 3)))
        z_v = self.global_proj(torch.cat([c, v.mean(1)], dim=1))
        return v, c, z_v

    def features(self, x):
        """Frozen-feature read-out for ridge evaluation: [z_v, c, v_1..v_Nr] -> (B, (N_r+2)*D)."""
        v, c, z_v = self(x)
        return torch.cat([z_v, c, v.flatten(1)], dim=1)


class NeuroFusionNet(nn.Module):
    """Image branch + fMRI branch + cross-modal fusion block with an image-fMRI matching head.

    ``forward(images, x, token_coords, roi_weights)`` -> dict of ``v, c, z_v, f, z_f, roi_valid``;
    :meth:`loss` computes ``lambda_match*L_match + lambda_con*L_con + lambda_bfg*L_bfg``.
    """

    def __init__(self, backbone, image_size, dim=512, n_rois=6, heads=8, mlp_ratio=4.0, dropout=0.0, kernel=32,
                 stride=16, window=64, window_stride=32, depth=2, fusion_depth=2, tau=0.07):
        super().__init__()
        self.image = ImageEncoder(backbone, image_size, dim, n_rois, heads, mlp_ratio, dropout)
        self.fmri = FMRIEncoder(dim, n_rois, kernel, stride, window, window_stride, depth, heads, mlp_ratio, dropout)
        self.type_embed = nn.Parameter(torch.zeros(2, dim))
        self.fusion = _encoder(dim, heads, mlp_ratio, dropout, fusion_depth)
        self.match_head = nn.Linear(dim, 1)
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / tau)))

    @property
    def tau(self):
        return 1.0 / self.log_inv_tau.clamp(max=math.log(100.0)).exp()

    def forward(self, images, x, token_coords, roi_weights, return_loss=False, lambdas=(1.0, 1.0, 1.0)):
        """Embeddings dict; with ``return_loss`` the ``(total, parts)`` of :meth:`loss` (so DDP sees one forward).

        ``lambdas`` = (lambda_con, lambda_bfg, lambda_match)."""
        v, c, z_v = self.image(images)
        _, f, z_f, roi_valid = self.fmri(x, token_coords, roi_weights)
        out = {"v": v, "c": c, "z_v": z_v, "f": f, "z_f": z_f, "roi_valid": roi_valid}
        if return_loss:
            return self.loss(out, *lambdas)
        return out

    def match_logits(self, v, c, f, z_f):
        img = torch.cat([v, c.unsqueeze(1)], 1) + self.type_embed[0]
        brain = torch.cat([f, z_f.unsqueeze(1)], 1) + self.type_embed[1]
        fused = self.fusion(torch.cat([img, brain], 1))
        return self.match_head(fused.mean(1)).squeeze(-1)

    def loss(self, out, lambda_con=1.0, lambda_bfg=1.0, lambda_match=1.0):
        tau = self.tau
        parts = {}
        total = 0.0
        l_con = info_nce(out["z_v"], out["z_f"], tau)
        if out["roi_valid"].any():
            l_bfg = roi_guided_loss(out["v"], out["f"], tau, out["roi_valid"])
        else:  # no ROI labels in this subject: the guidance term is off
            l_bfg = out["v"].sum() * 0.0
        b = out["v"].shape[0]
        if lambda_match and b > 1:
            neg = torch.roll(torch.arange(b, device=out["v"].device), 1)
            pos_logit = self.match_logits(out["v"], out["c"], out["f"], out["z_f"])
            neg_logit = self.match_logits(out["v"], out["c"], out["f"][neg], out["z_f"][neg])
            logits = torch.cat([pos_logit, neg_logit]).float()
            labels = torch.cat([torch.ones(b), torch.zeros(b)]).to(logits.device)
            l_match = F.binary_cross_entropy_with_logits(logits, labels)
            total = total + lambda_match * l_match
            parts["match"] = l_match.detach()
        total = total + lambda_con * l_con + lambda_bfg * l_bfg
        parts.update({"con": l_con.detach(), "bfg": l_bfg.detach(), "tau": tau.detach()})
        return total, parts
