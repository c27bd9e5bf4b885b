"""Brain-aligned training: ReAlnet-fMRI (methods.md §1) and NeuroFusionNet (methods.md §3).

Public API::

    from brainalign.training import make_config, train_realnet, train_realnet_subjects, train_neurofusion
    cfg = make_config("realnet", "tiny", {"control": "shuffled"})
    summary = train_realnet(store, image_set, "out/subj01", cfg, resume=True)

See docs/training.md for every option, the outputs and the checkpoint format.
"""

from .config import NeuroFusionConfig, RealnetConfig, TrainConfig, make_config
from .losses import batch_pearson_matrix, info_nce, pearson_contrastive_loss, realnet_loss, roi_guided_loss
from .neurofusion import NeuroFusionNet, n_tokens
from .neurofusion_train import evaluate_heldout, train_neurofusion
from .realnet import EncodingHead, ReAlnetFMRI, make_teacher
from .realnet_train import build_realnet, train_realnet, train_realnet_subjects

__all__ = [
    "TrainConfig", "RealnetConfig", "NeuroFusionConfig", "make_config",
    "batch_pearson_matrix", "pearson_contrastive_loss", "realnet_loss", "info_nce", "roi_guided_loss",
    "EncodingHead", "ReAlnetFMRI", "make_teacher", "build_realnet", "train_realnet", "train_realnet_subjects",
    "NeuroFusionNet", "n_tokens", "train_neurofusion", "evaluate_heldout",
]
