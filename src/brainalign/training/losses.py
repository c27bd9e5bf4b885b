"""Loss functions for brain-aligned training (methods.md §1.3 and §3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_pearson_matrix(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation between every predicted and every measured pattern of a batch.

    Parameters
    ----------
    pred, target : Tensor (B, n_out)

    Returns
    -------
    Tensor (B, B)
        ``R[i, j] = r(pred_i, target_j)``, correlation over the ``n_out`` dimensions (differentiable).
    """
    p = pred - pred.mean(dim=1, keepdim=True)
    y = target - target.mean(dim=1, keepdim=True)
    p = p / (p.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)
    y = y / (y.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)
    return p @ y.T / pred.shape[1]


def pearson_contrastive_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean diag R + mean offdiag R`` of :func:`batch_pearson_matrix` (0-d tensor).

    With a batch of one the off-diagonal mean is taken as 0.
    """
    r = batch_pearson_matrix(pred, target)
    b = r.shape[0]
    diag = torch.diagonal(r).mean()
    off = (r.sum() - torch.diagonal(r).sum()) / (b * (b - 1)) if b > 1 else r.new_zeros(())
    return 1.0 - diag + off


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when it is in a lower precision (bf16 / fp16 autocast outputs), else unchanged (float64
    stays float64, so the losses can be checked with finite differences)."""
    return t.float() if t.is_floating_point() and t.element_size() < 4 else t


def realnet_loss(logits, teacher_logits, pred, target, beta: float, mode: str = "intent"):
    """ReAlnet-fMRI objective ``CE(logits, argmax teacher) + beta * (MSE + L_corr)``.

    Parameters
    ----------
    logits : Tensor (B, n_classes)
        Student class logits.
    teacher_logits : Tensor (B, n_classes) or int Tensor (B,)
        Frozen teacher logits (pseudo-labels = argmax), or the pseudo-labels themselves (computed once per
        image when the teacher is in eval mode, :func:`brainalign.training.realnet_train.teacher_labels`).
    pred, target : Tensor (B, n_out)
        Predicted and measured brain responses.
    beta : float
        Weight of the alignment term. ``0`` removes it from the graph (no gradient reaches the head).
    mode : {"intent", "code"}
        ``intent``: the correlation term is differentiable. ``code``: as in the released notebooks, the
        correlation term is added to the logged value only (detached): gradients are those of CE + beta*MSE.
        Inputs in bf16/fp16 are computed in float32, float64 inputs in float64.

    Returns
    -------
    total : Tensor ()
    parts : dict of float tensors ``ce``, ``mse``, ``corr``, ``diag_r`` (detached, for logging)
    """
    logits = at_least_float32(logits)
    pred = at_least_float32(pred)
    target = at_least_float32(target).to(pred.dtype)
    labels = (teacher_logits.detach().argmax(dim=1) if teacher_logits.is_floating_point()
              else teacher_logits.long())
    ce = F.cross_entropy(logits, labels)
    if beta == 0:
        with torch.no_grad():
            mse = F.mse_loss(pred, target)
            corr = pearson_contrastive_loss(pred, target)
        total = ce
    else:
        mse = F.mse_loss(pred, target)
        corr = pearson_contrastive_loss(pred, target)
        if mode == "code":
            corr = corr.detach()
        elif mode != "intent":
            raise ValueError(f"unknown ReAlnet loss mode {mode!r}")
        total = ce + beta * (mse + corr)
    with torch.no_grad():
        diag_r = torch.diagonal(batch_pearson_matrix(pred, target)).mean()
    parts = {"ce": ce.detach(), "mse": mse.detach(), "corr": corr.detach(), "diag_r": diag_r}
    return total, parts


def info_nce(a: torch.Tensor, b: torch.Tensor, tau) -> torch.Tensor:
    """Symmetric InfoNCE over a batch with cosine similarity (methods.md §3.3, ``L_con``).

    Parameters
    ----------
    a, b : Tensor (B, D)
        Paired embeddings (row i of ``a`` matches row i of ``b``).
    tau : float or Tensor ()
        Temperature.
    """
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    logits = a @ b.T / tau
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def roi_guided_loss(v: torch.Tensor, f: torch.Tensor, tau, roi_valid: torch.Tensor | None = None) -> torch.Tensor:
    """fMRI-guided ROI loss ``L_bfg`` (methods.md §3.3): ROI k of the image vs ROI k of the fMRI, other ROIs negatives.

    Parameters
    ----------
    v : Tensor (B, N_r, D)
        Local (ROI-query) visual features.
    f : Tensor (B, N_r, D)
        ROI features of the fMRI branch.
    tau : float or Tensor ()
    roi_valid : bool Tensor (N_r,), optional
        ROIs without voxels in this subject are excluded both as anchors and as negatives.
    """
    v = F.normalize(v.float(), dim=-1)
    f = F.normalize(f.float(), dim=-1)
    logits = torch.einsum("bkd,bgd->bkg", v, f) / tau  # (B, N_r, N_r)
    n_r = v.shape[1]
    labels = torch.arange(n_r, device=v.device).expand(v.shape[0], n_r)
    if roi_valid is not None:
        logits = logits.masked_fill(~roi_valid.view(1, 1, n_r), float("-inf"))
        lp = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return -(lp[:, roi_valid]).mean()
    return F.cross_entropy(logits.reshape(-1, n_r), labels.reshape(-1))
