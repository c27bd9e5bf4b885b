"""Figures of training: the training curve."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..plotting import pyplot, save_figure


def plot_curves(df: pd.DataFrame, path: Path) -> None:
    """One panel per loss part: train and val against epoch."""
    plt = pyplot()
    keys = sorted({c[len("train_"):] for c in df.columns if c.startswith("train_")})
    if df.empty or not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", "-o"), ("val", "--s")):
            col = f"{split}_{key}"
            if col in df and df[col].notna().any():
                ax.plot(df["epoch"], df[col], style, ms=3, label=split)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
