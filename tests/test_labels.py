"""Label readers (class folders, VOC, COCO, YOLO, masks): good input read right, bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import shared_dataset

from lineguard.data.labels import (
    read_annotated,
    read_class_folders,
    read_coco,
    read_masks,
    read_voc,
    read_yolo,
    split_annotated,
)
from lineguard.errors import DataError


def image(path: Path, w: int = 100, h: int = 80) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w), 128, np.uint8))
    return path


def voc(path: Path, filename: str, objects: list[tuple[str, tuple]], size=(100, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height></size>{body}</annotation>"
    )


def test_voc_reads_boxes_and_names_bad_files(tmp_path):
    image(tmp_path / "images" / "a.jpg")
    image(tmp_path / "images" / "b.jpg")
    voc(tmp_path / "ann" / "a.xml", "a.jpg", [("scratch", (10, 20, 50, 60)), ("dent", (0, 0, 5, 5))])
    voc(tmp_path / "ann" / "b.xml", "b.jpg", [("scratch", (1, 1, 99, 79))])
    data = read_voc(tmp_path)
    assert data.classes == ("dent", "scratch")
    a = next(s for s in data.samples if s.path.name == "a.jpg")
    np.testing.assert_array_equal(a.boxes, [[10, 20, 50, 60], [0, 0, 5, 5]])
    assert a.box_labels.tolist() == [1, 0]
    with pytest.raises(DataError, match=r"unknown classes \['dent'\]"):
        read_voc(tmp_path, classes=["scratch"])
    voc(tmp_path / "ann" / "b.xml", "b.jpg", [("scratch", (10, 10, 130, 50))])
    with pytest.raises(DataError, match=r"b\.xml: object 0 \(scratch\): box .* outside the 100x80 image"):
        read_voc(tmp_path)
    voc(tmp_path / "ann" / "b.xml", "b.jpg", [("scratch", (50, 10, 40, 50))])
    with pytest.raises(DataError, match="empty box"):
        read_voc(tmp_path)
    voc(tmp_path / "ann" / "b.xml", "missing.jpg", [])
    with pytest.raises(DataError, match=r"b\.xml: its image 'missing\.jpg' is not under"):
        read_voc(tmp_path)
    (tmp_path / "ann" / "b.xml").write_text("<annotation><filename>b.jpg</filename>")
    with pytest.raises(DataError, match=r"b\.xml: malformed XML"):
        read_voc(tmp_path)


def test_coco_reads_xywh_and_names_bad_annotations(tmp_path):
    image(tmp_path / "img" / "p1.png")
    doc = {
        "images": [{"id": 1, "file_name": "img/p1.png", "width": 100, "height": 80}],
        "categories": [{"id": 3, "name": "pore"}, {"id": 7, "name": "crack"}],
        "annotations": [{"id": 11, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 30]}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    data = read_coco(tmp_path / "coco.json")
    assert data.classes == ("pore", "crack")
    np.testing.assert_array_equal(data.samples[0].boxes, [[10, 5, 30, 35]])
    assert data.samples[0].box_labels.tolist() == [1] and data.samples[0].label == 1
    doc["annotations"][0]["category_id"] = 9
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="annotation 11: unknown category_id 9"):
        read_coco(tmp_path / "coco.json")
    doc["annotations"][0].update(category_id=3, bbox=[90, 5, 20, 30])
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotation 11 on p1\.png: box .* outside"):
        read_coco(tmp_path / "coco.json")
    doc["images"][0]["file_name"] = "img/none.png"
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"'img/none\.png' .* not found"):
        read_coco(tmp_path / "coco.json")


def test_yolo_reads_normalised_boxes_and_names_bad_lines(tmp_path):
    image(tmp_path / "images" / "x.png", 200, 100)
    image(tmp_path / "images" / "background.png", 200, 100)
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("scratch\nspot\n")
    (tmp_path / "labels" / "x.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    data = read_yolo(tmp_path)
    x = next(s for s in data.samples if s.path.name == "x.png")
    np.testing.assert_allclose(x.boxes, [[80, 30, 120, 70]])
    assert x.label == 1
    assert next(s for s in data.samples if s.path.name == "background.png").boxes.shape == (0, 4)
    (tmp_path / "labels" / "x.txt").write_text("2 0.5 0.5 0.2 0.4\n")
    with pytest.raises(DataError, match=r"x\.txt: line 1: class 2 unknown"):
        read_yolo(tmp_path)
    (tmp_path / "labels" / "x.txt").write_text("0 0.95 0.5 0.2 0.4\n")
    with pytest.raises(DataError, match=r"x\.txt: line 1: box .* outside"):
        read_yolo(tmp_path)
    (tmp_path / "labels" / "x.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(DataError, match="expected 'class cx cy w h'"):
        read_yolo(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"classes\.txt or data\.yaml"):
        read_yolo(tmp_path)


def test_class_folders_and_split(tmp_path):
    for cls, n in (("good", 30), ("crack", 10), ("pore", 6)):
        for i in range(n):
            image(tmp_path / cls / f"{cls}{i}.png")
    data = read_class_folders(tmp_path)
    assert data.classes == ("crack", "good", "pore") and data.class_counts() == {
        "crack": 10,
        "good": 30,
        "pore": 6,
    }
    split = split_annotated(data, val=0.1, test=0.2, seed=0)
    assert len(split.train) + len(split.val) + len(split.test) == 46
    assert {s.label for s in split.test} == {0, 1, 2}  # stratified: every class in the test split
    assert split == split_annotated(data, val=0.1, test=0.2, seed=0)
    assert split.test != split_annotated(data, val=0.1, test=0.2, seed=1).test
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: class folder holds no images"):
        read_class_folders(tmp_path)


@pytest.mark.shared
def test_kolektor_masks_split_by_item():
    data = read_masks(shared_dataset("kolektorsdd"), "kolektor")
    assert data.class_counts() == {"good": 348, "defect": 52}
    split = split_annotated(data, seed=0)
    groups = [{s.group for s in part} for part in (split.train, split.val, split.test)]
    assert not (groups[0] & groups[2]) and not (groups[0] & groups[1]) and not (groups[1] & groups[2])
    assert all(s.mask_path is not None for s in split.test if s.label == 1)


@pytest.mark.shared
def test_neu_det_boxes_read_as_published():
    """NEU-DET's VOC files: 1800 images and 4189 boxes (its SOURCE.md), each image with its boxes,
    split by the detection task into whole images, stratified by their main class."""
    root = shared_dataset("neu-det")
    data = read_annotated(root, "voc", "detect")
    assert len(data.samples) == 1800
    assert sum(len(s.boxes) for s in data.samples) == 4189
    assert data.classes == (
        "crazing",
        "inclusion",
        "patches",
        "pitted_surface",
        "rolled-in_scale",
        "scratches",
    )
    split = split_annotated(data, val=0.1, test=0.2, seed=0)
    sizes = (len(split.train), len(split.val), len(split.test))
    assert sum(sizes) == 1800 and abs(sizes[1] - 180) <= 3 and abs(sizes[2] - 360) <= 3
    assert not {s.path for s in split.test} & {s.path for s in split.train + split.val}
    with pytest.raises(DataError, match="detection reads boxes"):
        read_annotated(root, "folder", "detect")
