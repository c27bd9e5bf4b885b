"""Image sets: NSD imgBrick, BOLD5000 and THINGS-EEG2 folders, plain folders, spec parsing, preprocessing.

Fixtures are written by hand from docs/datasets.md (§1.8, §2.4, §3.1, §3.3).
"""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from brainalign.errors import InputError
from brainalign.stimuli import (IMAGENET_MEAN, IMAGENET_STD, NSDImageSet, Preprocessing, bold5000_images,
                                folder_images, make_loader, nsd_images, parse_stimulus_spec, read_ids_file,
                                things_images)


def encoded_image(stimulus_id: int, size=425) -> np.ndarray:
    """An image whose pixels encode its ID: channel 0 = id, channel 1 = id * 3 % 256, channel 2 = row index."""
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[..., 0] = stimulus_id % 256
    img[..., 1] = (stimulus_id * 3) % 256
    img[..., 2] = (np.arange(size) % 256)[:, None]
    return img


@pytest.fixture
def nsd_root(tmp_path):
    path = tmp_path / "nsd" / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as fh:
        brick = np.stack([encoded_image(i) for i in range(12)])
        fh.create_dataset("imgBrick", data=brick, chunks=(1, 425, 425, 3))  # (N, 425, 425, 3) uint8
    return tmp_path / "nsd"


def test_nsd_subset_reads_the_right_rows(nsd_root):
    full = nsd_images(nsd_root)
    assert full.ids == list(range(12)) and len(full) == 12 and full.brick_shape == (12, 425, 425, 3)
    sub = full.subset([7, 2, 11, 0])
    assert sub.ids == [7, 2, 11, 0]
    for i in sub.ids:
        img = sub.load(i)
        assert img.dtype == np.uint8 and img.shape == (425, 425, 3)
        assert img[0, 0, 0] == i and img[5, 5, 1] == (3 * i) % 256
    block = sub.load_many([11, 2, 7, 2])
    assert [int(b[0, 0, 0]) for b in block] == [11, 2, 7, 2]
    assert sub.root_set is full and 5 in full and 5 not in sub


def test_nsd_loader_with_worker_processes_keeps_row_order(nsd_root):
    sub = nsd_images(nsd_root).subset([9, 4, 1, 10, 3])
    sub.load(9)  # open a handle in the parent first: workers must not reuse it
    loader = make_loader(sub, Preprocessing(size=(32, 32)), batch_size=2, workers=2)
    rows, ids = [], []
    for r, x in loader:
        assert x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
        rows += r.tolist()
        ids += x[:, 0, 16, 16].tolist()
    assert rows == [0, 1, 2, 3, 4]
    assert ids == [9, 4, 1, 10, 3]


def test_nsd_bad_inputs(tmp_path, nsd_root):
    with pytest.raises(InputError, match="out of range"):
        NSDImageSet(nsd_root, ids=[3, 12])
    with pytest.raises(InputError, match="not in this image set"):
        nsd_images(nsd_root).subset([1, 99])
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as fh:
        fh.create_dataset("images", data=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="imgBrick"):
        NSDImageSet(bad)
    with pytest.raises(InputError, match="not found"):
        NSDImageSet(tmp_path / "nothing")


def _save(path, value, size=(20, 16), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode != "L" else value[0]).save(path)


def test_bold5000_presented_stimuli(tmp_path):
    base = tmp_path / "b5k" / "downloads" / "BOLD5000_Stimuli" / "Scene_Stimuli" / "Presented_Stimuli"
    _save(base / "Scene" / "ATM1.jpg", (10, 20, 30))
    _save(base / "COCO" / "COCO_train2014_000000000042.jpg", (40, 50, 60))
    _save(base / "ImageNet" / "n01440764_10026.JPEG", (70, 80, 90))
    _save(base / "Scene" / "concert5.jpeg", (5, 5, 5), mode="L")
    (base / "COCO" / "notes.txt").write_text("not an image")
    s = bold5000_images(tmp_path / "b5k")  # searched recursively below the root
    assert s.ids == ["COCO_train2014_000000000042.jpg", "n01440764_10026.JPEG", "ATM1.jpg", "concert5.jpeg"]
    assert s.load("concert5.jpeg").shape == (16, 20, 3)  # grey -> RGB
    png = tmp_path / "b5kpng" / "BOLD5000_Stimuli" / "Scene_Stimuli" / "Presented_Stimuli" / "COCO" / "a.png"
    _save(png, (1, 2, 3))
    np.testing.assert_array_equal(bold5000_images(tmp_path / "b5kpng").load("a.png")[0, 0], [1, 2, 3])
    with pytest.raises(InputError):
        bold5000_images(tmp_path / "empty_nonexistent")


