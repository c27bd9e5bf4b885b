"""Ground-truth simulator: small NSD / BOLD5000 / THINGS-EEG2 trees with a planted brain behind them.

``simulate(out_dir, preset="demo", seed=0, **overrides)`` writes (atomically, via a temporary sibling)::

    out_dir/nsd/ out_dir/bold5000/ out_dir/things_eeg2/ out_dir/unseen_images/ out_dir/ground_truth/

File formats follow docs/datasets.md (§1.11 for NSD); every ground-truth file and key is documented in
docs/simulator.md.
"""

from .bold5000 import write_bold5000
from .config import DATASETS, PRESETS, SimConfig, resolve_config
from .images import CATEGORIES, render_image, sample_params
from .nsd import write_nsd
from .pipeline import simulate
from .things_eeg2 import write_things_eeg2
from .unseen import write_unseen_images

__all__ = ["simulate", "resolve_config", "SimConfig", "PRESETS", "DATASETS", "CATEGORIES", "write_nsd",
           "write_bold5000", "write_things_eeg2", "write_unseen_images", "render_image", "sample_params"]
