"""Figures of ``brainalign encode``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plotting import pyplot, save_figure


def plot_score_vs_layer(roi_table: pd.DataFrame, layers, path: Path, metric: str = "mean_score"):
    """Line plot of an ROI summary metric against layer order, one line per ROI."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    t = roi_table[roi_table["layer"].isin(layers)]
    for roi, g in t.groupby("roi", sort=False):
        g = g.set_index("layer").reindex(layers)
        ax.plot(range(len(layers)), g[metric].to_numpy(), marker="o", label=roi)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=30, ha="right")
    ax.set_ylabel({"mean_score": "mean noise-ceiling-normalised score", "mean_r": "mean test r"}.get(metric, metric))
    ax.set_xlabel("layer")
    ax.legend(fontsize="small", ncol=2 if t["roi"].nunique() > 8 else 1)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
