"""Shared plotting helpers: a headless pyplot and atomic figure saving (every stage's figures go through these)."""

from __future__ import annotations

from ._io import atomic_output


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (jobs run without a display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 120, **kwargs) -> None:
    """Save a matplotlib figure atomically as PNG and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Output ``.png`` file; written under a temporary name and renamed at the end.
    dpi : int
    **kwargs
        Passed to ``Figure.savefig`` (e.g. ``bbox_inches="tight"``).
    """
    plt = pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **kwargs)
    plt.close(fig)
