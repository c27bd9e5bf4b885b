"""Write the simulated dataset trees and their ground truth (``brainalign simulate``).

``simulate(out_dir, preset="demo", seed=0, **overrides)`` writes (atomically, via a temporary sibling)::

    out_dir/nsd/ out_dir/bold5000/ out_dir/things_eeg2/ out_dir/unseen_images/ out_dir/ground_truth/

File formats follow docs/datasets.md; every ground-truth file and key is documented in docs/simulator.md.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from .._io import atomic_output
from .bold5000 import write_bold5000
from .config import resolve_config
from .images import CATEGORIES
from .nsd import write_nsd
from .things_eeg2 import write_things_eeg2
from .unseen import write_unseen_images

log = logging.getLogger(__name__)
#: written last: its presence marks a complete simulator output (which a rerun may replace); outputs written
#: since ``_io.atomic_output`` marks its folders are recognised by that marker too
MARKER = Path("ground_truth") / "params.json"


def simulate(out_dir, preset: str = "demo", seed: int = 0, **overrides) -> dict:
    """Write simulated dataset trees and their ground truth to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder. Must not exist, be empty, or be an earlier simulator output (it is replaced);
        anything else is refused (InputError) before anything is written.
    preset : {"tiny", "demo", "fullsession"}
        Size preset (see ``brainalign.simulate.config.PRESETS``).
    seed : int
        Master seed; the output is a deterministic function of (preset, overrides, seed).
    **overrides
        Any ``SimConfig`` field, e.g. ``nsd_subjects=1``, ``nsd_grid=(81, 104, 83)``,
        ``datasets=("nsd",)``.

    Returns
    -------
    dict
        The content of ``ground_truth/params.json`` (config, seed, summaries per dataset).
    """
    cfg = resolve_config(preset, **overrides)
    out_dir = Path(out_dir)
    t0 = time.time()
    summary = {"brainalign_version": __version__, "preset": preset, "seed": int(seed), "config": asdict(cfg),
               "categories": list(CATEGORIES)}
    # refuses a path holding anything but an empty folder or an earlier brainalign output
    with atomic_output(out_dir, legacy=lambda p: (p / MARKER).is_file()) as tmp:
        gt = tmp / "ground_truth"
        gt.mkdir(parents=True)
        unseen = None
        if "unseen" in cfg.datasets:
            unseen = write_unseen_images(tmp / "unseen_images", cfg.unseen_per_category, seed, gt)
            summary["unseen"] = {"n_images": cfg.unseen_per_category * len(CATEGORIES)}
        if "nsd" in cfg.datasets:
            summary["nsd"] = write_nsd(tmp / "nsd", cfg, seed, gt, unseen)
        if "bold5000" in cfg.datasets:
            summary["bold5000"] = write_bold5000(tmp / "bold5000", cfg, seed, gt, unseen)
        if "things-eeg2" in cfg.datasets:
            summary["things-eeg2"] = write_things_eeg2(tmp / "things_eeg2", cfg, seed, gt)
        (tmp / MARKER).write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")
    log.info("simulated %s in %.1f s -> %s", ", ".join(cfg.datasets), time.time() - t0, out_dir)
    return json.loads(json.dumps(summary, default=_jsonable))


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(type(o))
