"""The report document: ``summary.md``, ``findings.parquet``, ``alignment.parquet`` and ``figures/`` of a
results folder (:func:`build_report`, ``brainalign report``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_output
from ..inference import ALPHA, LEVEL, VERDICTS
from ..layout import REPORT_ALIGNMENT, REPORT_FIGURES, REPORT_FINDINGS, REPORT_SUMMARY
from .brain_maps import encoding_brain_maps, synthetic_brain_maps
from .figures import gather_figures, model_comparison_figure, neurofusion_figure
from .findings import (alignment_table, dimension_findings, eeg_findings, findings_table, layer_hierarchy,
                       neurofusion_findings, realnet_encoding, realnet_rsa, synthetic_findings)
from .overview import brain_map_lines, plain_summary
from .sources import (dimension_table, encoding_comparisons, encoding_table, layer_orders, model_weights,
                      model_weights_table, roi_layer_table, rsa_comparisons, rsa_layers, rsa_table, trained_subjects)

#: the networks whose layer hierarchy is tested when their encoders exist
HIERARCHY_MODELS = ("alexnet", "cornet_s")


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
        The findings table (:data:`brainalign.report.findings.FINDING_COLUMNS`).
    """
    results = Path(results)
    enc = encoding_table(results)
    rsa = rsa_table(results)
    comparisons = rsa_comparisons(results)
    weights = model_weights(results)
    trained = trained_subjects(results)
    orders, chosen = layer_orders(enc), roi_layer_table(results)
    hierarchy = [layer_hierarchy(chosen, orders, m) for m in HIERARCHY_MODELS if m in orders] or \
        [layer_hierarchy(chosen, orders, HIERARCHY_MODELS[0])]
    findings = [*hierarchy, *realnet_encoding(encoding_comparisons(results), trained, weights),
                *realnet_rsa(comparisons, trained, weights),
                *dimension_findings(comparisons, trained, weights, dimension_table(results)),
                *neurofusion_findings(results), *synthetic_findings(results), *eeg_findings(results)]
    table = findings_table(findings)
    layers = rsa_layers(results)
    with atomic_output(out) as tmp:
        figures = tmp / REPORT_FIGURES
        figures.mkdir(parents=True)
        names = gather_figures(results, figures)
        if model_comparison_figure(enc, rsa, figures / "model_comparison.png", layers):
            names.insert(0, "model_comparison")
        if neurofusion_figure(results, figures / "neurofusion_heldout.png"):
            names.append("neurofusion_heldout")
        # the brain maps open the report (and the figure list)
        names = encoding_brain_maps(results, figures) + synthetic_brain_maps(results, figures) + names
        table.to_parquet(tmp / REPORT_FINDINGS, index=False)
        alignment_table(enc, rsa).to_parquet(tmp / REPORT_ALIGNMENT, index=False)
        (tmp / REPORT_SUMMARY).write_text(markdown(results, table, enc, names, model_weights_table(results), layers))
    return table


def _number(value, digits=3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def markdown(results: Path, table: pd.DataFrame, enc: pd.DataFrame, figures: list[str],
             models: pd.DataFrame | None = None, layers: pd.DataFrame | None = None) -> str:
    """``summary.md``: how verdicts are reached, the findings table (claim, test, effect [CI], p, n, verdict, note,
    observed), the baselines' weights, the encoding scores per atlas and the list of figures."""
    counts = table["verdict"].value_counts()
    tally = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)
    opening = brain_map_lines(figures)
    lines = [f"# brainalign results: {results}", "", plain_summary(table, bool(opening)), "", *opening,
             "## Findings", "", f"{len(table)} findings: {tally}.", "",
             "Every verdict comes from a test declared before the run (docs/methods.md §6), never from comparing two "
             f"means: **yes** = the test rejects 'no effect' at alpha = {ALPHA} (two-sided, after the stated "
             "correction) with the effect in the claimed direction; **no** = it rejects with the effect against the "
             "claim; **inconclusive** = it does not reject (a difference within noise, however the means fall); "
             "**not testable** = the design cannot reach alpha or the inputs are missing (the note says which). "
             f"Effects are signed so that positive supports the claim, with {LEVEL:.0%} confidence intervals. "
             "Nothing is selected on test data: RSA layers are chosen on each subject's training images "
             "(rsa/fmri/rsa_layers.parquet), the hierarchy uses the encoders' cross-validated layer choices "
             "(roi_layers.parquet), the decoder's sample size is fixed in the config. On the simulator the planted "
             "brain decides what should hold (docs/simulator.md).", "",
             "| finding | claim | test | effect [95% CI] | p | n | verdict | note | observed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        effect = f"{_number(row.effect, 4)} [{_number(row.ci_low, 4)}, {_number(row.ci_high, 4)}]"
        p = _p(row.p) + (f" (raw {_p(row.p_uncorrected)})" if np.isfinite(row.p) and
                         np.isfinite(row.p_uncorrected) and row.p != row.p_uncorrected else "")
        lines.append(f"| {_cell(row.finding)} | {_cell(row.claim)} | {_cell(row.test)} | {effect} | {p} | "
                     f"{_cell(row.n)} | **{row.verdict}** | {_cell(row.note)} | {_cell(row.observed)} |")
    if models is not None and len(models):
        lines += ["", "## Models and their weights", "",
                  "Where each compared model's weights come from (feature-cache records). A baseline with random "
                  "weights is an untrained network: 'ReAlnet > initial CORnet-S' then only says that training helps; "
                  "the informative comparisons are against the beta=0 and shuffled controls (same code, same images).",
                  "", "| model | weights | weights before brain training | stimuli trained/selected on |",
                  "|---|---|---|---|"]
        for row in models.itertuples():
            lines.append(f"| {row.model} | {_cell(row.weights)} | {_cell(row.weights_origin)} | "
                         f"{row.n_training_stimuli} |")
    if layers is not None and len(layers):
        pivot = layers.pivot_table(index=["model", "subject"], columns="roi", values="layer", aggfunc="first")
        lines += ["", "## RSA: each model's layer per ROI, chosen on the subject's training images", "",
                  f"Criterion: {layers['criterion'].iloc[0]}.", "", pivot.to_markdown()]
    if len(enc):
        sel = enc[enc["layer"] == "selected"].assign(atlas=lambda d: d["roi"].str.split("/").str[0])
        sel = sel.pivot_table(index=["subject", "model"], columns="atlas", values="mean_score")
        lines += ["", "## Encoding: mean noise-ceiling-normalised score per atlas (mean over its ROIs; "
                  "CV-chosen layer per voxel)", "",
                  sel.round(3).to_markdown()]
    lines += ["", "## Figures", ""] + [f"- `{REPORT_FIGURES}/{n}.png`" for n in figures]
    return "\n".join(lines) + "\n"
