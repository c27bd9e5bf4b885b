"""Size presets and configuration of the simulator."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InputError

DATASETS = ("nsd", "bold5000", "things-eeg2", "unseen")

#: NSD: trials per session and repetitions per image are the real ones, so images per subject = 250 * sessions
NSD_TRIALS_PER_SESSION = 750
NSD_REPS = 3


@dataclass(frozen=True)
class SimConfig:
    """All size knobs. ``nsd_images_per_subject`` is derived: 750 * sessions / 3."""

    datasets: tuple = DATASETS
    nsd_subjects: int = 2
    nsd_sessions: int = 1
    nsd_shared: int = 40
    nsd_grid: tuple = (16, 20, 16)
    b5k_subjects: int = 2
    b5k_sessions: int = 1
    b5k_grid: tuple = (14, 18, 14)
    things_subjects: int = 1
    things_train_concepts: int = 15
    things_test_concepts: int = 10
    things_train_reps: int = 4
    things_test_reps: int = 20
    unseen_per_category: int = 4

    @property
    def nsd_images_per_subject(self) -> int:
        return NSD_TRIALS_PER_SESSION * self.nsd_sessions // NSD_REPS

    def validate(self) -> "SimConfig":
        def need(cond, key, msg):
            if not cond:
                raise InputError(key, msg)

        for d in self.datasets:
            need(d in DATASETS, "datasets", f"unknown dataset {d!r}; choose from {', '.join(DATASETS)}")
        need(1 <= self.nsd_subjects <= 8, "nsd_subjects", "must be 1..8")
        need(1 <= self.nsd_sessions <= 40, "nsd_sessions", "must be 1..40")
        need(1 <= self.nsd_shared <= self.nsd_images_per_subject, "nsd_shared",
             f"must be 1..{self.nsd_images_per_subject} (images per subject = 250 x sessions)")
        need(1 <= self.b5k_subjects <= 4, "b5k_subjects", "must be 1..4")
        need(1 <= self.b5k_sessions <= 15, "b5k_sessions", "must be 1..15")
        need(1 <= self.things_subjects <= 10, "things_subjects", "must be 1..10")
        need(self.things_train_concepts >= 5, "things_train_concepts", "must be >= 5 (one per category)")
        need(self.things_test_concepts >= 1, "things_test_concepts", "must be >= 1")
        need(self.things_train_reps >= 1 and self.things_test_reps >= 1, "things_*_reps", "must be >= 1")
        need(self.unseen_per_category >= 1, "unseen_per_category", "must be >= 1")
        for key in ("nsd_grid", "b5k_grid"):
            g = getattr(self, key)
            need(len(g) == 3 and min(g) >= 10, key, "needs three sizes, each >= 10")
        return self


PRESETS = {
    # whole simulate in well under 20 s: for tests
    "tiny": SimConfig(),
    # a realistic-looking small study (about a minute)
    "demo": SimConfig(nsd_subjects=2, nsd_sessions=2, nsd_shared=100, nsd_grid=(24, 28, 24),
                      b5k_subjects=2, b5k_sessions=2, b5k_grid=(22, 28, 22), things_subjects=2,
                      things_train_concepts=40, things_test_concepts=20, things_test_reps=40,
                      unseen_per_category=10),
    # one full-size NSD session of subj01 (81 x 104 x 83 x 750), for the ingestion benchmark
    "fullsession": SimConfig(datasets=("nsd",), nsd_subjects=1, nsd_sessions=1, nsd_shared=50,
                             nsd_grid=(81, 104, 83)),
}


def resolve_config(preset: str = "demo", **overrides) -> SimConfig:
    """Preset plus overrides (None values ignored), validated.

    Raises
    ------
    InputError
        Unknown preset or key, or an invalid size.
    """
    if preset not in PRESETS:
        raise InputError("preset", f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SimConfig)}
    clean = {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in fields:
            raise InputError(k, f"unknown simulator option; known: {', '.join(sorted(fields))}")
        if k in ("nsd_grid", "b5k_grid", "datasets"):
            v = tuple(v)
        clean[k] = v
    return dataclasses.replace(PRESETS[preset], **clean).validate()
