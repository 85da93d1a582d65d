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
from lineguard.data.samples import DEFECT, GOOD, GOOD_CLASS_NAMES, DataSplit, SampleRef
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


def find_good_folder(parent: Path, good_class: str | None, what: str, required: bool = True) -> Path | None:
    """The folder of good parts in ``parent``: ``good_class`` if given, else the one folder named
    good, ok, pass or normal (any case). Two candidates, or none when ``required``, is an error."""
    if good_class is not None:
        if not required and not (parent / good_class).is_dir():
            return None
        return _require_dir(parent / good_class, f"{what} folder {good_class!r} (--good-class)")
    found = sorted(p for p in parent.iterdir() if p.is_dir() and p.name.lower() in GOOD_CLASS_NAMES)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(
            parent, f"several folders could hold the good parts ({names}); name one with --good-class"
        )
    if not found:
        if not required:
            return None
        raise DataError(
            parent / "good",
            f"{what} folder not found (looked for {'/'.join(GOOD_CLASS_NAMES)}; "
            "name another with --good-class)",
        )
    return found[0]


def _defect_samples(folder: Path, good: Path | None, mask_root: Path | None) -> list[SampleRef]:
    """One SampleRef per image in each folder beside ``good`` (mask folders aside), typed by folder
    name; with ``mask_root``, every image of a type that has a mask folder must have its mask."""
    samples: list[SampleRef] = []
    for type_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if type_dir == good or type_dir.name in MASK_DIR_NAMES:
            continue
        masks = mask_root / type_dir.name if mask_root is not None else None
        for image in _require_images(type_dir):
            mask = None
            if masks is not None and masks.is_dir():
                mask = _find_mask(masks, image)
                if mask is None:
                    raise DataError(image, f"no mask in {masks} (expected {image.stem}_mask.png)")
            samples.append(SampleRef(image, DEFECT, type_dir.name, mask))
    return samples


def read_mvtec(
    root: Path, seed: int = 0, test_fraction: float = 0.0, good_class: str | None = None
) -> DataSplit:
    """MVTec AD: train/good, test/<type>/, ground_truth/<type>/<name>_mask.png.

    Defect folders under ``train/`` (a user's few known defects) are kept apart from the test
    split and used to calibrate the REVIEW band and to choose among candidate configurations."""
    del seed, test_fraction  # MVTec fixes its own split
    root = _require_dir(root, "MVTec category folder")
    train_root = _require_dir(root / "train", "MVTec train folder")
    train_dir = find_good_folder(train_root, good_class, "MVTec train/good")
    assert train_dir is not None
    test_dir = _require_dir(root / "test", "MVTec test folder")
    train = [SampleRef(p, GOOD) for p in _require_images(train_dir)]
    known_defects = _defect_samples(train_root, train_dir, None)
    test_good = find_good_folder(test_dir, good_class, "MVTec test/good", required=False)
    gt_dir = root / "ground_truth"
    test = [SampleRef(p, GOOD) for p in _require_images(test_good)] if test_good else []
    test += _defect_samples(test_dir, test_good, gt_dir if gt_dir.is_dir() else None)
    if not test:
        raise DataError(test_dir, "no test class folders")
    notes = (
        (f"{len(known_defects)} defective images under train/ used for calibration only",)
        if known_defects
        else ()
    )
    return DataSplit(f"mvtec:{root.name}", tuple(train), tuple(test), notes, tuple(known_defects))


def read_folder(
    root: Path, seed: int = 0, test_fraction: float = 0.2, good_class: str | None = None
) -> DataSplit:
    """good/ (or ok/, pass/, normal/, or ``good_class``) plus one folder per defect type; masks in
    masks/<type>/ (optional).

    A share ``test_fraction`` of the good images is kept for testing; every
    defect image goes to the test set.
    """
    root = _require_dir(root, "dataset folder")
    good_dir = find_good_folder(root, good_class, "good/")
    assert good_dir is not None
    goods = [SampleRef(p, GOOD) for p in _require_images(good_dir)]
    mask_root = next((root / n for n in MASK_DIR_NAMES if (root / n).is_dir()), None)
    defects = _defect_samples(root, good_dir, mask_root)
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
GOOD_CLASS_FORMATS = ("mvtec", "folder")
FORMATS: dict[str, Reader] = {
    "mvtec": read_mvtec,
    "folder": read_folder,
    "kolektor": read_kolektor,
    "elpv": read_elpv,
}


def open_dataset(
    path: str | Path,
    fmt: str,
    seed: int = 0,
    test_fraction: float | None = None,
    good_class: str | None = None,
) -> DataSplit:
    """Open a dataset in one of FORMATS; test_fraction None keeps the layout's default.

    ``good_class`` names the folder of good parts for the folder layouts (mvtec, folder)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {sorted(FORMATS)}")
    kwargs: dict[str, object] = {"seed": seed}
    if test_fraction is not None:
        kwargs["test_fraction"] = test_fraction
    if good_class is not None:
        if fmt not in GOOD_CLASS_FORMATS:
            raise ValueError(f"--good-class applies to the {'/'.join(GOOD_CLASS_FORMATS)} layouts, not {fmt}")
        kwargs["good_class"] = good_class
    return FORMATS[fmt](Path(path), **kwargs)
