"""The report document: ``summary.md``, ``findings.parquet``, ``alignment.parquet`` and ``figures/`` of a
results folder (:func:`build_report`, ``brainalign report``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._io import atomic_output
from ..layout import REPORT_ALIGNMENT, REPORT_FIGURES, REPORT_FINDINGS, REPORT_SUMMARY
from .figures import gather_figures, model_comparison_figure, neurofusion_figure
from .findings import (alignment_table, dimension_findings, eeg_findings, layer_hierarchy, neurofusion_findings,
                       realnet_encoding, realnet_rsa, synthetic_findings)
from .sources import dimension_table, encoding_table, rsa_table, trained_subjects


def build_report(results, out) -> pd.DataFrame:
    """Write ``summary.md``, ``findings.parquet``, ``alignment.parquet`` and ``figures/`` for a results folder.

    Parameters
    ----------
    results : path-like
        The pipeline's results folder.
    out : path-like
        Report folder (written atomically as a whole).

    Returns
    -------
    pandas.DataFrame
        The findings table.
    """
    results = Path(results)
    enc = encoding_table(results)
    rsa = rsa_table(results)
    dims = dimension_table(results)
    trained = trained_subjects(results)
    findings = [layer_hierarchy(enc), *realnet_encoding(enc, trained), *realnet_rsa(rsa, trained),
                *dimension_findings(dims, trained), *neurofusion_findings(results), *synthetic_findings(results),
                *eeg_findings(results)]
    table = pd.DataFrame([f.__dict__ for f in findings])
    with atomic_output(out) as tmp:
        figures = tmp / REPORT_FIGURES
        figures.mkdir(parents=True)
        names = gather_figures(results, figures)
        if model_comparison_figure(enc, rsa, figures / "model_comparison.png"):
            names.insert(0, "model_comparison")
        if neurofusion_figure(results, figures / "neurofusion_heldout.png"):
            names.append("neurofusion_heldout")
        table.to_parquet(tmp / REPORT_FINDINGS, index=False)
        alignment_table(enc, rsa).to_parquet(tmp / REPORT_ALIGNMENT, index=False)
        (tmp / REPORT_SUMMARY).write_text(markdown(results, table, enc, names))
    return table


def markdown(results: Path, table: pd.DataFrame, enc: pd.DataFrame, figures: list[str]) -> str:
    """``summary.md``: the findings table, the encoding scores per atlas and the list of figures."""
    n_yes = int((table["holds"] == "yes").sum())
    n_run = int((table["holds"] != "not run").sum())
    lines = [f"# brainalign results: {results}", "",
             f"{n_yes} of {n_run} checked findings hold on these data. Where a finding does not hold, the "
             "table says so; on the simulator the planted brain decides what should hold (docs/simulator.md).", "",
             "| finding | paper | expected | observed | holds |", "|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.finding} | {row.paper} | {row.expected} | {row.observed} | **{row.holds}** |")
    if len(enc):
        sel = enc[enc["layer"] == "selected"].assign(atlas=lambda d: d["roi"].str.split("/").str[0])
        sel = sel.pivot_table(index=["subject", "model"], columns="atlas", values="mean_score")
        lines += ["", "## Encoding: mean noise-ceiling-normalised score per atlas (mean over its ROIs; "
                  "CV-chosen layer per voxel)", "",
                  sel.round(3).to_markdown()]
    lines += ["", "## Figures", ""] + [f"- `{REPORT_FIGURES}/{n}.png`" for n in figures]
    return "\n".join(lines) + "\n"
