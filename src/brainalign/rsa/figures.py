"""Figures of ``brainalign rsa``: fMRI bars per ROI, EEG time courses per layer, object dimensions.

Each function builds a figure from the stage's tables; the pipeline saves it with
:func:`brainalign.plotting.save_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import pyplot


def _in_order(values) -> list:
    """The distinct values in order of first appearance (the order models and layers were given in)."""
    return list(dict.fromkeys(values))


def fmri_figure(table: pd.DataFrame, rois):
    """Model-vs-ROI similarity per layer: bars = mean over subjects (± SEM), dots = subjects, grey = noise ceiling.

    Parameters
    ----------
    table : the ``rsa_fmri.parquet`` table (rows with ``subject == "mean"`` are ignored)
    rois : list of str, one panel each

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    subj = table[table.subject != "mean"]
    models = _in_order(subj.model)
    layer_keys = _in_order(zip(subj.model, subj.layer))
    fig, axes = plt.subplots(1, len(rois), figsize=(max(4, 0.45 * len(layer_keys) + 1.5) * len(rois), 3.6),
                             squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, roi in zip(axes[0], rois):
        d = subj[subj.roi == roi]
        nc_low, nc_high = d.nc_low.iloc[0], d.nc_high.iloc[0]
        if np.isfinite(nc_low):
            ax.axhspan(nc_low, nc_high, color="0.85", zorder=0, label="noise ceiling")
        labelled = set()
        for x, (mname, layer) in enumerate(layer_keys):
            v = d[(d.model == mname) & (d.layer == layer)]
            mean = v.value.mean()
            err = v.value.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
            ax.bar(x, mean, yerr=err, color=colours(models.index(mname) % 10), capsize=2,
                   label=None if mname in labelled else mname)
            labelled.add(mname)
            ax.scatter(np.full(len(v), x), v.value, s=8, color="k", zorder=3)
        ax.set_xticks(range(len(layer_keys)), [layer for _, layer in layer_keys], rotation=60, fontsize=7)
        ax.set_title(roi, fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
    axes[0, 0].set_ylabel(f"RDM similarity ({subj.method.iloc[0]})")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def eeg_figure(table: pd.DataFrame, clusters: pd.DataFrame):
    """Model-vs-EEG time courses per layer: mean over subjects (± SEM), noise ceiling, significant clusters.

    Parameters
    ----------
    table : the ``rsa_eeg.parquet`` table (rows with ``subject == "mean"`` are ignored)
    clusters : the ``rsa_eeg_clusters.parquet`` table; significant clusters against zero are drawn as bars

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    subj = table[table.subject != "mean"]
    layer_names = _in_order(subj.layer)
    models = _in_order(subj.model)
    fig, axes = plt.subplots(1, len(layer_names), figsize=(4.2 * len(layer_names), 3.4), squeeze=False,
                             sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, layer in zip(axes[0], layer_names):
        d = subj[subj.layer == layer]
        first = d[d.model == d.model.iloc[0]].groupby("time", sort=True)[["nc_low", "nc_high"]].first()
        if np.isfinite(first.nc_low).any():
            ax.fill_between(first.index, first.nc_low, first.nc_high, color="0.85", label="noise ceiling", lw=0)
        ymin = np.nanmin(d.value)
        for m_i, mname in enumerate(models):
            curve = d[d.model == mname].groupby("time", sort=True).value
            if curve.ngroups == 0:
                continue
            mean, sem = curve.mean(), curve.sem()
            col = colours(m_i % 10)
            ax.plot(mean.index, mean.values, color=col, label=mname)
            if np.isfinite(sem.values).any():
                ax.fill_between(mean.index, mean - sem, mean + sem, color=col, alpha=0.25, lw=0)
            sig = clusters[(clusters.model == mname) & (clusters.layer == layer) & (clusters.versus == "zero")
                           & clusters.significant]
            y = ymin - 0.02 * (m_i + 1)
            for _, c in sig.iterrows():
                ax.plot([c.start_time, c.stop_time], [y, y], color=col, lw=3, solid_capstyle="butt")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel(f"model-EEG similarity ({subj.method.iloc[0]})")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def dimension_figure(table: pd.DataFrame):
    """Layer-vs-dimension similarity heat map and, with a baseline, the per-layer differences with their CIs.

    Parameters
    ----------
    table : the ``dimensions.parquet`` table (:func:`brainalign.rsa.dimensions.dimension_table`)

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    per = table[table.layer != "all"]
    dims = _in_order(per.dimension)
    keys = _in_order(zip(per.model, per.layer))
    grid = per.pivot_table(index=["model", "layer"], columns="dimension", values="value", sort=False)
    grid = grid.reindex(index=pd.MultiIndex.from_tuples(keys), columns=dims)
    diff = per.dropna(subset=["diff"])
    n_panels = 2 if len(diff) else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(4 + 0.5 * len(dims) + (6 if n_panels == 2 else 0),
                                                    max(3.0, 0.22 * len(keys) + 1.5)), squeeze=False)
    ax = axes[0, 0]
    lim = max(1e-6, float(np.nanmax(np.abs(grid.to_numpy()))))
    im = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(dims)), dims, rotation=60, fontsize=7)
    ax.set_yticks(range(len(keys)), [f"{m} {layer}" for m, layer in keys], fontsize=6)
    ax.set_title(f"layer RDM vs dimension RDM ({per.method.iloc[0]})", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if n_panels == 2:
        ax = axes[0, 1]
        dkeys = _in_order(zip(diff.model, diff.layer))
        width = 0.8 / max(1, len(dims))
        colours = plt.get_cmap("tab10")
        for d_i, dname in enumerate(dims):
            part = diff[diff.dimension == dname].set_index(["model", "layer"]).reindex(dkeys)
            x = np.arange(len(dkeys)) + (d_i - (len(dims) - 1) / 2) * width
            err = np.vstack([part["diff"] - part["diff_ci_low"], part["diff_ci_high"] - part["diff"]])
            ax.bar(x, part["diff"], width, color=colours(d_i % 10), label=dname,
                   yerr=None if np.isnan(err).all() else np.abs(err), capsize=1.5, error_kw={"lw": 0.6})
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(dkeys)), [f"{m} {layer}" for m, layer in dkeys], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel(f"difference vs {diff.baseline.iloc[0]}")
        ax.set_title("model minus baseline (bootstrap CI)", fontsize=9)
        ax.legend(fontsize=6, frameon=False, ncol=2)
    fig.tight_layout()
    return fig
