"""Dataset layouts -> DataSplit. Every reader checks what it lists and fails loudly.

A silently skipped file changes the metrics without anyone noticing, so an empty
class folder, a missing mask or a label file that points nowhere is an error
naming the path. Image contents are checked when they are decoded.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from lineguard.data.image_io import IMAGE_SUFFIXES, list_images, read_mask
from lineguard.data.samples import DEFECT, GOOD, DataSplit, SampleRef
from lineguard.errors import DataError

MASK_DIR_NAMES = ("ground_truth", "masks")


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(path, f"{what} not found")
    if not path.is_dir():
        raise DataError(path, f"{what} must be a folder")
    return path


def _require_images(folder: Path) -> list[Path]:
    images = list_images(folder)
    if not images:
        raise DataError(folder, f"class folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _find_mask(mask_dir: Path, image: Path) -> Path | None:
    for stem in (f"{image.stem}_mask", image.stem):
        for suffix in (".png", ".bmp", ".tif", ".tiff", ".jpg"):
            candidate = mask_dir / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def split_good(
    samples: Sequence[SampleRef], test_fraction: float, seed: int
) -> tuple[list[SampleRef], list[SampleRef]]:
    """Split samples in two, keeping all images of one group (item) on one side."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    groups: dict[str, list[SampleRef]] = {}
    for s in samples:
        groups.setdefault(s.group or str(s.path), []).append(s)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_test = round(len(keys) * test_fraction)
    test_keys = set(keys[:n_test])
    first = [s for k in sorted(groups) if k not in test_keys for s in groups[k]]
    second = [s for k in sorted(groups) if k in test_keys for s in groups[k]]
    return first, second


def read_mvtec(root: Path, seed: int = 0, test_fraction: float = 0.0) -> DataSplit:
    """MVTec AD: train/good, test/<type>/, ground_truth/<type>/<name>_mask.png."""
    del seed, test_fraction  # MVTec fixes its own split
    root = _require_dir(root, "MVTec category folder")
    train_dir = _require_dir(root / "train" / "good", "MVTec train/good folder")
    test_dir = _require_dir(root / "test", "MVTec test folder")
    train = [SampleRef(p, GOOD) for p in _require_images(train_dir)]
    gt_dir = root / "ground_truth"
    test: list[SampleRef] = []
    for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        images = _require_images(type_dir)
        if type_dir.name == "good":
            test += [SampleRef(p, GOOD) for p in images]
            continue
        for image in images:
            mask = None
            if gt_dir.is_dir():
                mask = _find_mask(gt_dir / type_dir.name, image)
                if mask is None:
                    raise DataError(
                        image, f"no mask in {gt_dir / type_dir.name} (expected {image.stem}_mask.png)"
                    )
            test.append(SampleRef(image, DEFECT, type_dir.name, mask))
    if not test:
        raise DataError(test_dir, "no test class folders")
    return DataSplit(f"mvtec:{root.name}", tuple(train), tuple(test))


def read_folder(root: Path, seed: int = 0, test_fraction: float = 0.2) -> DataSplit:
    """good/ plus one folder per defect type; masks in masks/<type>/ (optional).

    A share ``test_fraction`` of the good images is kept for testing; every
    defect image goes to the test set.
    """
    root = _require_dir(root, "dataset folder")
    good_dir = _require_dir(root / "good", "good/ folder")
    goods = [SampleRef(p, GOOD) for p in _require_images(good_dir)]
    mask_root = next((root / n for n in MASK_DIR_NAMES if (root / n).is_dir()), None)
    defects: list[SampleRef] = []
    for type_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if type_dir.name == "good" or type_dir.name in MASK_DIR_NAMES:
            continue
        for image in _require_images(type_dir):
            mask = None
            if mask_root is not None and (mask_root / type_dir.name).is_dir():
                mask = _find_mask(mask_root / type_dir.name, image)
                if mask is None:
                    raise DataError(image, f"no mask for it in {mask_root / type_dir.name}")
            defects.append(SampleRef(image, DEFECT, type_dir.name, mask))
    train, test_good = split_good(goods, test_fraction, seed)
    return DataSplit(f"folder:{root.name}", tuple(train), tuple(test_good + defects))


