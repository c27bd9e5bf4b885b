"""The report's opening: brain maps drawn with nilearn in each subject's space over its mean image with ROI
outlines (NIfTI maps beside them), and the plain-language summary of the findings.

A results folder is built by hand (stores, encoder maps, a claim-1 voxel table at the layout's paths); the
values written into the NIfTI maps are checked with nibabel against the table placed by ``voxel_ijk`` by hand,
and nilearn's plotting functions are spied on to see what was drawn over what.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainalign._io import atomic_output
from brainalign.layout import ResultsLayout
from brainalign.report.brain_maps import encoding_brain_maps, roi_outlines, synthetic_brain_maps
from brainalign.report.overview import brain_map_lines, plain_summary
from brainalign.store import VoxelStoreWriter, open_voxel_store

GRID = (10, 12, 8)
MODELS = ("alexnet", "realnet-subj01-aligned")


def _affine():
    aff = np.diag([1.8, 1.8, 1.8, 1.0])
    aff[:3, 3] = -1.8 * (np.asarray(GRID) - 1) / 2
    return aff


def write_store(path, rois, mean_volume):
    """A small voxel store over an ellipsoid of the grid, with ROIs and a mean image."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in GRID), indexing="ij")
    inside = ((i - 4.5) / 4.5) ** 2 + ((j - 5.5) / 5.5) ** 2 + ((k - 3.5) / 3.5) ** 2 <= 1
    ijk = np.argwhere(inside)
    n_trials = 12
    trials = pd.DataFrame({"session": 1, "trial": np.arange(1, n_trials + 1), "stimulus": np.arange(n_trials) % 4,
                           "repetition": np.arange(n_trials) // 4, "shared": False})
    betas = np.random.default_rng(0).normal(size=(n_trials, len(ijk))).astype(np.float32)
    with atomic_output(path) as tmp:
        writer = VoxelStoreWriter(tmp, n_trials, len(ijk))
        writer.append(betas)
        writer.add_mean_volume(mean_volume, "test mean image")
        writer.finish(trials, ijk, GRID, _affine(), rois=rois(ijk))
    return open_voxel_store(path)


def nsd_rois(ijk):
    posterior = ijk[:, 1] < 4
    return {"prf-visualrois": (np.where(posterior, 1 + ijk[:, 2] % 3, 0), {1: "V1v", 2: "V1d", 3: "V2v"}),
            "floc-faces": (np.where((ijk[:, 1] > 6) & (ijk[:, 2] < 3), 2, 0), {1: "OFA", 2: "FFA-1"}),
            "nsdgeneral": (np.ones(len(ijk), int), {1: "nsdgeneral"})}


def b5k_rois(ijk):
    return {"LHPPA": (ijk[:, 0] < 4) & (ijk[:, 2] < 3), "RHPPA": (ijk[:, 0] > 5) & (ijk[:, 2] < 3),
            "LHEarlyVis": (ijk[:, 0] < 5) & (ijk[:, 1] < 3)}


@pytest.fixture
def results(tmp_path):
    """A results folder with two NSD encoders of subj01 and a claim-1 voxel table of BOLD5000 CSI1."""
    layout = ResultsLayout(str(tmp_path / "results"))
    epi = np.linspace(100, 900, np.prod(GRID)).reshape(GRID).astype(np.float32)
    nsd = write_store(layout.store("nsd", "subj01"), nsd_rois, epi)
    rng = np.random.default_rng(1)
    scores = {}
    for model in MODELS:
        values = np.full(nsd.n_voxels, np.nan, np.float32)
        values[5:] = rng.uniform(0, 1, nsd.n_voxels - 5)
        scores[model] = values
        path = Path(layout.encoder_map("nsd", "subj01", model, "nsd-shared", "selected_score"))
        path.parent.mkdir(parents=True)
        nib.save(nsd.to_nifti(values, fill_value=np.nan), path)
    b5k = write_store(layout.store("bold5000", "CSI1"), b5k_rois, epi * 0 + 1)
    voxels = np.arange(0, b5k.n_voxels, 2)
    table = pd.concat([
        pd.DataFrame({"roi": "all", "voxel": voxels, "c_syn": rng.uniform(-0.2, 0.8, len(voxels)),
                      "c_real": rng.uniform(-0.2, 0.6, len(voxels))}),
        pd.DataFrame({"roi": "LHPPA", "voxel": voxels[:3], "c_syn": 9.0, "c_real": 9.0}),  # ROI rows: not drawn
    ], ignore_index=True)
    claim1 = Path(layout.synthetic_evaluation_table("bold5000", "CSI1", "repeated", "claim1_voxels"))
    claim1.parent.mkdir(parents=True)
    table.to_parquet(claim1, index=False)
    return layout, nsd, b5k, scores, table


@pytest.fixture
def spy(monkeypatch):
    """Record every call of nilearn's plot_stat_map / plot_glass_brain / add_contours (they still draw)."""
    from nilearn import plotting
    from nilearn.plotting.displays import _slicers

    calls = {"stat_map": [], "glass_brain": [], "contours": []}
    stat_map, glass_brain = plotting.plot_stat_map, plotting.plot_glass_brain
    add_contours = _slicers.BaseSlicer.add_contours

    def record_stat_map(img, **kw):
        calls["stat_map"].append((img, kw))
        return stat_map(img, **kw)

    def record_glass_brain(img, **kw):
        calls["glass_brain"].append((img, kw))
        return glass_brain(img, **kw)

    def record_contours(self, img, **kw):
        calls["contours"].append(img)
        return add_contours(self, img, **kw)

    monkeypatch.setattr(plotting, "plot_stat_map", record_stat_map)
    monkeypatch.setattr(plotting, "plot_glass_brain", record_glass_brain)
    monkeypatch.setattr(_slicers.BaseSlicer, "add_contours", record_contours)
    return calls


def test_encoding_brain_maps_drawn_with_nilearn_over_the_mean_image(results, spy, tmp_path):
    layout, nsd, _, scores, _ = results
    out = tmp_path / "figures"
    out.mkdir()
    assert encoding_brain_maps(layout.root, out) == ["brainmap_encoding_subj01"]
    with Image.open(out / "brainmap_encoding_subj01.png") as png:
        assert png.format == "PNG" and png.height > 250
    # one row per model: slices over the store's mean image, a glass brain, outlines of the non-broad atlases
    assert len(spy["stat_map"]) == len(MODELS) == len(spy["glass_brain"])
    for img, kw in spy["stat_map"]:
        np.testing.assert_array_equal(np.asarray(kw["bg_img"].dataobj), np.asarray(nsd.mean_volume().dataobj))
        np.testing.assert_allclose(img.affine, _affine())
    assert len(spy["contours"]) == 2 * len(MODELS)  # prf-visualrois and floc-faces; nsdgeneral is too broad
    drawn = [np.asarray(img.dataobj) for img, _ in spy["stat_map"]]
    for model, data in zip(MODELS, drawn):  # the rows show the encoders' maps, in model order
        np.testing.assert_allclose(data[tuple(nsd.voxel_ijk.T)], scores[model], equal_nan=True)
    # the maps are beside the figure, as the encoders wrote them
    for model in MODELS:
        beside = nib.load(out / f"brainmap_encoding_subj01_{model}.nii.gz")
        np.testing.assert_allclose(np.asarray(beside.dataobj)[tuple(nsd.voxel_ijk.T)], scores[model], equal_nan=True)


def test_synthetic_brain_map_places_claim1_voxels(results, spy, tmp_path):
    layout, _, b5k, _, table = results
    out = tmp_path / "figures"
    out.mkdir()
    assert synthetic_brain_maps(layout.root, out) == ["brainmap_synthetic_CSI1"]
    assert (out / "brainmap_synthetic_CSI1.png").is_file()
    rows = table[table["roi"] == "all"]
    for column in ("c_syn", "c_real"):
        img = nib.load(out / f"brainmap_synthetic_CSI1_{column}.nii.gz")
        data = np.asarray(img.dataobj)
        expected = np.full(GRID, np.nan)
        i, j, k = b5k.voxel_ijk[rows["voxel"].to_numpy()].T
        expected[i, j, k] = rows[column].to_numpy()
        np.testing.assert_allclose(data, expected, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(img.affine, _affine())
    assert len(spy["stat_map"]) == 2 and len(spy["glass_brain"]) == 2
    assert len(spy["contours"]) == 2 * 2  # PPA (both hemispheres merged) and EarlyVis, on each row


def test_roi_outlines_merge_hemispheres_and_skip_broad_atlases(results):
    _, nsd, b5k, _, _ = results
    assert set(roi_outlines(nsd)) == {"prf-visualrois", "floc-faces"}
    outlines = roi_outlines(b5k)
    assert set(outlines) == {"PPA", "EarlyVis"}
    ppa = np.asarray(outlines["PPA"].dataobj)[tuple(b5k.voxel_ijk.T)] > 0
    ijk = b5k.voxel_ijk
    np.testing.assert_array_equal(ppa, ((ijk[:, 0] < 4) | (ijk[:, 0] > 5)) & (ijk[:, 2] < 3))


def test_plain_summary_counts_and_words():
    table = pd.DataFrame({
        "finding": ["layer hierarchy (alexnet)", "layer hierarchy (cornet_s)", "encoding: ReAlnet(subj01) vs x",
                    "encoding: ReAlnet(subj01) vs y", "claim 1: synthetic vs real repetitions (b CSI1)",
                    "EEG RSA time course", "something new",
                    "RSA: ReAlnet(subj01) vs beta=0 control, V1 (within subject)",
                    "RSA: ReAlnet(subj01) vs initial CORnet-S (random weights: trained vs untrained network), V1 "
                    "(within subject)"],
        "verdict": ["yes", "inconclusive", "yes", "yes", "no", "not testable", "inconclusive", "inconclusive",
                    "yes"],
    })
    text = plain_summary(table, brain_maps=True)
    assert text.startswith("**In short:**") and "\n" not in text
    assert "9 pre-declared tests" in text and "4 supported, 1 contradicted, 3 inconclusive, 1 not testable" in text
    supported = text.split("Supported: ")[1].split(". ")[0]
    assert "ReAlnet predicts held-out fMRI better than its controls" in supported and "hierarchy" not in supported
    # against the initial CORnet-S the claim is another one (training changed the network), told apart
    assert "more brain-like (RSA) than those of the CORnet-S it started from" in supported
    assert "resemble the brain's (RSA) more than its controls'" in text.split("Inconclusive")[1]
    assert "Contradicted (the test found the opposite of the claim): synthetic fMRI matches real responses" in text
    assert "early visual areas are predicted best" in text.split("Mixed")[1] and "(1 yes, 1 inconclusive)" in text
    assert "something new" in text.split("Inconclusive")[1]
    assert "brain maps below" in text and "brain maps" not in plain_summary(table)
    assert brain_map_lines(["model_comparison", "brainmap_encoding_subj01"])[-2] == \
        "![brainmap_encoding_subj01](figures/brainmap_encoding_subj01.png)"


def test_report_opens_with_the_summary_and_the_brain_maps(results):
    from brainalign.report.document import build_report

    layout, *_ = results
    table = build_report(layout.root, layout.report())
    text = open(layout.report_summary()).read()
    lines = text.splitlines()
    assert lines[0].startswith("# ") and lines[2] == plain_summary(table, brain_maps=True)
    maps_at = text.index("## Brain maps")
    assert maps_at < text.index("## Findings")
    assert text.index("figures/brainmap_encoding_subj01.png") < text.index("## Findings")
    assert text.index("figures/brainmap_synthetic_CSI1.png") < text.index("## Findings")
    figures = sorted(p.name for p in Path(layout.report_figures()).iterdir())
    assert "brainmap_encoding_subj01.png" in figures and "brainmap_encoding_subj01_alexnet.nii.gz" in figures
