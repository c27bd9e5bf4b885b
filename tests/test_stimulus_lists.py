"""Dataset stimulus lists from the design files (hand-built trees from datasets.md, not the simulator)."""

from __future__ import annotations

import pytest

from brainalign.errors import InputError
from brainalign.stimulus_lists import stimulus_lists, write_stimulus_lists
from fixtures_layouts import write_bold5000_tree, write_nsd_tree


def test_nsd_lists_cover_every_subject_and_exclude_shared(tmp_path):
    tree = write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=1, formats=("nii.gz",))
    all_ids, train_ids = stimulus_lists("nsd", tree.root)
    # datasets.md §1.5: subjectim holds 1-based 73k IDs for all 8 subjects; nsdId = ID - 1
    expected = sorted(set((tree.subjectim.ravel() - 1).tolist()))
    assert all_ids == expected and all(isinstance(i, int) for i in all_ids)
    shared = set((tree.sharedix - 1).tolist())
    assert shared <= set(all_ids)
    assert train_ids == [i for i in expected if i not in shared]
    assert len(all_ids) - len(train_ids) == 1000


def test_bold5000_lists_union_of_subjects_without_repeated(tmp_path):
    tree = write_bold5000_tree(tmp_path / "b5k", subject=2)
    # a second subject's presentation list, with a rep_ prefix as released
    (tree.glm_dir / "CSI3_imgnames.txt").write_text("only_csi3.jpg\nrep_" + tree.names[0] + "\n")
    all_ids, train_ids = stimulus_lists("bold5000", tree.root)
    assert all_ids == sorted(set(tree.names) | {"only_csi3.jpg"})
    # the repeated-113 list decides the test images; names in it that nobody saw are not stimuli
    assert "never_shown.jpg" not in all_ids
    assert train_ids == [n for n in all_ids if n not in tree.repeated]


def test_write_and_bad_input(tmp_path):
    tree = write_nsd_tree(tmp_path / "nsd", subject=1, n_sessions=1, formats=("nii.gz",))
    ids, train = tmp_path / "ids.txt", tmp_path / "train.txt"
    write_stimulus_lists("nsd", tree.root, ids, train)
    assert ids.read_text().split() == [str(i) for i in stimulus_lists("nsd", tree.root)[0]]
    tree.design_path.unlink()
    with pytest.raises(InputError, match="nsd_expdesign.mat"):
        write_stimulus_lists("nsd", tree.root, tmp_path / "a.txt", tmp_path / "b.txt")
    assert not (tmp_path / "a.txt").exists()
    with pytest.raises(InputError, match="imgnames"):
        stimulus_lists("bold5000", tmp_path / "empty")

