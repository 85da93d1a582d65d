"""Labelled data for supervised models: class folders, Pascal VOC XML, COCO JSON, YOLO txt, masks.

Every reader returns an :class:`AnnotatedSet`: the class names and one typed
sample per image (its class, its boxes in pixel xyxy, its mask file). Bad labels
stop the run with an error naming the file and the problem: a box outside its
image, an unknown class, a missing image, a malformed line — never a silent skip.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lineguard.data.image_io import IMAGE_SUFFIXES
from lineguard.errors import DataError

LABEL_FORMATS = ("folder", "voc", "coco", "yolo", "mvtec", "kolektor")
MASK_FORMATS = ("mvtec", "kolektor", "folder")  # segmentation: masks beside the images
BOX_FORMATS = ("voc", "coco", "yolo")  # detection
# Boxes may touch the border; a coordinate this far past it (pixels) is a labelling error.
BORDER_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class AnnotatedSample:
    path: Path
    label: int = -1  # image class index; -1 when the image has none
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # xyxy pixels
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mask_path: Path | None = None
    group: str | None = None  # physical item: splits keep a group together


@dataclass(frozen=True)
class AnnotatedSet:
    classes: tuple[str, ...]
    samples: tuple[AnnotatedSample, ...]
    source: str

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples if s.label >= 0)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    except Exception as exc:
        raise DataError(path, f"not a readable image ({exc})") from None


def _check_box(where: Path, box: Sequence[float], size: tuple[int, int], what: str) -> None:
    x0, y0, x1, y1 = box
    width, height = size
    if not all(np.isfinite(box)):
        raise DataError(where, f"{what}: non-finite coordinates {list(box)}")
    if x1 <= x0 or y1 <= y0:
        raise DataError(where, f"{what}: empty box (x {x0}..{x1}, y {y0}..{y1})")
    tol = BORDER_TOLERANCE_PX
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise DataError(
            where, f"{what}: box ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image"
        )


def _index_images(root: Path) -> dict[str, Path]:
    """Every image under root by file name; a name found twice is ambiguous for label files."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.name in found:
                raise DataError(
                    path, f"image name also used by {found[path.name]}; labels cannot tell them apart"
                )
            found[path.name] = path
    return found


def _classes_from(names: set[str], given: Sequence[str] | None, where: Path) -> tuple[str, ...]:
    if given is None:
        return tuple(sorted(names))
    unknown = sorted(names - set(given))
    if unknown:
        raise DataError(where, f"unknown classes {unknown}; expected one of {list(given)}")
    return tuple(given)


def _image_class(boxes_labels: np.ndarray) -> int:
    """The image's class for classification from its boxes: the most frequent box class."""
    if boxes_labels.size == 0:
        return -1
    return int(Counter(boxes_labels.tolist()).most_common(1)[0][0])


