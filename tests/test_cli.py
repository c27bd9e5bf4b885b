"""The ``brainalign`` dispatcher (fast help, stage modules imported only for their command) and the small
table commands of the workflow (``categories``)."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from brainalign.cli import COMMANDS, main


def test_help_imports_no_stage_and_no_torch():
    code = ("import sys; from brainalign.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('brainalign.')))")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['brainalign.cli', 'brainalign.errors']"
    assert all(name in r.stdout for name in COMMANDS)
    assert elapsed < 5  # well under a second here; generous for a loaded test machine


def test_command_help_imports_only_that_command():
    code = ("import sys; from brainalign.cli import main\n"
            "try:\n    main(['categories', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('brainalign.') or m == 'torch'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = eval(r.stdout.strip().splitlines()[-1])
    assert "brainalign.categories_cli" in loaded and "torch" not in loaded
    assert not [m for m in loaded if m.startswith(("brainalign.encoding", "brainalign.rsa", "brainalign.training"))]


@pytest.fixture
def simulated(tmp_path):
    """A simulator output's ground truth, written by hand: NSD ids are ints, BOLD5000 and unseen ids names."""
    truth = tmp_path / "simulated" / "ground_truth"
    truth.mkdir(parents=True)
    pd.DataFrame({"stimulus": [0, 1, 2], "nsdId": [0, 1, 2], "category": ["face", "car", "face"]}).to_parquet(
        truth / "nsd_images.parquet", index=False)
    pd.DataFrame({"stimulus": ["a.jpg", "b.jpg"], "path": ["x/a.jpg", "x/b.jpg"], "category": ["car", "house"]}) \
        .to_parquet(truth / "bold5000_images.parquet", index=False)
    pd.DataFrame({"stimulus": ["u1.png"], "path": ["face/u1.png"], "category": ["face"]}).to_parquet(
        truth / "unseen_images.parquet", index=False)
    return tmp_path / "simulated"


def test_categories_from_the_simulator(simulated, tmp_path):
    out = tmp_path / "nsd.parquet"
    assert main(["categories", "--simulated", str(simulated), "--dataset", "nsd", "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert table.columns.tolist() == ["stimulus", "category"]
    assert table["stimulus"].tolist() == [0, 1, 2] and table["category"].tolist() == ["face", "car", "face"]

    out = tmp_path / "b5k.parquet"
    assert main(["categories", "--simulated", str(simulated), "--dataset", "bold5000", "--with-unseen",
                 "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    # unseen images are named by their path in the unseen-image folder, as the folder image set names them
    assert table.to_dict("list") == {"stimulus": ["a.jpg", "b.jpg", "face/u1.png"], "category": ["car", "house", "face"]}


def test_categories_from_a_table_and_bad_input(simulated, tmp_path, capsys):
    csv = tmp_path / "cats.csv"
    csv.write_text("stimulus,category,other\n007,dog,1\nb.jpg,cat,2\n")
    out = tmp_path / "cats.parquet"
    assert main(["categories", "--table", str(csv), "--out", str(out)]) == 0
    assert pd.read_parquet(out).to_dict("list") == {"stimulus": ["007", "b.jpg"], "category": ["dog", "cat"]}

    bad = tmp_path / "bad.csv"
    bad.write_text("image,category\na,b\n")
    assert main(["categories", "--table", str(bad), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "stimulus" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()
    assert main(["categories", "--simulated", str(tmp_path), "--dataset", "nsd", "--out", str(tmp_path / "y.parquet")]) == 2
    assert "ground truth" in capsys.readouterr().err and not (tmp_path / "y.parquet").exists()
