"""The report's figures: the stages' own figures gathered under report names, and the report's bar charts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..layout import find
from ..plotting import pyplot, save_figure
from .findings import WHOLE_ROI
from .sources import FIGURES, inputs, neurofusion_summary


def gather_figures(results: Path, out: Path) -> list[str]:
    """Copy the stages' figures (:data:`~brainalign.report.sources.FIGURES`) into ``out``; return their names."""
    patterns = inputs(results)
    names = []
    for source, template in FIGURES:
        for values, path in find(patterns[source]):
            name = template.format(**values)
            shutil.copyfile(path, out / f"{name}.png")
            names.append(name)
    return names


def model_comparison_figure(enc: pd.DataFrame, rsa: pd.DataFrame, path: Path,
                            layers: pd.DataFrame | None = None) -> bool:
    """Bar chart: encoding r and RSA per model, within vs across subjects. RSA bars use each model's layer chosen on
    the subject's training images (``layers``: ``rsa_layers.parquet``), else the mean over its layers; never the
    best layer on the test images."""
    if not len(enc) and not len(rsa):
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if len(enc):
        sel = enc[(enc["layer"] == "selected") & (enc["roi"] == WHOLE_ROI)]
        table = sel.pivot_table(index="model", columns="subject", values="mean_r")
        table.plot.bar(ax=axes[0])
        axes[0].legend(title="subject", loc="lower right")
        axes[0].set_ylabel("mean test r (nsdgeneral, CV-chosen layer)")
        axes[0].set_title("Encoding: features -> held-out voxels")
    if len(rsa):
        per = rsa[rsa["subject"] != "mean"]
        if layers is not None and len(layers):
            chosen = layers[["model", "subject", "roi", "layer"]]
            per = per.merge(chosen, on=["model", "subject", "roi", "layer"], how="inner")
            label = "layer chosen on training images"
        else:
            label = "mean over layers"
        values = per.groupby(["model", "relation", "subject", "roi"])["value"].mean()
        values.groupby(["model", "relation"]).mean().unstack("relation").plot.bar(ax=axes[1])
        axes[1].legend(title="subject relation", loc="upper right")
        axes[1].set_ylabel(f"RSA rho ({label}, mean over ROIs)")
        axes[1].set_title("RSA: model vs fMRI RDMs")
    _save_bar_figure(fig, axes, path)
    return True


def neurofusion_figure(results: Path, path: Path) -> bool:
    """Bars per ROI: held-out subject's PCC with the initial and the trained image network."""
    summary = neurofusion_summary(results)
    if summary is None:
        return False
    plt = pyplot()
    table = pd.DataFrame({"initial": summary["heldout_initial"]["roi_pcc"], "trained": summary["heldout"]["roi_pcc"]})
    table.loc["all voxels"] = [summary["heldout_initial"]["mean_pcc"], summary["heldout"]["mean_pcc"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    table.plot.bar(ax=ax)
    ax.set_ylabel("mean PCC (held-out subject, shared images)")
    ax.set_title(f"NeuroFusionNet: {summary['heldout']['subject']} never trained on")
    _save_bar_figure(fig, [ax], path)
    return True


def _save_bar_figure(fig, axes, path: Path) -> None:
    """Slanted category labels (model and ROI names are long), then save and close."""
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_ha("right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
