"""The RSA stage's vocabulary: RDM dissimilarities, RDM comparisons and the default dimension baseline.

Plain constants without torch, so that ``brainalign rsa``'s parser is built without loading it.
"""

#: brain / model RDM dissimilarities (:func:`brainalign.rsa.compute_rdm`)
RDM_METHODS = ("correlation", "euclidean", "crossnobis")
#: dissimilarities usable for model RDMs: models have one response per image, nothing to cross-validate
MODEL_RDM_METHODS = ("correlation", "euclidean")
#: RDM comparisons (:func:`brainalign.rsa.compare_rdms`)
COMPARISON_METHODS = ("spearman", "corr", "cosine", "tau-a")
#: the model the object-dimension differences are taken against when it is one of the models
DEFAULT_DIMENSION_BASELINE = "cornet_s-initial"
#: ``model`` and ``layer`` of the EEG cluster test of the curve averaged over every model and layer (the EEG
#: finding's pre-declared test, docs/methods.md §6.6)
MEAN_CURVE = ("all models", "mean of layers")