def read_class_folders(root: str | Path) -> AnnotatedSet:
    """``root/<class>/*.png``: one folder per class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(root, f"need at least two class folders, found {[p.name for p in folders]}")
    classes = tuple(p.name for p in folders)
    samples = []
    for index, folder in enumerate(folders):
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(folder, "class folder holds no images")
        samples += [AnnotatedSample(p, index) for p in images]
    return AnnotatedSet(classes, tuple(samples), f"folder:{root}")


def read_voc(root: str | Path, classes: Sequence[str] | None = None) -> AnnotatedSet:
    """Pascal VOC: ``*.xml`` anywhere under root, each naming its image (found anywhere under root)."""
    root = Path(root)
    xml_files = sorted(root.rglob("*.xml"))
    if not xml_files:
        raise DataError(root, "no Pascal VOC .xml annotation files found")
    images = _index_images(root)
    parsed = []
    names: set[str] = set()
    for xml_file in xml_files:
        try:
            doc = ET.parse(xml_file).getroot()
        except ET.ParseError as exc:
            raise DataError(xml_file, f"malformed XML ({exc})") from None
        filename = (doc.findtext("filename") or "").strip()
        if not filename:
            raise DataError(xml_file, "no <filename>")
        image = images.get(filename) or next(
            (p for n, p in images.items() if Path(n).stem == Path(filename).stem), None
        )
        if image is None:
            raise DataError(xml_file, f"its image {filename!r} is not under {root}")
        size = _image_size(image)
        objects = []
        for i, obj in enumerate(doc.findall("object")):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if not name or box is None:
                raise DataError(xml_file, f"object {i}: needs <name> and <bndbox>")
            try:
                coords = [float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise DataError(
                    xml_file, f"object {i} ({name}): bndbox needs numeric xmin ymin xmax ymax"
                ) from None
            _check_box(xml_file, coords, size, f"object {i} ({name})")
            objects.append((name, coords))
            names.add(name)
        parsed.append((image, objects))
    class_names = _classes_from(names, classes, root)
    index = {n: i for i, n in enumerate(class_names)}
    samples = []
    for image, objects in parsed:
        labels = np.array([index[n] for n, _ in objects], np.int64)
        boxes = np.array([c for _, c in objects], np.float32).reshape(-1, 4)
        samples.append(AnnotatedSample(image, _image_class(labels), boxes, labels))
    return AnnotatedSet(class_names, tuple(samples), f"voc:{root}")


def read_coco(annotations: str | Path, images_root: str | Path | None = None) -> AnnotatedSet:
    """COCO JSON (``images``, ``annotations`` with ``bbox`` [x, y, w, h], ``categories``)."""
    annotations = Path(annotations)
    if annotations.is_dir():
        found = sorted(annotations.glob("*.json"))
        if len(found) != 1:
            raise DataError(annotations, f"expected one COCO .json file, found {[p.name for p in found]}")
        annotations = found[0]
    try:
        doc = json.loads(annotations.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(annotations, f"not a readable COCO JSON file ({exc})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(annotations, f"no {key!r} list")
    base = Path(images_root) if images_root else annotations.parent
    categories = {c["id"]: c["name"] for c in doc["categories"]}
    class_names = tuple(categories[k] for k in sorted(categories))
    index = {cid: class_names.index(name) for cid, name in categories.items()}
    images: dict[Any, Any] = {}
    for im in doc["images"]:
        path = base / im["file_name"]
        if not path.is_file():
            raise DataError(annotations, f"image {im['file_name']!r} (id {im['id']}) not found under {base}")
        images[im["id"]] = (path, (int(im["width"]), int(im["height"])), [])
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotation {ann.get('id', i)}"
        if ann.get("image_id") not in images:
            raise DataError(annotations, f"{where}: unknown image_id {ann.get('image_id')}")
        if ann.get("category_id") not in index:
            raise DataError(annotations, f"{where}: unknown category_id {ann.get('category_id')}")
        x, y, w, h = (float(v) for v in ann["bbox"])
        path, size, objects = images[ann["image_id"]]
        _check_box(annotations, (x, y, x + w, y + h), size, f"{where} on {path.name}")
        objects.append((index[ann["category_id"]], (x, y, x + w, y + h)))
    samples = []
    for path, _, objects in images.values():
        labels = np.array([c for c, _ in objects], np.int64)
        boxes = np.array([b for _, b in objects], np.float32).reshape(-1, 4)
        samples.append(AnnotatedSample(path, _image_class(labels), boxes, labels))
    return AnnotatedSet(class_names, tuple(samples), f"coco:{annotations}")


def _yolo_classes(root: Path) -> tuple[str, ...]:
    if (root / "classes.txt").is_file():
        names = [line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
        return tuple(names)
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            import yaml

            doc = yaml.safe_load((root / name).read_text()) or {}
            declared = doc.get("names")
            if isinstance(declared, dict):
                return tuple(declared[k] for k in sorted(declared))
            if isinstance(declared, list):
                return tuple(declared)
    raise DataError(root, "YOLO layout needs classes.txt or data.yaml with 'names'")


def read_yolo(root: str | Path) -> AnnotatedSet:
    """YOLO: ``images/**/x.jpg`` with ``labels/**/x.txt`` lines ``class cx cy w h`` (normalised)."""
    root = Path(root)
    classes = _yolo_classes(root)
    image_dir, label_dir = root / "images", root / "labels"
    if not image_dir.is_dir():
        raise DataError(root, "YOLO layout needs an images/ folder")
    samples = []
    for image in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        label_file = label_dir / image.relative_to(image_dir).with_suffix(".txt")
        labels, boxes = [], []
        if label_file.is_file():
            width, height = _image_size(image)
            for n, line in enumerate(label_file.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 5:
                    raise DataError(label_file, f"line {n}: expected 'class cx cy w h', got {line.strip()!r}")
                try:
                    cls = int(fields[0])
                    cx, cy, w, h = (float(v) for v in fields[1:])
                except ValueError:
                    raise DataError(label_file, f"line {n}: not numbers: {line.strip()!r}") from None
                if not 0 <= cls < len(classes):
                    raise DataError(
                        label_file, f"line {n}: class {cls} unknown; {len(classes)} classes {classes}"
                    )
                box = (
                    (cx - w / 2) * width,
                    (cy - h / 2) * height,
                    (cx + w / 2) * width,
                    (cy + h / 2) * height,
                )
                _check_box(label_file, box, (width, height), f"line {n}")
                labels.append(cls)
                boxes.append(box)
        label_array = np.array(labels, np.int64)
        samples.append(
            AnnotatedSample(
                image, _image_class(label_array), np.array(boxes, np.float32).reshape(-1, 4), label_array
            )
        )
    if not samples:
        raise DataError(image_dir, "no images")
    return AnnotatedSet(classes, tuple(samples), f"yolo:{root}")


def read_masks(root: str | Path, format: str) -> AnnotatedSet:
    """Segmentation data from the anomaly layouts (mvtec, kolektor, folder): classes good / defect,
    every image of the dataset (train and test alike), masks where the layout has them."""
    from lineguard.data.readers import open_dataset

    split = open_dataset(root, format, seed=0)
    refs = [*split.train, *split.test, *split.calibration_defects]
    samples = tuple(
        AnnotatedSample(r.path, int(r.label), mask_path=r.mask_path, group=r.group)
        for r in sorted(refs, key=lambda r: str(r.path))
    )
    missing = [s.path for s in samples if s.label == 1 and s.mask_path is None]
    if missing:
        raise DataError(missing[0], f"defect image without a mask ({len(missing)} such images)")
    return AnnotatedSet(("good", "defect"), samples, f"{format}:{root}")


def read_annotated(root: str | Path, format: str, task: str = "classify") -> AnnotatedSet:
    """Labels for ``task``: segmentation reads masks (mvtec, kolektor, or the anomaly folder layout
    with masks/); detection reads VOC, COCO or YOLO boxes; classification reads class folders, VOC,
    COCO or YOLO (image class = its boxes')."""
    if task == "segment":
        if format not in MASK_FORMATS:
            raise DataError(
                Path(root), f"segmentation reads masks: format {', '.join(MASK_FORMATS)}, not {format!r}"
            )
        return read_masks(root, format)
    if task == "detect" and format not in BOX_FORMATS:
        raise DataError(Path(root), f"detection reads boxes: format {', '.join(BOX_FORMATS)}, not {format!r}")
    if format == "folder":
        return read_class_folders(root)
    if format == "voc":
        return read_voc(root)
    if format == "coco":
        return read_coco(root)
    if format == "yolo":
        return read_yolo(root)
    if format in ("mvtec", "kolektor"):
        return read_masks(root, format)
    raise DataError(Path(root), f"unknown label format {format!r}; use one of {LABEL_FORMATS}")


@dataclass(frozen=True)
class AnnotatedSplit:
    train: tuple[AnnotatedSample, ...]
    val: tuple[AnnotatedSample, ...]
    test: tuple[AnnotatedSample, ...]


def split_annotated(data: AnnotatedSet, val: float = 0.1, test: float = 0.2, seed: int = 0) -> AnnotatedSplit:
    """Whole groups (items) to train / validation / test, stratified by the group's class (its
    highest class index: an item with any defect counts as defective), reproducible from the seed."""
    if not 0 <= val < 1 or not 0 < test < 1 or val + test >= 1:
        raise ValueError(f"val {val} and test {test} must be fractions leaving some data to train on")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[AnnotatedSample]] = {}
    for s in data.samples:
        groups.setdefault(s.group or str(s.path), []).append(s)
    strata: dict[int, list[str]] = {}
    for key, members in groups.items():
        strata.setdefault(max(m.label for m in members), []).append(key)
    parts: dict[str, list[AnnotatedSample]] = {"train": [], "val": [], "test": []}
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        n = len(keys)
        n_test = max(1, round(test * n)) if n >= 3 else 0
        n_val = max(1, round(val * n)) if n >= 3 and val > 0 else 0
        for i, key in enumerate(keys):
            target = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            parts[target] += groups[key]
    order = {str(s.path): i for i, s in enumerate(data.samples)}
    return AnnotatedSplit(
        *(tuple(sorted(parts[n], key=lambda s: order[str(s.path)])) for n in ("train", "val", "test"))
    )


def labelled_split_as_fitted(
    metadata: dict, data: str | Path, format: str, task: str, seed: int | None, test_fraction: float | None
) -> tuple[AnnotatedSet, AnnotatedSplit]:
    """The labelled set split as training split it (the seed and fractions in its fit record),
    unless ``seed`` or ``test_fraction`` override them."""
    info = metadata.get("split", {})
    return labelled_split(
        data,
        format,
        seed if seed is not None else int(info.get("seed", 0)),
        float(info.get("val_fraction", 0.1)),
        test_fraction if test_fraction is not None else float(info.get("test_fraction", 0.2)),
        task=task,
    )


def labelled_split(
    data: str | Path, format: str, seed: int, val: float, test: float, task: str = "classify"
) -> tuple[AnnotatedSet, AnnotatedSplit]:
    """Read a labelled set and split it as training did (evaluate re-creates the split from the seed)."""
    annotated = read_annotated(data, format, task)
    return annotated, split_annotated(annotated, val=val, test=test, seed=seed)
