"""Voxelwise encoding models: per-voxel ridge (own batched torch solver; himalaya/sklearn backends),
train/test splits, noise-ceiling-normalised scores, and a saved multi-layer encoder.

See docs/encoding.md.
"""

from .banded import BandedRidgeFit, band_candidates, band_shares, fit_banded_ridge, r2_split
from .model import VoxelwiseEncoder, fit_layers, select_layers
from .ridge import DEFAULT_ALPHAS, RidgeFit, fit_voxelwise_ridge, gemm_flops_ideal, kfold_splits
from .scoring import (noise_ceiling_from_ncsnr, normalized_score, pearson_r, r2_score, split_half_noise_ceiling,
                      stack_repetitions)
from .splits import Split, split_ids, split_shared, split_unseen_categories

__all__ = [
    "DEFAULT_ALPHAS", "RidgeFit", "fit_voxelwise_ridge", "gemm_flops_ideal", "kfold_splits",
    "BandedRidgeFit", "band_candidates", "band_shares", "fit_banded_ridge", "r2_split",
    "VoxelwiseEncoder", "fit_layers", "select_layers",
    "noise_ceiling_from_ncsnr", "normalized_score", "pearson_r", "r2_score", "split_half_noise_ceiling",
    "stack_repetitions", "Split", "split_ids", "split_shared", "split_unseen_categories",
]
