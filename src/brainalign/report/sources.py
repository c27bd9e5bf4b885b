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
        "encoding_roi_layers": layout.encoder_roi_layers("nsd", "{subject}", "{model}", "nsd-shared"),
        "encoding_comparisons": layout.encoding_comparisons("nsd"),
        "encoding_figure": layout.encoder_figure("nsd", "{subject}", "{model}", "nsd-shared", "score_vs_layer"),
        "encoding_score_map": layout.encoder_map("nsd", "{subject}", "{model}", "nsd-shared", "selected_score"),
        "voxel_store": layout.store("{dataset}", "{subject}"),
        "rsa_fmri": layout.rsa_table("fmri", "rsa_fmri"),
        "rsa_fmri_figure": layout.rsa_figure("fmri", "rsa_fmri"),
        "rsa_dimensions": layout.rsa_table("fmri", "dimensions"),
        "rsa_comparisons": layout.rsa_table("fmri", "rsa_comparisons"),
        "rsa_layers": layout.rsa_table("fmri", "rsa_layers"),
        "rsa_models": layout.rsa_table("fmri", "rsa_models"),
        "rsa_dimensions_figure": layout.rsa_figure("fmri", "dimensions"),
        "rsa_eeg": layout.rsa_table("eeg", "rsa_eeg"),
        "rsa_eeg_clusters": layout.rsa_table("eeg", "rsa_eeg_clusters"),
        "rsa_eeg_figure": layout.rsa_figure("eeg", "rsa_eeg"),
        "synthetic_evaluation": layout.synthetic_evaluation(*evaluation),
        "synthetic_claim1": layout.synthetic_evaluation_table(*evaluation, "claim1_images"),
        "synthetic_claim1_tests": layout.synthetic_evaluation_table(*evaluation, "claim1_tests"),
        "synthetic_claim1_voxels": layout.synthetic_evaluation_table(*evaluation, "claim1_voxels"),
        "synthetic_decoding": layout.synthetic_evaluation_table(*evaluation, "decoding"),
        "synthetic_figure": layout.synthetic_evaluation_figure(*evaluation, "{name}"),
        "realnet_subject": layout.realnet_subject(subject_folder("nsd", "{number}")),
        "realnet_curve": layout.training_curve(layout.realnet_run("{subject}", "{variant}")),
        "neurofusion_summary": layout.training_summary(layout.neurofusion_run()),
        "neurofusion_predictions": layout.neurofusion_heldout_predictions(layout.neurofusion_run()),
        "neurofusion_control_predictions": layout.neurofusion_heldout_predictions(
            layout.neurofusion_control_run("{control}")),
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
        tables = {name: Path(patterns[f"synthetic_{name}"].format(**values))
                  for name in ("claim1", "claim1_tests", "decoding")}
        out.append((values, tables))
    return out


def neurofusion_summary(results) -> dict | None:
    """NeuroFusionNet's ``summary.json`` when it scored a held-out subject before and after training, else None."""
    path = Path(inputs(results)["neurofusion_summary"])
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("heldout") and summary.get("heldout_initial") else None


def layer_orders(enc: pd.DataFrame) -> dict[str, list[str]]:
    """Each model's layers in network order (the order of its encoders' ``rois.parquet``; combined fits left out)."""
    if not len(enc):
        return {}
    layers = enc[~enc["layer"].isin(["selected", "banded"])]
    return {model: list(dict.fromkeys(part["layer"])) for model, part in layers.groupby("model", sort=False)}


def roi_layer_table(results) -> pd.DataFrame:
    """The CV-chosen layer per ROI of every NSD encoder (``roi_layers.parquet``): subject, model, roi, layer, ..."""
    return read_many(inputs(results)["encoding_roi_layers"], ("subject", "model"))


def encoding_comparisons(results) -> pd.DataFrame:
    """``encoding/nsd/comparisons.parquet`` (empty if the comparisons did not run)."""
    return read_table(inputs(results)["encoding_comparisons"])


def rsa_comparisons(results) -> pd.DataFrame:
    """``rsa/fmri/rsa_comparisons.parquet`` (empty if the RSA stage ran without comparisons)."""
    return read_table(inputs(results)["rsa_comparisons"])


def rsa_layers(results) -> pd.DataFrame:
    """``rsa/fmri/rsa_layers.parquet``: each model's layer per subject and ROI, chosen on training images."""
    return read_table(inputs(results)["rsa_layers"])


def model_weights(results) -> dict[str, str]:
    """Model name -> where its weights come from (``random``, ``imagenet:<file>``, ...; ``rsa_models.parquet``)."""
    table = read_table(inputs(results)["rsa_models"])
    return dict(zip(table["model"], table["weights_origin"])) if len(table) else {}


def model_weights_table(results) -> pd.DataFrame:
    """``rsa_models.parquet``: model, weights, weights_origin, n_training_stimuli (empty if absent)."""
    return read_table(inputs(results)["rsa_models"])


def neurofusion_predictions(results, controls: bool = False):
    """NeuroFusionNet's held-out predictions (``heldout_predictions.npz``: stimulus, measured, trained, initial, ...)
    as a dict of arrays, or None; with ``controls`` a dict control name -> that control run's arrays."""
    import numpy as np

    def load(path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    patterns = inputs(results)
    if controls:
        return {values["control"]: load(path) for values, path in find(patterns["neurofusion_control_predictions"])}
    path = Path(patterns["neurofusion_predictions"])
    return load(path) if path.exists() else None
