"""``brainalign init-config``: finds what hand-built dataset copies hold, refuses roots that are not the dataset,
writes a complete config that validates; and how config files combine (README, "Running on real data").

The copies are written by ``fixtures_layouts`` (docs/datasets.md facts), tiny images, one session per subject.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures_layouts import (NSD_ATLAS_LABELS, write_bold5000_dag_tree, write_category_csv, write_nsd_dag_tree,
                              write_things_eeg2_dag_tree, write_unseen_images)

from brainalign.cli import main
from brainalign.config import validate_config
from brainalign.errors import InputError
from brainalign.init_config import init_config, inspect_bold5000, inspect_nsd, inspect_things_eeg2

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("init_config")
    nsd = write_nsd_dag_tree(base / "nsd", subjects=(1, 2, 3), n_shared=50, grid=(5, 5, 4), image_size=8)
    bold5000 = write_bold5000_dag_tree(base / "bold5000", subject=2, n_single=46, trials_per_session=(37, 37, 36),
                                       n_repeated=16, reps=4, image_size=8)
    things = write_things_eeg2_dag_tree(base / "things", subjects=(1, 2), n_test=4, test_reps=2, image_size=8)
    unseen = write_unseen_images(base / "unseen", per_category=10, image_size=8)
    table = write_category_csv(base / "categories.csv", {**bold5000.categories, **unseen})
    return base, nsd, bold5000, things, table


def _copy(data, tmp_path, name):
    base = data[0]
    dest = tmp_path / name
    shutil.copytree(base / name, dest)
    return dest


def test_nsd_findings(data):
    base, nsd, *_ = data
    found = inspect_nsd(base / "nsd")
    assert found.section == {"root": str((base / "nsd").resolve()), "subjects": [1, 2, 3], "space": "func1pt8mm",
                             "beta_version": "betas_fithrf_GLMdenoise_RR", "input_format": "nii.gz",
                             "mask": "nsdgeneral", "atlases": list(NSD_ATLAS_LABELS), "zscore": True}
    text = "\n".join(found.notes)
    assert "subj01 session 1; subj02 session 1; subj03 session 1" in text
    assert "hdf5 betas also present for subj01, subj02, subj03" in text
    assert "design: 650 images (50 shared); nsd_stimuli.hdf5: 650 images of 8x8" in text


def test_nsd_subject_with_hdf5_only_and_an_atlas_without_labels(data, tmp_path):
    root = _copy(data, tmp_path, "nsd")
    for p in (1, 2):  # only subj03 keeps its .nii.gz: the .hdf5 betas cover more subjects
        betas = root / f"nsddata_betas/ppdata/subj{p:02d}/func1pt8mm/betas_fithrf_GLMdenoise_RR"
        (betas / "betas_session01.nii.gz").unlink()
    (root / "nsddata/freesurfer/subj02/label/floc-words.mgz.ctab").unlink()
    found = inspect_nsd(root)
    assert found.section["input_format"] == "hdf5" and found.section["subjects"] == [1, 2, 3]
    assert "floc-words" not in found.section["atlases"] and "floc-faces" in found.section["atlases"]


def test_bold5000_and_things_findings(data, tmp_path):
    base, _, bold5000, things, _ = data
    found = inspect_bold5000(base / "bold5000")
    assert found.section == {"root": str((base / "bold5000").resolve()), "subjects": [2], "zscore": True}
    assert "CSI2 3 sessions (1-3); ten ROI masks each" in found.notes[0]
    assert "design: 62 images, 16 repeated (from repeated_stimuli_113_list.txt)" in found.notes[-1]
    found = inspect_things_eeg2(base / "things")
    assert found.section["subjects"] == [1, 2] and "4 test images" in found.notes[-1]
    root = _copy(data, tmp_path, "bold5000")
    next(root.rglob("sub-CSI2_mask-LHPPA.nii.gz")).unlink()
    with pytest.raises(InputError, match=r"left out CSI2: ROI masks LHPPA missing"):
        inspect_bold5000(root)


@pytest.mark.parametrize("inspect, wrong, words", [
    (inspect_nsd, "bold5000", r"does not look like an NSD root: nsddata/experiments/nsd/nsd_expdesign.mat not found "
                              r"\(an NSD root holds"),
    (inspect_bold5000, "things", r"does not look like a BOLD5000 root: no CSI\{N\}_imgnames.txt below it "
                                 r"\(a BOLD5000 root"),
    (inspect_things_eeg2, "nsd", r"does not look like a THINGS-EEG2 root: eeg_dataset/preprocessed_data not found "
                                 r"\(a THINGS-EEG2 root holds"),
])
def test_a_root_of_another_dataset_is_refused(data, inspect, wrong, words):
    with pytest.raises(InputError, match=words):
        inspect(data[0] / wrong)


def test_missing_images_are_refused(data, tmp_path):
    root = _copy(data, tmp_path, "bold5000")
    next(root.rglob("street1.jpg")).unlink()
    with pytest.raises(InputError, match=r"1 of the design's 62 images are not under Presented_Stimuli"):
        inspect_bold5000(root)


def test_written_config_is_complete_and_valid(data, tmp_path, capsys):
    base, *_ , table = data
    out = tmp_path / "my-config.yaml"
    argv = ["init-config", "--nsd", str(base / "nsd"), "--bold5000", str(base / "bold5000"), "--things-eeg2",
            str(base / "things"), "--categories", str(table), "--unseen-images", str(base / "unseen"),
            "--out", str(out)]
    assert main(argv) == 0
    assert "nsd: subjects [1, 2, 3]" in capsys.readouterr().out
    text = out.read_text()
    config = yaml.safe_load(text)
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert set(config) == set(default) and config["simulate"]["enabled"] is False
    for section in ("features", "encoding", "rsa"):  # copied as they are
        assert config[section] == default[section]
    assert config["training"]["subjects"] == [1]
    assert (config["training"]["neurofusion"]["subjects"], config["training"]["neurofusion"]["heldout_subject"]) \
        == ([1, 2], 3)
    assert "# found: func1pt8mm/betas_fithrf_GLMdenoise_RR; nii.gz betas" in text
    if "category_folds" in default["synthetic"]:  # 4 categories make 6 pairs to hold out
        assert config["synthetic"]["category_folds"] == min(6, default["synthetic"]["category_folds"])
    validate_config(config)
    assert main(argv) == 2  # exists
    assert "exists; choose another --out or pass --force" in capsys.readouterr().err


def test_bold5000_needs_the_table_and_a_bad_table_writes_nothing(data, tmp_path):
    base, *_ , table = data
    with pytest.raises(InputError, match="--bold5000: needs --categories TABLE and --unseen-images DIR"):
        init_config(base / "nsd", base / "bold5000")
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(line + "\n" for line in table.read_text().splitlines() if "/" not in line))
    with pytest.raises(InputError, match=rf"{bad}: 40 of the 40 unseen images"):
        init_config(base / "nsd", base / "bold5000", categories=bad, unseen_images=base / "unseen",
                    out=tmp_path / "c.yaml")
    assert not (tmp_path / "c.yaml").exists()


def _dry_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SNAKEMAKE), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
                           *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PATH=f"{SNAKEMAKE.parent}:{os.environ['PATH']}"))


def test_how_config_files_combine(data, tmp_path):
    """A complete file replaces config.yaml with --replace-workflow-config; on top of it, lists replace whole
    and mappings merge (so an overlay cannot drop a dataset)."""
    base = data[0]
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "config.yaml", work)  # snakemake reads the working directory's config.yaml first
    nsd_only = work / "nsd-only.yaml"
    init_config(base / "nsd", out=nsd_only, results=str(tmp_path / "results"))
    overlay = work / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"features": {"models": ["alexnet"]}}))

    r = _dry_run(work, "--configfile", str(nsd_only), str(overlay), "--replace-workflow-config")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "rule ingest_nsd:" in out and "rule ingest_bold5000:" not in out and "rule rsa_eeg:" not in out
    assert "features/nsd/alexnet.zarr" in out and "features/nsd/cornet_s.zarr" not in out

    r = _dry_run(work, "--configfile", str(nsd_only))  # merged into the demo config: its BOLD5000 entry stays
    assert r.returncode != 0
    assert "datasets.bold5000.root: dataset root 'results/simulated/bold5000' does not exist" in r.stdout + r.stderr
