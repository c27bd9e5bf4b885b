"""Synthetic fMRI from voxelwise encoders (Delavari et al. 2025 style) and its evaluations.

See docs/encoding.md ("Synthetic fMRI").
"""

from .evaluate import (claim1_patterns, claim1_voxels, decode_synthetic_to_real, paired_tests, permutation_p,
                       permutation_p_draws)
from .generate import synthesize

__all__ = ["synthesize", "claim1_patterns", "claim1_voxels", "decode_synthetic_to_real", "paired_tests",
           "permutation_p", "permutation_p_draws"]