def read_kolektor(root: Path, seed: int = 0, test_fraction: float = 1 / 3) -> DataSplit:
    """KolektorSDD: kosNN/PartN.jpg + PartN_label.(png|bmp); split by item kosNN.

    An image is defective when its mask has any white pixel. Items (physical
    commutators) are split, never images, so no item is in both train and test.
    """
    root = _require_dir(root, "KolektorSDD folder")
    items = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("kos"))
    if not items:
        raise DataError(root, "no kosNN item folders (is this the KolektorSDD root?)")
    samples: list[SampleRef] = []
    for item in items:
        parts = [p for p in _require_images(item) if "_label" not in p.stem]
        if not parts:
            raise DataError(item, "item folder holds no PartN images")
        for part in parts:
            mask = _find_mask_named(item, f"{part.stem}_label")
            if mask is None:
                raise DataError(part, f"no label mask {part.stem}_label.png|bmp beside it")
            label = DEFECT if read_mask(mask).any() else GOOD
            samples.append(SampleRef(part, label, "crack" if label else "good", mask, group=item.name))
    train_items, test_items = split_good(samples, test_fraction, seed)
    train = [s for s in train_items if s.label == GOOD]
    train_defects = [s for s in train_items if s.label == DEFECT]
    notes = (
        f"split by item: {len({s.group for s in train_items})} train items, "
        f"{len({s.group for s in test_items})} test items (seed {seed}); "
        f"{len(train_defects)} defective images of train items used for calibration only",
    )
    return DataSplit(f"kolektorsdd:{root.name}", tuple(train), tuple(test_items), notes, tuple(train_defects))


def _find_mask_named(folder: Path, stem: str) -> Path | None:
    for suffix in (".png", ".bmp"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def elpv_root() -> Path:
    """Where the elpv-dataset package keeps labels.csv and images/."""
    try:
        import elpv_dataset
    except ImportError:
        raise DataError("elpv", "the ELPV sample is not installed: pip install 'lineguard[sample]'") from None
    return Path(elpv_dataset.__file__).parent / "data"


def read_elpv(
    root: Path | None = None,
    seed: int = 0,
    test_fraction: float = 0.3,
    defect_min_probability: float = 0.5,
) -> DataSplit:
    """ELPV solar cells (labels.csv: path, defect probability, cell type).

    Good = probability 0; defect = probability >= ``defect_min_probability``.
    Cells rated in between (1/3 by default) are ambiguous and left out of both
    sets, so the metrics measure what the experts agreed on.
    """
    if root is None or not (root / "labels.csv").is_file():
        root = elpv_root() if root is None or str(root) in ("elpv", "installed") else root
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(labels, "ELPV labels.csv not found")
    goods: list[SampleRef] = []
    defects: list[SampleRef] = []
    skipped = 0
    with labels.open() as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter=" ", skipinitialspace=True), 1):
            if not row:
                continue
            try:
                rel, prob, kind = row[0], float(row[1]), row[2]
            except (IndexError, ValueError):
                raise DataError(labels, f"line {line_no}: expected 'path probability type'") from None
            path = root / rel
            if not path.is_file():
                raise DataError(path, f"listed in {labels.name} line {line_no} but missing")
            if prob == 0.0:
                goods.append(SampleRef(path, GOOD, "good", group=None))
            elif prob >= defect_min_probability:
                defects.append(SampleRef(path, DEFECT, f"defect_{kind}"))
            else:
                skipped += 1
    if not goods:
        raise DataError(labels, "no good cells (probability 0) listed")
    train, test_good = split_good(goods, test_fraction, seed)
    notes = (f"{skipped} cells with 0 < defect probability < {defect_min_probability} left out",)
    return DataSplit("elpv", tuple(train), tuple(test_good + defects), notes)


Reader = Callable[..., DataSplit]
FORMATS: dict[str, Reader] = {
    "mvtec": read_mvtec,
    "folder": read_folder,
    "kolektor": read_kolektor,
    "elpv": read_elpv,
}


def open_dataset(path: str | Path, fmt: str, seed: int = 0, test_fraction: float | None = None) -> DataSplit:
    """Open a dataset in one of FORMATS; test_fraction None keeps the layout's default."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)}")
    kwargs: dict[str, object] = {"seed": seed}
    if test_fraction is not None:
        kwargs["test_fraction"] = test_fraction
    return FORMATS[fmt](Path(path), **kwargs)
