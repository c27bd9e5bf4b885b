"""What the report reads from a results folder, all through the results layout (:mod:`brainalign.layout`).

:func:`report_inputs` names every path pattern the report reads; the readers below and the figure list
use only those, so a test can check each against the workflow's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..layout import ResultsLayout, find, subject_folder


def report_inputs(layout: ResultsLayout) -> dict[str, str]:
    """Every path pattern (wildcards in braces) the report reads under ``layout``'s results folder, by name."""
    evaluation = ("{dataset}", "{subject}", "{split}")
    return {
        "encoding_rois": layout.encoder_rois("nsd", "{subject}", "{model}", "nsd-shared"),
        "encoding_figure": layout.encoder_figure("nsd", "{subject}", "{model}", "nsd-shared", "score_vs_layer"),
        "rsa_fmri": layout.rsa_table("fmri", "rsa_fmri"),
        "rsa_fmri_figure": layout.rsa_figure("fmri", "rsa_fmri"),
        "rsa_dimensions": layout.rsa_table("fmri", "dimensions"),
        "rsa_dimensions_figure": layout.rsa_figure("fmri", "dimensions"),
        "rsa_eeg": layout.rsa_table("eeg", "rsa_eeg"),
        "rsa_eeg_clusters": layout.rsa_table("eeg", "rsa_eeg_clusters"),
        "rsa_eeg_figure": layout.rsa_figure("eeg", "rsa_eeg"),
        "synthetic_evaluation": layout.synthetic_evaluation(*evaluation),
        "synthetic_claim1": layout.synthetic_evaluation_table(*evaluation, "claim1_images"),
        "synthetic_decoding": layout.synthetic_evaluation_table(*evaluation, "decoding"),
        "synthetic_figure": layout.synthetic_evaluation_figure(*evaluation, "{name}"),
        "realnet_subject": layout.realnet_subject(subject_folder("nsd", "{number}")),
        "realnet_curve": layout.training_curve(layout.realnet_run("{subject}", "{variant}")),
        "neurofusion_summary": layout.training_summary(layout.neurofusion_run()),
        "neurofusion_curve": layout.training_curve(layout.neurofusion_run()),
    }


#: figures gathered from the stages: (report_inputs name, name in the report; wildcards filled in)
FIGURES = [
    ("encoding_figure", "encoding_{subject}_{model}"),
    ("rsa_fmri_figure", "rsa_fmri"),
    ("rsa_dimensions_figure", "rsa_dimensions"),
    ("rsa_eeg_figure", "rsa_eeg"),
    ("synthetic_figure", "synthetic_{subject}_{split}_{name}"),
    ("realnet_curve", "training_{subject}_{variant}"),
    ("neurofusion_curve", "training_neurofusion"),
]


def inputs(results) -> dict[str, str]:
    """:func:`report_inputs` of a results folder."""
    return report_inputs(ResultsLayout(str(results)))


def read_table(path) -> pd.DataFrame:
    """A parquet table, or an empty one when the stage that writes it did not run."""
    return pd.read_parquet(path) if Path(path).exists() else pd.DataFrame()


def read_many(pattern: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """Concatenate every table matching a layout pattern; the wildcards named ``columns`` become columns."""
    frames = []
    for values, path in find(pattern):
        df = pd.read_parquet(path)
        for name in columns:
            df[name] = values[name]
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def encoding_table(results) -> pd.DataFrame:
    """Per-ROI encoding summaries of every NSD model: subject, model, roi, layer, mean_score, mean_r, ..."""
    return read_many(inputs(results)["encoding_rois"], ("subject", "model"))


def rsa_table(results) -> pd.DataFrame:
    """``rsa/fmri/rsa_fmri.parquet`` (empty if RSA did not run)."""
    return read_table(inputs(results)["rsa_fmri"])


def dimension_table(results) -> pd.DataFrame:
    """``rsa/fmri/dimensions.parquet`` (empty if the object-dimension analysis did not run)."""
    return read_table(inputs(results)["rsa_dimensions"])


def trained_subjects(results) -> list[str]:
    """Subject folders (``subj01``, ...) with ReAlnet-fMRI runs, sorted."""
    return sorted({path.name for _, path in find(inputs(results)["realnet_subject"]) if path.is_dir()})


def synthetic_evaluations(results) -> list[tuple[dict, dict[str, Path]]]:
    """Every synthetic-fMRI evaluation folder: its wildcards (dataset, subject, split) and its table paths."""
    patterns = inputs(results)
    out = []
    for values, _ in find(patterns["synthetic_evaluation"]):
        tables = {name: Path(patterns[f"synthetic_{name}"].format(**values)) for name in ("claim1", "decoding")}
        out.append((values, tables))
    return out


def neurofusion_summary(results) -> dict | None:
    """NeuroFusionNet's ``summary.json`` when it scored a held-out subject before and after training, else None."""
    path = Path(inputs(results)["neurofusion_summary"])
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("heldout") and summary.get("heldout_initial") else None
