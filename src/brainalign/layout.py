"""The results layout: where every output of the pipeline lives under the results folder, defined once.

The Snakemake rules (``workflow/rules/common.smk`` and every rule file), the report, the command line and the
tests all take their paths from :class:`ResultsLayout`. Each method returns a path string; its arguments may
be concrete values (``layout.store("nsd", "subj01")`` -> ``results/stores/nsd/subj01.zarr``) or Snakemake
wildcards in braces (``layout.store("nsd", "subj{subject}")``), so one definition serves the rules' patterns
and the readers' concrete paths. :func:`find` lists the existing paths that match such a pattern, with the
values of its wildcards.

::

    RESULTS/simulated/                                      simulator output (dataset roots when simulating)
    RESULTS/stores/{dataset}/{subject}.zarr                 voxel / EEG stores (subject folder: subj01, CSI1, sub-01)
    RESULTS/features/{stimset}/stimuli.txt                  the dataset design's stimulus ids (and train_stimuli.txt)
    RESULTS/features/{stimset}/{model}.zarr                 feature caches
    RESULTS/encoding/{dataset}/{subject}/{model}/{split}/   encoders: rois.parquet, figures/score_vs_layer.png, ...
    RESULTS/encoding/{dataset}/comparisons.parquet          paired comparisons of encoders (compare-encoders)
    RESULTS/synthetic/categories.parquet                    stimulus -> category table of the synthetic stage
    RESULTS/synthetic/{dataset}/{subject}/{split}/          synthetic.zarr and evaluation/
    RESULTS/training/realnet/initial_backbone.pt            the untrained CORnet-S every ReAlnet starts from
    RESULTS/training/realnet/{subject}/{variant}/           ReAlnet-fMRI runs: backbone.pt, training_curve.png, ...
    RESULTS/training/neurofusion/                           NeuroFusionNet: backbone.pt, summary.json, ...
    RESULTS/training/neurofusion-{control}/                 its control runs (shuffled), the same files
    (every training run folder also holds stimuli.parquet: the stimuli it was trained and selected on)
    RESULTS/rsa/nsd_categories.parquet                      object-dimension table of the simulated NSD images
    RESULTS/rsa/{fmri,eeg}/                                 RSA tables and figures
    RESULTS/report/                                         summary.md, findings.parquet, alignment.parquet, figures/
    RESULTS/manifest.json, RESULTS/logs/, RESULTS/benchmarks/
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: dataset -> how its subjects' folders (store names, encoder and synthetic subfolders) are named
SUBJECT_FOLDERS = {"nsd": "subj{}", "bold5000": "CSI{}", "things_eeg2": "sub-{}"}
#: datasets whose subject numbers are zero-padded to two digits in folder names
_PADDED = {"nsd", "things_eeg2"}

#: the run manifest, at the top of a results folder (also of a packed or received copy)
MANIFEST_NAME = "manifest.json"
#: what ``brainalign report`` writes in its folder
REPORT_SUMMARY, REPORT_FINDINGS, REPORT_ALIGNMENT, REPORT_FIGURES = (
    "summary.md", "findings.parquet", "alignment.parquet", "figures")

_WILDCARD = re.compile(r"\{(\w+)(?:,[^}]*)?\}")

#: the split that holds whole categories out; its folds are the splits ``unseen-categories-fold{i}``
UNSEEN_CATEGORIES = "unseen-categories"
_FOLD = re.compile(rf"^{UNSEEN_CATEGORIES}-fold(\d+)$")


def category_fold_split(fold: int) -> str:
    """Split name of fold ``fold`` of the leave-categories-out design: ``unseen-categories-fold3``."""
    return f"{UNSEEN_CATEGORIES}-fold{int(fold)}"


def category_fold(split: str) -> int | None:
    """The fold index of a :func:`category_fold_split` name, else None."""
    m = _FOLD.match(str(split))
    return int(m.group(1)) if m else None


def subject_folder(dataset: str, subject) -> str:
    """Folder name of a subject: ``("nsd", 1)`` -> ``subj01``, ``("bold5000", 1)`` -> ``CSI1``,
    ``("things_eeg2", 1)`` -> ``sub-01``.

    ``subject`` is an int (padded as the dataset names it) or a string used as is (``"01"``, ``"{subject}"``).
    """
    if dataset not in SUBJECT_FOLDERS:
        raise ValueError(f"unknown dataset {dataset!r} (one of {', '.join(SUBJECT_FOLDERS)})")
    if isinstance(subject, int):
        subject = f"{subject:02d}" if dataset in _PADDED else str(subject)
    return SUBJECT_FOLDERS[dataset].format(subject)


@dataclass(frozen=True)
class ResultsLayout:
    """Every path under one results folder (``root``, as configured: ``config["results"]``)."""

    root: str = "results"

    def __post_init__(self):
        object.__setattr__(self, "root", str(self.root))

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    # --- simulator ---------------------------------------------------------------------------------
    def simulated(self) -> str:
        """The simulator's output folder (``brainalign simulate --out``)."""
        return self._path("simulated")

    def simulated_root(self, dataset: str) -> str:
        """A simulated dataset root in its real layout (``nsd``, ``bold5000``, ``things_eeg2``)."""
        return f"{self.simulated()}/{dataset}"

    def simulated_unseen_images(self) -> str:
        """The simulator's folder of images never shown in the scanner."""
        return f"{self.simulated()}/unseen_images"

    # --- stores ------------------------------------------------------------------------------------
    def store(self, dataset: str, subject: str) -> str:
        """Voxel (or EEG) store of one subject; ``subject`` is its folder name (:func:`subject_folder`)."""
        return self._path("stores", dataset, f"{subject}.zarr")

    # --- features ----------------------------------------------------------------------------------
    def stimulus_list(self, stimset: str) -> str:
        """Every stimulus id of a dataset's design, one per line (the rows of its feature caches)."""
        return self._path("features", stimset, "stimuli.txt")

    def train_stimulus_list(self, stimset: str) -> str:
        """The ids of :meth:`stimulus_list` that are not test images (what a PCA may be fitted on)."""
        return self._path("features", stimset, "train_stimuli.txt")

    def feature_cache(self, stimset: str, model: str) -> str:
        """Feature cache of one model on one stimulus set (``nsd``, ``bold5000``, ``things_eeg2``, ``unseen``)."""
        return self._path("features", stimset, f"{model}.zarr")

    # --- encoding ----------------------------------------------------------------------------------
    def encoder(self, dataset: str, subject: str, model: str, split: str) -> str:
        """Output folder of ``brainalign encode``: the encoder and its tables and figures."""
        return self._path("encoding", dataset, subject, model, split)

    def encoder_rois(self, dataset: str, subject: str, model: str, split: str) -> str:
        """Per-ROI x layer summary table of an encoder."""
        return f"{self.encoder(dataset, subject, model, split)}/rois.parquet"

    def encoder_roi_layers(self, dataset: str, subject: str, model: str, split: str) -> str:
        """Per-ROI layer chosen by cross-validation on the training stimuli (and its test summary)."""
        return f"{self.encoder(dataset, subject, model, split)}/roi_layers.parquet"

    def encoding_comparisons(self, dataset: str) -> str:
        """Paired stimulus-bootstrap comparisons of the dataset's encoders (``brainalign compare-encoders``)."""
        return self._path("encoding", dataset, "comparisons.parquet")

    def encoder_figure(self, dataset: str, subject: str, model: str, split: str, name: str) -> str:
        """A figure of an encoder (``score_vs_layer``)."""
        return f"{self.encoder(dataset, subject, model, split)}/figures/{name}.png"

    def encoder_map(self, dataset: str, subject: str, model: str, split: str, name: str) -> str:
        """A NIfTI map of an encoder in the store's grid (``selected_score``, ``selected_r``, ``nc``, ...)."""
        return f"{self.encoder(dataset, subject, model, split)}/maps/{name}.nii.gz"

    # --- synthetic fMRI ----------------------------------------------------------------------------
    def category_table(self) -> str:
        """Stimulus -> category table of the synthetic stage (unseen-category split, decoding)."""
        return self._path("synthetic", "categories.parquet")

    def synthetic_store(self, dataset: str, subject: str, split: str) -> str:
        """Synthetic voxel store made from one encoder (``brainalign synthesize generate``)."""
        return self._path("synthetic", dataset, subject, split, "synthetic.zarr")

    def synthetic_evaluation(self, dataset: str, subject: str, split: str) -> str:
        """Output folder of ``brainalign synthesize evaluate``."""
        return self._path("synthetic", dataset, subject, split, "evaluation")

    def synthetic_evaluation_table(self, dataset: str, subject: str, split: str, name: str) -> str:
        """A table of an evaluation (``claim1_images``, ``decoding``, ...)."""
        return f"{self.synthetic_evaluation(dataset, subject, split)}/{name}.parquet"

    def synthetic_evaluation_figure(self, dataset: str, subject: str, split: str, name: str) -> str:
        """A figure of an evaluation (``claim1``, ``decoding``)."""
        return f"{self.synthetic_evaluation(dataset, subject, split)}/figures/{name}.png"

    # --- training ----------------------------------------------------------------------------------
    def initial_backbone(self) -> str:
        """The untrained CORnet-S every ReAlnet-fMRI run starts from (a model checkpoint file)."""
        return self._path("training", "realnet", "initial_backbone.pt")

    def realnet_subject(self, subject: str) -> str:
        """Folder of one subject's ReAlnet-fMRI runs (``subject`` as :func:`subject_folder` names it)."""
        return self._path("training", "realnet", subject)

    def realnet_run(self, subject: str, variant: str) -> str:
        """Output folder of one ReAlnet-fMRI run (``variant``: aligned, beta0, shuffled)."""
        return f"{self.realnet_subject(subject)}/{variant}"

    def neurofusion_run(self) -> str:
        """Output folder of the NeuroFusionNet run."""
        return self._path("training", "neurofusion")

    def neurofusion_control_run(self, control: str) -> str:
        """Output folder of a NeuroFusionNet control run (``control``: shuffled), trained by the same code."""
        return self._path("training", f"neurofusion-{control}")

    @staticmethod
    def backbone_weights(run: str) -> str:
        """The exported image backbone of a training run folder (what feature caches load)."""
        return f"{run}/backbone.pt"

    @staticmethod
    def training_curve(run: str) -> str:
        """The training-curve figure of a training run folder."""
        return f"{run}/training_curve.png"

    @staticmethod
    def training_summary(run: str) -> str:
        """The ``summary.json`` of a training run folder."""
        return f"{run}/summary.json"

    @staticmethod
    def training_record(run: str) -> str:
        """The training record of a training run folder: every stimulus it was trained (``role`` train) or
        selected (val) on, with the subject (``stimuli.parquet``, :mod:`brainalign.heldout`)."""
        return f"{run}/stimuli.parquet"

    @staticmethod
    def neurofusion_heldout_predictions(run: str) -> str:
        """A NeuroFusionNet run's held-out predictions: shared-image ids, measured and predicted (trained and
        initial weights) responses of the held-out subject (``heldout_predictions.npz``)."""
        return f"{run}/heldout_predictions.npz"

    # --- RSA ---------------------------------------------------------------------------------------
    def nsd_category_table(self) -> str:
        """Per-image categories of the simulated NSD images (the demo's object dimensions)."""
        return self._path("rsa", "nsd_categories.parquet")

    def rsa(self, modality: str) -> str:
        """Output folder of ``brainalign rsa`` (``fmri`` or ``eeg``)."""
        return self._path("rsa", modality)

    def rsa_table(self, modality: str, name: str) -> str:
        """A table of an RSA folder (``rsa_fmri``, ``dimensions``, ``rsa_eeg``, ``rsa_eeg_clusters``; fMRI with
        comparisons also ``rsa_comparisons``, ``rsa_layers``, ``rsa_models``)."""
        return f"{self.rsa(modality)}/{name}.parquet"

    def rsa_figure(self, modality: str, name: str) -> str:
        """A figure of an RSA folder (``rsa_fmri``, ``dimensions``, ``rsa_eeg``)."""
        return f"{self.rsa(modality)}/{name}.png"

    # --- report and run records --------------------------------------------------------------------
    def report(self) -> str:
        """Output folder of ``brainalign report``."""
        return self._path("report")

    def report_summary(self) -> str:
        return f"{self.report()}/{REPORT_SUMMARY}"

    def report_figures(self) -> str:
        return f"{self.report()}/{REPORT_FIGURES}"

    def report_findings(self) -> str:
        return f"{self.report()}/{REPORT_FINDINGS}"

    def report_alignment(self) -> str:
        return f"{self.report()}/{REPORT_ALIGNMENT}"

    def manifest(self) -> str:
        """The run manifest (``brainalign manifest``)."""
        return self._path(MANIFEST_NAME)

    def log(self, *parts: str) -> str:
        """Log file of a job: ``log("simulate")`` -> ``logs/simulate.log``, ``log("encoding", name)`` ->
        ``logs/encoding/<name>.log``."""
        return self._path("logs", *parts) + ".log"

    def benchmark(self, *parts: str) -> str:
        """Benchmark table of a job, named like its :meth:`log`."""
        return self._path("benchmarks", *parts) + ".tsv"


