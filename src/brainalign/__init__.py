"""brainalign: align vision models with human brain data (NSD, BOLD5000, THINGS-EEG2)."""

__version__ = "0.1.0"
