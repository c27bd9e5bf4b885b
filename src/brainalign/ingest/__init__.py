"""Ingestion of real dataset layouts (NSD, BOLD5000, THINGS-EEG2) into zarr stores.

Public entry points (the CLI ``brainalign ingest`` and the Snakemake rules call these):
:func:`ingest_nsd`, :func:`ingest_bold5000`, :func:`ingest_things_eeg2`.
"""

from .bold5000 import ingest_bold5000
from .nsd import ingest_nsd
from .things_eeg2 import ingest_things_eeg2

__all__ = ["ingest_nsd", "ingest_bold5000", "ingest_things_eeg2"]
