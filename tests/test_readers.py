from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import shared_dataset, write_folder_dataset

from lineguard.data import open_dataset
from lineguard.data.samples import DEFECT, GOOD
from lineguard.errors import DataError


def img(path: Path, shape=(16, 16), value=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def make_mvtec(root: Path, with_masks: bool = True) -> Path:
    for i in range(3):
        img(root / "train" / "good" / f"{i:03d}.png")
    img(root / "test" / "good" / "000.png")
    for i in range(2):
        img(root / "test" / "crack" / f"{i:03d}.png")
        if with_masks:
            img(root / "ground_truth" / "crack" / f"{i:03d}_mask.png", value=255)
    return root


def test_mvtec_layout(tmp_path):
    split = open_dataset(make_mvtec(tmp_path / "bottle"), "mvtec")
    assert len(split.train) == 3 and all(s.label == GOOD for s in split.train)
    defects = [s for s in split.test if s.label == DEFECT]
    assert len(defects) == 2 and all(s.mask_path is not None for s in defects)
    loaded = defects[0].load()
    assert loaded.mask is not None and loaded.mask.all() and loaded.defect_type == "crack"


def test_mvtec_missing_mask_is_an_error(tmp_path):
    root = make_mvtec(tmp_path / "bottle")
    (root / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(DataError, match=r"001\.png: no mask"):
        open_dataset(root, "mvtec")


def test_mask_of_wrong_size_fails_on_load(tmp_path):
    root = make_mvtec(tmp_path / "bottle")
    img(root / "ground_truth" / "crack" / "000_mask.png", shape=(8, 8), value=255)
    split = open_dataset(root, "mvtec")
    bad = next(s for s in split.test if s.path.name == "000.png" and s.label == DEFECT)
    with pytest.raises(DataError, match=r"000_mask\.png: mask is 8x8"):
        bad.load()


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_mvtec(tmp_path / "bottle")
    (root / "test" / "scratch").mkdir()
    with pytest.raises(DataError, match=r"scratch: class folder holds no images"):
        open_dataset(root, "mvtec")


def test_folder_layout_split_is_seeded_and_disjoint(tmp_path):
    root = write_folder_dataset(tmp_path / "parts", n_good=20, n_defect=4)
    a = open_dataset(root, "folder", seed=3)
    b = open_dataset(root, "folder", seed=3)
    assert a == b
    train = {s.path for s in a.train}
    test = {s.path for s in a.test}
    assert not train & test
    assert len(train) == 16 and sum(s.label for s in a.test) == 4
    assert all(s.mask_path is not None for s in a.test if s.label == DEFECT)


def test_folder_without_good_is_an_error(tmp_path):
    (tmp_path / "parts" / "scratch").mkdir(parents=True)
    with pytest.raises(DataError, match="good/ folder not found"):
        open_dataset(tmp_path / "parts", "folder")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown dataset format"):
        open_dataset(".", "coco-anomaly")


def test_kolektor_layout_generated(tmp_path):
    for item in range(1, 7):
        for part in range(3):
            img(tmp_path / f"kos{item:02d}" / f"Part{part}.jpg", (20, 8))
            value = 255 if (part == 0 and item % 2) else 0
            img(tmp_path / f"kos{item:02d}" / f"Part{part}_label.png", (20, 8), value)
    split = open_dataset(tmp_path, "kolektor", seed=0, test_fraction=1 / 3)
    train_items = {s.group for s in split.train} | {s.group for s in split.calibration_defects}
    test_items = {s.group for s in split.test}
    assert train_items and test_items and not train_items & test_items
    assert all(s.label == GOOD for s in split.train)
    assert len(test_items) == 2


def test_kolektor_missing_label_is_an_error(tmp_path):
    img(tmp_path / "kos01" / "Part0.jpg", (20, 8))
    with pytest.raises(DataError, match=r"Part0\.jpg: no label mask"):
        open_dataset(tmp_path, "kolektor")


@pytest.mark.shared
def test_kolektor_real_counts_and_item_split():
    root = shared_dataset("kolektorsdd")
    split = open_dataset(root, "kolektor", seed=0)
    everything = list(split.train) + list(split.test) + list(split.calibration_defects)
    assert sum(s.label for s in everything) == 52
    assert {s.group for s in split.train}.isdisjoint({s.group for s in split.test})


def test_elpv_installed_sample():
    pytest.importorskip("elpv_dataset")
    split = open_dataset("elpv", "elpv", seed=0)
    assert len(split.train) + sum(1 for s in split.test if s.label == GOOD) == 1508
    assert all(s.label == GOOD for s in split.train)
    assert {s.path for s in split.train}.isdisjoint({s.path for s in split.test})
    assert split.test[0].load().image.shape == (300, 300)


def test_mvtec_defects_under_train_calibrate_and_never_test(tmp_path):
    root = make_mvtec(tmp_path / "bottle")
    for i in range(2):
        img(root / "train" / "scratch" / f"k{i}.png")
    split = open_dataset(root, "mvtec")
    assert [s.defect_type for s in split.calibration_defects] == ["scratch", "scratch"]
    assert all(s.label == DEFECT for s in split.calibration_defects)
    assert not {s.path for s in split.calibration_defects} & {s.path for s in split.test}
    assert len(split.train) == 3 and "used for calibration only" in split.notes[0]


@pytest.mark.parametrize("name", ["normal", "OK", "Pass"])
def test_folder_layout_accepts_the_usual_good_folder_names(tmp_path, name):
    for i in range(5):
        img(tmp_path / "parts" / name / f"g{i}.png")
    img(tmp_path / "parts" / "abnormal" / "d0.png")
    split = open_dataset(tmp_path / "parts", "folder", seed=0)
    assert len(split.train) + sum(1 for s in split.test if s.label == GOOD) == 5
    assert [s.defect_type for s in split.test if s.label == DEFECT] == ["abnormal"]


def test_good_class_names_the_good_folder_and_refuses_ambiguity(tmp_path):
    for sub in ("good", "normal", "fine"):
        img(tmp_path / "parts" / sub / "a.png")
    with pytest.raises(DataError, match="several folders could hold the good parts"):
        open_dataset(tmp_path / "parts", "folder")
    split = open_dataset(tmp_path / "parts", "folder", good_class="fine", test_fraction=0.0)
    assert [s.path.parent.name for s in split.train] == ["fine"]
    assert sorted(s.defect_type for s in split.test) == ["good", "normal"]
    with pytest.raises(DataError, match="'missing'"):
        open_dataset(tmp_path / "parts", "folder", good_class="missing")
    with pytest.raises(ValueError, match="--good-class applies"):
        open_dataset(tmp_path / "parts", "kolektor", good_class="fine")
