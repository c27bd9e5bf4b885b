"""Representational similarity analysis: RDMs, comparisons, noise ceilings, bootstrap CIs,
time-resolved EEG RSA with cluster permutation tests, and object-dimension analysis.

Core functions work on plain numpy arrays or torch tensors (GPU when available), float32,
with RDMs stored as condensed upper triangles. See ``docs/rsa.md``.
"""

from .bootstrap import bootstrap_pair_index, bootstrap_stimuli, bootstrap_subjects, confidence_interval
from .compare import compare_paired, compare_rdms, prepare_vectors, rank_transform
from .condensed import condensed_to_square, n_conditions_from_pairs, n_pairs, square_to_condensed
from .crossnobis import crossnobis_from_fold_means, crossnobis_rdm, fold_means
from .dimensions import dimension_difference, dimension_rdms, dimension_rsa
from .noise_ceiling import NoiseCeiling, noise_ceiling, pool_rdms
from .rdm import compute_rdm, compute_rdms
from .timecourse import (Cluster, ClusterTest, cluster_permutation_test, eeg_rdms, paired_cluster_test,
                         rsa_timecourses)

__all__ = [
    "Cluster", "ClusterTest", "NoiseCeiling",
    "bootstrap_pair_index", "bootstrap_stimuli", "bootstrap_subjects", "cluster_permutation_test",
    "compare_paired", "compare_rdms", "compute_rdm", "compute_rdms", "condensed_to_square",
    "confidence_interval", "crossnobis_from_fold_means", "crossnobis_rdm", "dimension_difference",
    "dimension_rdms", "dimension_rsa", "eeg_rdms", "fold_means", "n_conditions_from_pairs", "n_pairs",
    "noise_ceiling", "paired_cluster_test", "pool_rdms",
    "prepare_vectors", "rank_transform", "rsa_timecourses", "square_to_condensed",
]
