"""``_io.atomic_output``: a user's files are never replaced, outputs are never half-written, a replaced output is
the complete old or the complete new one at every instant, and killed runs' temporaries are cleaned up.

Expected states are written by hand (which files exist, with which content), never taken from the code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign import _io
from brainalign._io import OUTPUT_MARKER, atomic_output, recover_output
from brainalign.cli import main
from brainalign.errors import InputError


def _write_dir(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.mkdir()
        (tmp / "data.txt").write_text(text)


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_refuses_a_users_folder_and_file(tmp_path):
    user = tmp_path / "thesis"
    (user / "chapter1").mkdir(parents=True)
    (user / "chapter1" / "draft.tex").write_text("years of work")
    with pytest.raises(InputError, match="not written by brainalign.*refusing to replace"):
        _write_dir(user, "new")
    assert (user / "chapter1" / "draft.tex").read_text() == "years of work"
    assert _siblings(user) == []

    store = tmp_path / "notes.zarr"  # a regular file that happens to be named like a store
    store.write_text("my notes")
    with pytest.raises(InputError, match="regular file"):
        _write_dir(store, "new")
    assert store.read_text() == "my notes"

    plain = tmp_path / "table.csv"  # a file where a folder would go (type known only at the end)
    plain.write_text("a,b\n")
    with pytest.raises(InputError, match="regular file"):
        _write_dir(plain, "new")
    assert plain.read_text() == "a,b\n" and _siblings(plain) == []

    folder = tmp_path / "figure.png"  # a user's folder where a file would go: refused before writing
    folder.mkdir()
    (folder / "keep").write_text("x")
    with pytest.raises(InputError, match="refusing to replace"):
        with atomic_output(folder) as tmp:
            tmp.write_text("png")
    assert (folder / "keep").read_text() == "x"
    ours = tmp_path / "ours"  # even an output folder of ours is not replaced by a file
    _write_dir(ours, "x")
    with pytest.raises(InputError, match="is a folder; refusing to replace it with a file"):
        with atomic_output(ours) as tmp:
            tmp.write_text("png")
    assert (ours / "data.txt").read_text() == "x" and _siblings(ours) == []

    link = tmp_path / "link.zarr"
    link.symlink_to(user)
    with pytest.raises(InputError, match="symbolic link"):
        _write_dir(link, "new")
    assert link.is_symlink() and (user / "chapter1" / "draft.tex").exists()


def test_replaces_its_own_outputs_and_legacy_ones(tmp_path):
    out = tmp_path / "o.zarr"
    _write_dir(out, "old")
    assert (out / OUTPUT_MARKER).is_file() and (out / "data.txt").read_text() == "old"
    _write_dir(out, "new")
    assert (out / "data.txt").read_text() == "new" and _siblings(out) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    _write_dir(empty, "x")
    assert (empty / "data.txt").read_text() == "x"

    # a store written before markers existed: a zarr group in a brainalign format
    legacy = tmp_path / "legacy.zarr"
    legacy.mkdir()
    (legacy / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", '
                                      '"attributes": {"format": "brainalign.voxel_store"}}')
    _write_dir(legacy, "new")
    assert (legacy / "data.txt").read_text() == "new" and not (legacy / "zarr.json").exists()

    # a stage's own test for its legacy outputs
    sim = tmp_path / "sim"
    (sim / "ground_truth").mkdir(parents=True)
    (sim / "ground_truth" / "params.json").write_text("{}")
    with atomic_output(sim, legacy=lambda p: (p / "ground_truth" / "params.json").is_file()) as tmp:
        tmp.mkdir()
    assert not (sim / "ground_truth").exists()

    table = tmp_path / "t.csv"  # a file replaces a file
    for text in ("1\n", "2\n"):
        with atomic_output(table) as tmp:
            tmp.write_text(text)
    assert table.read_text() == "2\n"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_the_path_holds_the_old_or_the_new_output_at_every_instant(tmp_path, monkeypatch, exchange):
    out = tmp_path / "o.zarr"
    _write_dir(out, "old")
    if not exchange:
        monkeypatch.setattr(_io, "_exchange", lambda a, b: False)
    seen = []
    real_rename, real_remove = os.rename, _io._remove

    def look():  # the state of `out` whenever something moves or goes
        seen.append((out / "data.txt").read_text() if out.exists() else None)

    def rename(a, b):
        look()
        real_rename(a, b)
        look()

    def remove(p):
        look()
        real_remove(p)
        look()

    monkeypatch.setattr(_io.os, "rename", rename)
    monkeypatch.setattr(_io, "_remove", remove)
    _write_dir(out, "new")
    monkeypatch.undo()
    assert (out / "data.txt").read_text() == "new" and _siblings(out) == []
    if exchange:  # the old folder is deleted only after the swap: `out` is never without a complete output
        assert set(seen) <= {"old", "new"} and seen[-1] == "new"
    else:  # between the two renames the path is missing (never partial); recovery is tested below
        assert set(seen) <= {"old", "new", None} and seen[-1] == "new"


def test_an_interrupted_replacement_is_undone_on_the_next_run(tmp_path):
    host = _io._host()
    out = tmp_path / "o.zarr"
    # killed between "rename old aside" and "rename new in": the path is missing, old and new lie beside it
    old = tmp_path / f".o.zarr.old-{host}-{_dead_pid()}"
    old.mkdir()
    (old / "data.txt").write_text("old")
    new = tmp_path / f".o.zarr.tmp-{host}-{_dead_pid()}"
    new.mkdir()
    (new / "data.txt").write_text("half")
    recover_output(out)
    assert (out / "data.txt").read_text() == "old" and _siblings(out) == []

    # killed after "rename new in", before deleting the old one: the old one goes
    old.mkdir()
    (old / "data.txt").write_text("older")
    recover_output(out)
    assert (out / "data.txt").read_text() == "old" and _siblings(out) == []


def test_temporaries_of_killed_runs_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "o.zarr"
    script = textwrap.dedent(f"""
        import os, signal
        from brainalign._io import atomic_output
        with atomic_output({str(out)!r}) as tmp:
            tmp.mkdir()
            (tmp / "big.bin").write_bytes(b"0" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL
    stale = _siblings(out)
    assert len(stale) == 1 and stale[0].startswith(".o.zarr.tmp-") and not out.exists()

    host = _io._host()
    live = tmp_path / f".o.zarr.tmp-{host}-{os.getppid()}"       # a running process's write
    other = tmp_path / f".o.zarr.tmp-othernode-{_dead_pid()}"    # another host on a shared filesystem
    legacy = tmp_path / f".o.zarr.tmp-{_dead_pid()}"             # the old naming, this host
    for p in (live, other, legacy):
        p.mkdir()
    _write_dir(out, "rerun")
    assert (out / "data.txt").read_text() == "rerun"
    assert _siblings(out) == sorted([live.name, other.name])


def test_unwritable_output_folder_is_one_clear_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(InputError, match="results/stores: cannot create the output folder: part of its path is a file"):
        _write_dir(blocker / "stores" / "s.zarr", "x")

    def denied(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    out = tmp_path / "ro" / "cats.parquet"
    table = tmp_path / "cats.csv"
    table.write_text("stimulus,category\na.jpg,x\n")
    assert main(["categories", "--table", str(table), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "ro") in err[0] and "Permission denied" in err[0]


def test_ingest_refuses_to_replace_a_users_folder(tmp_path):
    from brainalign.ingest import ingest_things_eeg2
    from fixtures_layouts import write_things_eeg2_tree

    tree = write_things_eeg2_tree(tmp_path / "eeg")
    out = tmp_path / "mydata.zarr"
    out.mkdir()
    (out / "analysis.ipynb").write_text("{}")
    with pytest.raises(InputError, match="not written by brainalign"):
        ingest_things_eeg2(tree.root, 1, out)
    assert (out / "analysis.ipynb").read_text() == "{}"
    notes = tmp_path / "notes.zarr"  # a regular file named like a store, through the command line
    notes.write_text("my notes")
    assert main(["ingest", "things-eeg2", "--root", str(tree.root), "--subject", "1", "--out", str(notes)]) == 2
    assert notes.read_text() == "my notes"
    # an earlier store is replaced
    store = tmp_path / "sub01.zarr"
    ingest_things_eeg2(tree.root, 1, store, parts=["test"])
    ingest_things_eeg2(tree.root, 1, store)
    trials = pd.read_parquet(store / "trials.parquet")
    assert sorted(trials["part"].unique()) == ["test", "training"]
    assert np.isfinite(trials["condition"]).all()
