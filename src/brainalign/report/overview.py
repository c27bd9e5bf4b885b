"""The opening of ``summary.md``, for a reader who will not read code: the findings in plain words and the
brain maps (:mod:`brainalign.report.brain_maps`), before the detailed tables."""

from __future__ import annotations

import pandas as pd

from ..inference import VERDICTS
from ..layout import REPORT_FIGURES

#: (finding-name prefix, text the name must contain, what the finding claims in plain words); the first match wins.
#: The names are those of :mod:`brainalign.report.findings`; a finding matching none is named as it is.
#: ReAlnet against the initial CORnet-S it started from is a topic of its own: it shows that training changed the
#: network, not that the alignment term did (that is what the controls, trained the same way, show).
TOPICS = [
    ("layer hierarchy", "", "early visual areas are predicted best by earlier network layers than category-selective "
                            "areas"),
    ("encoding: ReAlnet", "initial CORnet-S", "training lifts ReAlnet's held-out fMRI prediction above the "
                                              "CORnet-S it started from"),
    ("encoding: ReAlnet", "", "the brain-aligned ReAlnet predicts held-out fMRI better than its controls (the same "
                              "training without the alignment term, or with shuffled image-fMRI pairs)"),
    ("RSA: ReAlnet", "initial CORnet-S", "training makes ReAlnet's representations more brain-like (RSA) than "
                                         "those of the CORnet-S it started from"),
    ("RSA: ReAlnet", "", "ReAlnet's representations resemble the brain's (RSA) more than its controls' do"),
    ("object dimensions", "initial CORnet-S", "ReAlnet's layers reflect the images' object categories more than "
                                              "those of the CORnet-S it started from"),
    ("object dimensions", "", "ReAlnet's layers reflect the images' object categories more than its controls' do"),
    ("NeuroFusionNet", "", "NeuroFusionNet's image network predicts an unseen subject's voxels better after "
                           "training"),
    ("claim 1", "", "synthetic fMRI matches real responses better than real repetitions match each other"),
    ("claim 2", "", "a decoder trained on synthetic fMRI recognises the categories in real fMRI"),
    ("synthetic fMRI", "", "synthetic fMRI can stand in for real fMRI"),
    ("EEG RSA", "", "model-EEG similarity rises after the image appears, not before"),
]
#: how a verdict reads in the summary (the tally uses the words before the parenthesis)
IN_WORDS = {"yes": "supported", "no": "contradicted (the test found the opposite of the claim)",
            "inconclusive": "inconclusive (within noise)", "not testable": "not testable here"}


def _topic(finding: str) -> str:
    for prefix, contains, words in TOPICS:
        if finding.startswith(prefix) and contains in finding:
            return words
    return finding


def plain_summary(table: pd.DataFrame, brain_maps: bool = False) -> str:
    """One paragraph: how many findings got each verdict, and each claim with its verdict in words.

    Parameters
    ----------
    table : DataFrame
        The findings table (columns ``finding`` and ``verdict``; verdicts from
        :data:`brainalign.inference.VERDICTS`).
    brain_maps : bool
        Whether brain maps follow (the paragraph then points to them).

    Returns
    -------
    str (markdown, one paragraph). A claim tested several times (per subject, baseline, split) reads as its
    verdict when all agree, else as mixed with the counts.
    """
    if not len(table):
        return "**In short:** no finding could be checked on this results folder (no stage's output was found)."
    counts = table["verdict"].value_counts()
    tally = ", ".join(f"{int(counts[v])} {IN_WORDS[v].split(' (')[0]}" for v in VERDICTS if counts.get(v, 0))
    groups: dict[str, list[str]] = {}
    for row in table.itertuples():
        groups.setdefault(_topic(row.finding), []).append(row.verdict)
    by_verdict: dict[str, list[str]] = {}
    for topic, verdicts in groups.items():
        kinds = pd.Series(verdicts).value_counts()
        if len(kinds) == 1:
            by_verdict.setdefault(kinds.index[0], []).append(topic)
        else:
            detail = ", ".join(f"{int(kinds[v])} {v}" for v in VERDICTS if v in kinds)
            by_verdict.setdefault("mixed", []).append(f"{topic} ({detail})")
    parts = []
    for verdict in (*VERDICTS, "mixed"):
        if by_verdict.get(verdict):
            label = IN_WORDS.get(verdict, "mixed (across subjects, models or baselines)")
            parts.append(f"{label[0].upper()}{label[1:]}: " + "; ".join(by_verdict[verdict]) + ".")
    return (f"**In short:** the three papers' claims were checked with {len(table)} pre-declared tests on these data "
            f"({tally}). " + " ".join(parts) + " A claim is supported or contradicted only when its test rejects "
            "'no effect'; the table below gives every test, effect and p-value. On the simulator's data the planted "
            "brain decides what should hold (docs/simulator.md)."
            + (" The brain maps below show where on each subject's cortex the models predict well." if brain_maps
               else ""))


def brain_map_lines(figures: list[str]) -> list[str]:
    """Markdown that shows the brain maps among ``figures`` (report figure names), each with its NIfTI maps."""
    maps = [name for name in figures if name.startswith("brainmap_")]
    if not maps:
        return []
    lines = ["## Brain maps", "",
             "Each subject's own space, over its mean image, with ROI outlines; slices on the left, a glass brain "
             f"(maximum projection) on the right. The maps themselves are beside the figures (`{REPORT_FIGURES}/"
             "<figure>_<map>.nii.gz`) for any NIfTI viewer.", ""]
    for name in maps:
        lines += [f"![{name}]({REPORT_FIGURES}/{name}.png)", ""]
    return lines
