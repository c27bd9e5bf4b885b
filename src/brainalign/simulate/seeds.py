"""Seed streams of the simulator: every random draw comes from a generator named by (seed, purpose, parts...),
so datasets, subjects and purposes never share a stream and any one of them can be regenerated alone."""

from __future__ import annotations

import numpy as np

#: seed-stream codes, one per purpose, so datasets never share random streams
CODE = {"nsd": 101, "nsd_images": 102, "nsd_subject": 103, "nsd_noise": 104,
        "b5k": 201, "b5k_images": 202, "b5k_subject": 203, "b5k_noise": 204,
        "things": 301, "things_images": 302, "things_subject": 303, "things_noise": 304,
        "unseen": 401, "unseen_images": 402}


def seed_parts(seed: int, code: str, *parts: int) -> list[int]:
    """The entropy of the stream (seed, purpose, parts...): ``[seed, CODE[code], *parts]``."""
    return [int(seed), CODE[code], *map(int, parts)]


def rng_for(seed: int, code: str, *parts: int) -> np.random.Generator:
    """Independent generator for (seed, purpose, parts...)."""
    return np.random.default_rng(np.random.SeedSequence(seed_parts(seed, code, *parts)))
