"""The results report: decides the three papers' qualitative findings on a results folder, each by a pre-declared
test (:mod:`brainalign.inference`), states the evidence and the verdict, and gathers the stages' figures and tables.

Each finding is a row of ``findings.parquet`` (``finding``, ``paper``, ``claim``, ``test``, ``effect``, ``ci_low``,
``ci_high``, ``p``, ``p_uncorrected``, ``n``, ``verdict``, ``note``, ``observed``); ``summary.md`` renders them with
the figures. A finding whose inputs are absent (a stage not run) is ``not testable`` with the reason, never
silently dropped. Modules: :mod:`~brainalign.report.sources` (what is read, through the results layout),
:mod:`~brainalign.report.findings` (the tests), :mod:`~brainalign.report.figures`,
:mod:`~brainalign.report.document` (``build_report``).
"""

from .document import build_report, markdown
from .figures import gather_figures, model_comparison_figure, neurofusion_figure
from .findings import (ALIGNMENT_COLUMNS, EARLY_ROIS, FINDING_COLUMNS, LATE_ROIS, WHOLE_ROI, Finding, alignment_table,
                       baseline_label, dimension_findings, eeg_findings, findings_table, layer_hierarchy,
                       neurofusion_findings, realnet_encoding, realnet_rsa, synthetic_findings)
from .sources import FIGURES, encoding_table, report_inputs

__all__ = ["build_report", "markdown", "gather_figures", "model_comparison_figure", "neurofusion_figure",
           "ALIGNMENT_COLUMNS", "EARLY_ROIS", "FINDING_COLUMNS", "LATE_ROIS", "WHOLE_ROI", "Finding",
           "alignment_table", "baseline_label", "dimension_findings", "eeg_findings", "findings_table",
           "layer_hierarchy", "neurofusion_findings", "realnet_encoding", "realnet_rsa", "synthetic_findings",
           "FIGURES", "encoding_table", "report_inputs"]
