"""The results report: checks the three papers' qualitative findings on a results folder, states plainly
which hold and which do not, and gathers the stages' figures and tables.

Each finding is a row of ``findings.parquet`` (``finding``, ``paper``, ``expected``, ``observed``,
``holds``); ``summary.md`` renders them with the figures. A finding whose inputs are absent (a stage not
run) is reported as ``not run``, never silently dropped. Modules: :mod:`~brainalign.report.sources` (what is
read, through the results layout), :mod:`~brainalign.report.findings` (the checks),
:mod:`~brainalign.report.figures`, :mod:`~brainalign.report.document` (``build_report``).
"""

from .document import build_report, markdown
from .figures import gather_figures, model_comparison_figure, neurofusion_figure
from .findings import (ALIGNMENT_COLUMNS, EARLY_ROIS, LATE_ROIS, WHOLE_ROI, Finding, alignment_table,
                       dimension_findings, eeg_findings, layer_hierarchy, neurofusion_findings, realnet_encoding,
                       realnet_rsa, synthetic_findings)
from .sources import FIGURES, encoding_table, report_inputs

__all__ = ["build_report", "markdown", "gather_figures", "model_comparison_figure", "neurofusion_figure",
           "ALIGNMENT_COLUMNS", "EARLY_ROIS", "LATE_ROIS", "WHOLE_ROI", "Finding", "alignment_table",
           "dimension_findings", "eeg_findings", "layer_hierarchy", "neurofusion_findings", "realnet_encoding",
           "realnet_rsa", "synthetic_findings", "FIGURES", "encoding_table", "report_inputs"]
