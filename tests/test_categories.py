"""Category tables: read in every documented format, checked against the images a run uses, refused at start.

References: the tables are written here by hand (csv, tsv, parquet through pandas); the BOLD5000 tree and the
unseen-image folder by ``fixtures_layouts`` (docs/datasets.md facts, not the package).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures_layouts import write_bold5000_tree, write_unseen_images

from brainalign.categories import check_category_table, read_category_file, table_requirements
from brainalign.cli import main
from brainalign.config import validate_config
from brainalign.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
ROWS = [("0042", "animals"), ("COCO_train2014_000000000036.jpg", "food"), ("animals/zebra 02.png", "animals")]


def _write(path: Path, rows=ROWS, sep=",", header="stimulus,category", bom=False) -> Path:
    text = header.replace(",", sep) + "\n" + "".join(f"{s}{sep}{c}\n" for s, c in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_every_documented_format_reads_the_same(tmp_path, suffix):
    path = tmp_path / f"categories{suffix}"
    if suffix == ".parquet":
        pd.DataFrame(ROWS, columns=["stimulus", "category"]).assign(note="x").to_parquet(path)
    else:
        _write(path, sep="\t" if suffix == ".tsv" else ",", bom=True)  # a spreadsheet's byte-order mark
    table = read_category_file(path)
    assert list(table.columns) == ["stimulus", "category"]
    assert list(map(tuple, table.to_numpy())) == ROWS  # ids kept as text: '0042' keeps its zeros


def test_parquet_with_numeric_ids_becomes_text(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"stimulus": [3, 10], "category": ["a", "b"]}).to_parquet(path)
    assert read_category_file(path)["stimulus"].tolist() == ["3", "10"]


@pytest.mark.parametrize("name, content, words", [
    ("c.xlsx", "stimulus,category\n", "must be one of .parquet, .csv, .tsv"),
    ("c.csv", "image,label\na.jpg,x\n", "lacks columns ['stimulus', 'category']"),
    ("c.csv", "stimulus\tcategory\na.jpg\tx\n", "a tsv read as csv?"),
    ("c.csv", "stimulus,category\na.jpg,\nb.jpg,y\n",
     "1 row(s) with an empty stimulus or category (first: data row 1)"),
    ("c.csv", "stimulus,category\na.jpg,x\nb.jpg,y\na.jpg,y\n", "1 stimuli are listed more than once, e.g. ['a.jpg']"),
    ("c.parquet", "not parquet", "cannot read the category table as parquet"),
])
def test_bad_table_is_one_line_naming_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as exc:
        read_category_file(path)
    message = str(exc.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_missing_table(tmp_path):
    with pytest.raises(InputError, match="category table not found"):
        read_category_file(tmp_path / "none.csv")


def _table(pairs):
    return pd.DataFrame(list(pairs.items()), columns=["stimulus", "category"])


def test_check_against_stimuli_and_unseen_images():
    stimuli = [f"img{n}.jpg" for n in range(6)]
    unseen = [f"{c}/u{n}.png" for c in ("a", "b") for n in range(3)]
    pairs = {s: "ab"[n % 2] for n, s in enumerate(stimuli)} | {u: u[0] for u in unseen}
    summary = check_category_table(_table(pairs), "t.csv", stimuli=stimuli, unseen=unseen, min_images=3)
    assert summary["dataset_categories"] == {"a": 3, "b": 3} and summary["decoding_categories"] == ["a", "b"]

    with pytest.raises(InputError, match=r"t\.csv: 1 of the dataset's 6 stimuli have no row \(e\.g\. 'img5\.jpg'\)"):
        check_category_table(_table({k: v for k, v in pairs.items() if k != "img5.jpg"}), "t.csv",
                             stimuli=stimuli, unseen=unseen)
    by_name = {k: v for k, v in pairs.items() if "/" not in k} | {Path(u).name: u[0] for u in unseen}
    with pytest.raises(InputError, match="6 of the 6 unseen images of U have no row .* relative to that folder "
                                         r"\(the table names them by file name"):
        check_category_table(_table(by_name), "t.csv", stimuli=stimuli, unseen=unseen, unseen_folder="U")
    with pytest.raises(InputError, match="decoding needs at least 2 categories with >= 4 unseen images"):
        check_category_table(_table(pairs), "t.csv", stimuli=stimuli, unseen=unseen, min_images=4)
    with pytest.raises(InputError, match="fall into 2 categories .* at least 3 are needed"):
        check_category_table(_table(pairs), "t.csv", stimuli=stimuli, min_categories=3)
    one = {s: "a" for s in stimuli}
    with pytest.raises(InputError, match="fall into 1 category"):
        check_category_table(_table(one), "t.csv", stimuli=stimuli)


def test_requirements_follow_the_config():
    assert table_requirements({"samples_per_class": [30, 10], "splits": ["repeated"]}, {"n_test_categories": 2}) \
        == {"min_images": 10, "min_categories": 2}
    assert table_requirements({"samples_per_class": [5], "decoding_samples_per_class": 8,
                               "splits": ["unseen-categories"]}, {"n_test_categories": 3}) \
        == {"min_images": 8, "min_categories": 4}


@pytest.fixture(scope="module")
def real_bold5000(tmp_path_factory):
    """A tiny BOLD5000 copy (17 distinct images), an unseen folder, a valid CSV table and a config using them."""
    base = tmp_path_factory.mktemp("categories")
    tree = write_bold5000_tree(base / "bold5000", subject=1)
    unseen = write_unseen_images(base / "unseen", per_category=10, image_size=8)
    names = sorted(set(tree.names))
    pairs = {name: ("animals", "food", "places")[n % 3] for n, name in enumerate(names)} | unseen
    table = base / "categories.csv"
    table.write_text("stimulus,category\n" + "".join(f"{s},{c}\n" for s, c in pairs.items()))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulate"]["enabled"] = False
    for ds in config["datasets"].values():
        ds["root"] = str(tree.root)
    config["datasets"]["bold5000"]["subjects"] = [1]
    config["synthetic"].update(categories=str(table), unseen_images=str(base / "unseen"), category_folds=3)
    return base, tree, table, pairs, config


def test_validation_checks_the_table_against_the_data(real_bold5000):
    base, tree, table, pairs, config = real_bold5000
    validate_config(copy.deepcopy(config), SCHEMA)
    bad = base / "bad.csv"
    bad.write_text("stimulus,category\n" + "".join(f"{s},{c}\n" for s, c in pairs.items() if "/" not in s))
    cfg = copy.deepcopy(config)
    cfg["synthetic"]["categories"] = str(bad)
    with pytest.raises(InputError, match=rf"^{bad}: 40 of the 40 unseen images of .*unseen have no row"):
        validate_config(cfg, SCHEMA)
    cfg = copy.deepcopy(config)  # 3 categories: 3 sets of 2 held-out ones
    cfg["synthetic"]["category_folds"] = 4
    with pytest.raises(InputError, match=r"synthetic\.category_folds: 4 folds, but the 3 categories of the "
                                         r"dataset's images in .*categories\.csv make only 3 sets of 2"):
        validate_config(cfg, SCHEMA)
    cfg = copy.deepcopy(config)
    cfg["synthetic"]["unseen_images"] = str(base / "nowhere")
    with pytest.raises(InputError, match=r"synthetic\.unseen_images: folder .*nowhere.* does not exist"):
        validate_config(cfg, SCHEMA)


def test_cli_writes_the_canonical_parquet(real_bold5000, tmp_path, capsys):
    base, tree, table, pairs, config = real_bold5000
    ids = tmp_path / "stimuli.txt"
    ids.write_text("".join(f"{n}\n" for n in sorted(set(tree.names))))
    out = tmp_path / "categories.parquet"
    args = ["categories", "--table", str(table), "--stimuli", str(ids), "--unseen-images", str(base / "unseen"),
            "--min-images", "10", "--out", str(out)]
    assert main(args) == 0
    written = pd.read_parquet(out)
    assert dict(zip(written["stimulus"], written["category"])) == pairs
    assert written["stimulus"].map(type).eq(str).all()
    out.unlink()
    assert main(args[:-4] + ["--min-images", "11", "--out", str(out)]) == 2  # 10 unseen images per category
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"brainalign categories: error: {table}: decoding needs") and "\n" not in err
    assert not out.exists()


def test_snakemake_stops_at_start_on_a_bad_table(real_bold5000, tmp_path):
    base, tree, table, pairs, config = real_bold5000
    bad = base / "only_dataset.csv"
    bad.write_text("stimulus,category\n" + "".join(f"{s},{c}\n" for s, c in pairs.items() if "/" not in s))
    cfg = copy.deepcopy(config)
    cfg["synthetic"]["categories"] = str(bad)
    cfg["results"] = str(tmp_path / "results")
    config_file = tmp_path / "real.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(config_file), "--replace-workflow-config"], capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{snakemake.parent}:{os.environ['PATH']}"), timeout=300)
    assert r.returncode != 0
    assert f"{bad}: 40 of the 40 unseen images" in r.stdout + r.stderr
    assert not (tmp_path / "results").exists()