def wildcard_names(pattern: str) -> list[str]:
    """Names of the wildcards of a pattern, in order of first appearance."""
    return list(dict.fromkeys(m.group(1) for m in _WILDCARD.finditer(pattern)))


def pattern_regex(pattern: str) -> re.Pattern:
    """Regular expression matching the paths of a pattern; each wildcard matches one path component
    (a repeated wildcard must take the same value)."""
    out, seen, pos = [], set(), 0
    for m in _WILDCARD.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out))


def find(pattern: str) -> list[tuple[dict, Path]]:
    """The existing paths matching a layout pattern, each with its wildcard values, sorted by path.

    Parameters
    ----------
    pattern : str
        A :class:`ResultsLayout` path with wildcards, e.g. ``layout.encoder_rois("nsd", "{subject}", "{model}",
        "nsd-shared")``.

    Returns
    -------
    list of (dict, Path)
        ``({wildcard: value}, path)`` for every match (``[({}, path)]`` for an existing path without wildcards).
    """
    parts = pattern.split("/")
    static = 0
    while static < len(parts) and not _WILDCARD.search(parts[static]):
        static += 1
    if static == len(parts):
        return [({}, Path(pattern))] if Path(pattern).exists() else []
    base = Path("/".join(parts[:static]) or ".")
    glob = _WILDCARD.sub("*", "/".join(parts[static:]))
    regex = pattern_regex("/".join(parts[static:]))
    found = []
    for path in sorted(base.glob(glob)):
        m = regex.fullmatch(path.relative_to(base).as_posix())
        if m:
            found.append((m.groupdict(), path))
    return found
