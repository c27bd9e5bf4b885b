"""Figures of ``brainalign synthesize evaluate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import pyplot, save_figure


def evaluation_figures(t_tests: pd.DataFrame, t_dec: pd.DataFrame, folder: Path) -> None:
    """``claim1.png`` (mean pattern correlations per ROI) and ``decoding.png`` (balanced accuracy against the
    number of synthetic training samples) in ``folder``, each when its table has rows.

    Parameters
    ----------
    t_tests : DataFrame ``claim1_tests.parquet`` (roi, level, mean_a, mean_b, ...)
    t_dec : DataFrame ``decoding.parquet`` (roi, train, n_per_class, balanced_accuracy, chance, ...); the rows of
        the declared sample size (``declared``) are starred
    folder : Path
    """
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    if len(t_tests):
        tt = t_tests[t_tests["level"] == "image"]
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(tt) + 2), 4))
        x = np.arange(len(tt))
        ax.bar(x - 0.2, tt["mean_a"], 0.4, label="synthetic vs real rep")
        ax.bar(x + 0.2, tt["mean_b"], 0.4, label="real rep vs real rep")
        ax.set_xticks(x)
        ax.set_xticklabels(tt["roi"], rotation=30, ha="right")
        ax.set_ylabel("mean pattern correlation (held-out images)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        save_figure(fig, folder / "claim1.png", dpi=120)
    if len(t_dec):
        fig, ax = plt.subplots(figsize=(6, 4))
        for roi, g in t_dec.groupby("roi", sort=False):
            s = g[g["train"] == "synthetic"]
            line = ax.plot(s["n_per_class"], s["balanced_accuracy"], marker="o", label=f"{roi} (synthetic)")[0]
            if "declared" in s.columns and s["declared"].any():  # the size the verdict is taken at
                d = s[s["declared"].astype(bool)]
                ax.scatter(d["n_per_class"], d["balanced_accuracy"], marker="*", s=120, color=line.get_color(),
                           zorder=3)
            r = g[g["train"] == "real"]
            if len(r):
                ax.scatter(r["n_per_class"], r["balanced_accuracy"], marker="s", color=line.get_color(),
                           label=f"{roi} (real)")
        ax.axhline(float(t_dec["chance"].iloc[0]), color="k", ls="--", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("training samples per class")
        ax.set_ylabel("balanced accuracy on real responses")
        ax.legend(fontsize="x-small", ncol=2)
        fig.tight_layout()
        save_figure(fig, folder / "decoding.png", dpi=120)