def _things_tree(root, with_metadata):
    train = [("00001_aardvark", "aardvark_01b.jpg"), ("00001_aardvark", "aardvark_02s.jpg"),
             ("00002_abacus", "abacus_01b.jpg")]
    test = [("00001_aircraft_carrier", "aircraft_carrier_06s.jpg"), ("00002_antelope", "antelope_01b.jpg")]
    for split, items in (("training", train), ("test", test)):
        for k, (concept, name) in enumerate(items):
            _save(root / "image_set" / f"{split}_images" / concept / name, (k, k, k))
    if with_metadata:  # an order that differs from sorted order, to check it is followed
        meta = {"train_img_concepts": np.array([c for c, _ in train][::-1]),
                "train_img_files": np.array([f for _, f in train][::-1]),
                "test_img_concepts": np.array([c for c, _ in test]),
                "test_img_files": np.array([f for _, f in test])}
        np.save(root / "image_set" / "image_metadata.npy", meta, allow_pickle=True)


def test_things_order_from_metadata_and_splits(tmp_path):
    _things_tree(tmp_path / "t1", with_metadata=True)
    s = things_images(tmp_path / "t1", "training")
    assert s.ids == ["abacus_01b.jpg", "aardvark_02s.jpg", "aardvark_01b.jpg"]
    assert s.load("aardvark_02s.jpg")[0, 0, 0] == 1
    both = parse_stimulus_spec(f"things-eeg2:{tmp_path / 't1'}")
    assert both.ids[3:] == ["aircraft_carrier_06s.jpg", "antelope_01b.jpg"] and len(both) == 5
    test = parse_stimulus_spec(f"things-eeg2:{tmp_path / 't1'}:test")
    assert test.ids == ["aircraft_carrier_06s.jpg", "antelope_01b.jpg"]
    _things_tree(tmp_path / "t2", with_metadata=False)
    assert things_images(tmp_path / "t2", "training").ids == ["aardvark_01b.jpg", "aardvark_02s.jpg", "abacus_01b.jpg"]


def test_plain_folder_and_ids_file(tmp_path):
    _save(tmp_path / "imgs" / "dogs" / "b.png", (1, 1, 1))
    _save(tmp_path / "imgs" / "dogs" / "a.jpg", (2, 2, 2))
    _save(tmp_path / "imgs" / "cats" / "deep" / "c.png", (3, 3, 3))
    _save(tmp_path / "imgs" / "top.bmp", (4, 4, 4))
    s = folder_images(tmp_path / "imgs")
    assert s.ids == ["cats/deep/c.png", "dogs/a.jpg", "dogs/b.png", "top.bmp"]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# chosen\ntop.bmp\n\ncats/deep/c.png\n")
    sub = parse_stimulus_spec(f"folder:{tmp_path / 'imgs'}", ids_file=ids_file)
    assert sub.ids == ["top.bmp", "cats/deep/c.png"]
    assert sub.load("top.bmp")[3, 3].tolist() == [4, 4, 4]
    assert read_ids_file(ids_file) == ["top.bmp", "cats/deep/c.png"]
    with pytest.raises(InputError, match="unknown stimulus set kind"):
        parse_stimulus_spec("coco:/x")
    with pytest.raises(InputError):
        parse_stimulus_spec("nsd")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        folder_images(tmp_path / "empty")


def test_nsd_spec_with_numeric_ids_file(nsd_root, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("4\n8\n")
    s = parse_stimulus_spec(f"nsd:{nsd_root}", ids_file=ids_file)
    assert s.ids == [4, 8] and isinstance(s.ids[0], int)


def test_preprocessing_resize_and_normalise():
    pre = Preprocessing()
    img = encoded_image(200, size=425)
    x = pre.resize_uint8(img)
    assert x.dtype == torch.uint8 and x.shape == (3, 224, 224)
    assert int(x[0, 100, 100]) == 200  # a constant channel stays constant through resize
    y = pre.normalise(x[None])
    expected = (200 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert y.dtype == torch.float32 and abs(float(y[0, 0, 7, 9]) - expected) < 1e-6
    same = pre.resize_uint8(np.zeros((224, 224, 3), np.uint8) + 7)
    assert same.shape == (3, 224, 224) and int(same.max()) == 7
