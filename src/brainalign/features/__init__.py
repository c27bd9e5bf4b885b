"""CNN layer features for stimulus sets, cached in zarr v3 groups (one array per layer).

Write with :func:`extract_features` (or ``brainalign features``); read with :func:`open_feature_cache`::

    from brainalign.features import open_feature_cache
    c = open_feature_cache("alexnet.zarr")
    c.stimulus_ids        # (n_stimuli,) int64 nsdIds or str names; row i of every layer
    c.layers              # ["conv1", ...]
    c.layer("conv3")      # float32 (n_stimuli, n_features)
"""

from .cache import CACHE_FORMAT, FeatureCache, open_feature_cache
from .extract import FeatureExtractor, PCAFit, extract_features, fit_pca, flatten_float, spatial_pool

__all__ = ["CACHE_FORMAT", "FeatureCache", "open_feature_cache", "FeatureExtractor", "PCAFit",
           "extract_features", "fit_pca", "flatten_float", "spatial_pool"]
