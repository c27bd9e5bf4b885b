"""What ingestion does with values that are not measurements (docs/store.md "Bad values").

- A volume (one trial) whose selected voxels are all non-finite, or all exactly equal (an all-zero volume),
  is not data: the file is refused (InputError naming it and the trial).
- A voxel with a non-finite beta in any trial, or constant across the trials of a session (a dead voxel,
  e.g. outside the brain), is left out of the store with a warning and recorded (``excluded/`` in the
  store, counts in its ``excluded_voxels`` attr). One NaN therefore never reaches z-scoring, which would
  spread it over the whole session of that voxel.
- When more than half of the selected voxels would go, the betas or the mask are wrong: refused.
- EEG (preprocessed, noise-normalised epochs): any non-finite value, a constant trial or a constant part
  is refused; there is no per-channel exclusion (every subject's store keeps the same channels).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: a volume whose selected voxels all hold one value is empty; with fewer voxels equality can be chance
MIN_VOXELS_FOR_EMPTY_VOLUME = 10
#: refuse when more than this fraction of the selected voxels would be excluded
MAX_EXCLUDED_FRACTION = 0.5


def _first_trials(rows: np.ndarray, k: int = 3) -> str:
    return ", ".join(str(int(t) + 1) for t in np.flatnonzero(rows)[:k])


class VoxelScreen:
    """Session-by-session check of the betas an ingest reads, and the voxels it excludes.

    Parameters
    ----------
    n_voxels : int
        Number of selected voxels (columns of every block).
    """

    def __init__(self, n_voxels: int):
        self.n_voxels = int(n_voxels)
        self.non_finite = np.zeros(self.n_voxels, dtype=bool)
        self.constant = np.zeros(self.n_voxels, dtype=bool)
        self.first_seen = {}  # reason -> file where voxels were first found

    def check_session(self, block: np.ndarray, path) -> np.ndarray:
        """Check one session's betas, note bad voxels, and return the block with non-finite values set to 0.

        Parameters
        ----------
        block : float32 ndarray (n_trials, n_voxels)
            The session's betas (before z-scoring).
        path : path-like
            The file they came from (named in errors and warnings).

        Returns
        -------
        float32 ndarray (n_trials, n_voxels)
            ``block`` (in place), non-finite values replaced by 0: those voxels are excluded at the end,
            and z-scoring the rest stays free of warnings.

        Raises
        ------
        InputError
            If a trial's volume is empty (all non-finite, or all voxels equal).
        """
        finite = np.isfinite(block)
        all_finite = bool(finite.all())
        empty = ~finite.any(axis=1)
        if self.n_voxels >= MIN_VOXELS_FOR_EMPTY_VOLUME:
            if all_finite:
                hi, lo = block.max(axis=1), block.min(axis=1)
            else:
                hi = np.where(finite, block, -np.inf).max(axis=1)
                lo = np.where(finite, block, np.inf).min(axis=1)
            empty |= finite.all(axis=1) & (hi == lo)
        if empty.any():
            first = int(np.flatnonzero(empty)[0])
            value = block[first, 0]
            raise InputError(path, f"{int(empty.sum())} of {len(block)} trials are empty volumes (every selected "
                                   f"voxel {'non-finite' if not np.isfinite(value) else f'equal to {value:g}'}; "
                                   f"trials {_first_trials(empty)}): a broken or zero-filled file")
        bad = ~finite.all(axis=0) if not all_finite else np.zeros(self.n_voxels, dtype=bool)
        if bad.any():
            self.first_seen.setdefault("non-finite", str(path))
            self.non_finite |= bad
            block[~finite] = 0.0
        constant = (block.max(axis=0) == block.min(axis=0)) & ~bad if len(block) else np.zeros_like(bad)
        if constant.any():
            self.first_seen.setdefault("constant", str(path))
            self.constant |= constant
        return block

    def exclusion(self) -> dict:
        """The voxels to leave out, ``{reason: bool (n_voxels,)}`` (for ``VoxelStoreWriter.finish``); warns.

        Raises
        ------
        InputError
            If more than half of the selected voxels would be excluded.
        """
        out = {"non-finite": self.non_finite, "constant": self.constant & ~self.non_finite}
        n_out = int((self.non_finite | self.constant).sum())
        if n_out == 0:
            return out
        parts = [f"{int(m.sum())} {reason} (first in {self.first_seen[reason]})"
                 for reason, m in out.items() if m.any()]
        if n_out > MAX_EXCLUDED_FRACTION * self.n_voxels:
            where = next(iter(self.first_seen.values()))
            raise InputError(where, f"{n_out} of {self.n_voxels} selected voxels have non-finite or constant betas "
                                    f"({'; '.join(parts)}): the betas or the voxel mask are wrong")
        log.warning("%d of %d selected voxels left out of the store: %s; listed in the store's excluded/ and "
                    "counted in its attrs (excluded_voxels)", n_out, self.n_voxels, "; ".join(parts))
        return out


def check_eeg(arr: np.ndarray, path) -> None:
    """Refuse EEG epochs (conditions, repetitions, channels, times) that are not measurements.

    Raises
    ------
    InputError
        Non-finite values, a trial whose every sample is equal (e.g. all zero), or a channel constant over
        the whole part.
    """
    finite = np.isfinite(arr)
    if not finite.all():
        n = int((~finite).sum())
        c, r = np.argwhere(~finite)[0][:2]
        del finite
        raise InputError(path, f"{n} non-finite EEG values (first at condition {c}, repetition {r}); "
                               "preprocessed epochs must be finite")
    if arr.shape[2] * arr.shape[3] > 1:
        empty = arr.max(axis=(2, 3)) == arr.min(axis=(2, 3))  # (conditions, repetitions)
        if empty.any():
            c, r = np.argwhere(empty)[0]
            raise InputError(path, f"{int(empty.sum())} of {empty.size} trials are constant (every channel and time "
                                   f"equal to {arr[c, r, 0, 0]:g}; first: condition {c}, repetition {r}): a broken "
                                   "or zero-filled file")
    if arr.shape[0] * arr.shape[1] * arr.shape[3] > 1:
        dead = arr.max(axis=(0, 1, 3)) == arr.min(axis=(0, 1, 3))
        if dead.any():
            raise InputError(path, f"channel(s) {np.flatnonzero(dead).tolist()} constant over every trial and time "
                                   "(a dead channel)")
