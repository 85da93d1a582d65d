"""Fit an anomaly model on good parts, then calibrate its thresholds on held-out ones."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lineguard.data import DataSplit, SampleRef
from lineguard.data.image_io import read_image
from lineguard.data.readers import split_good
from lineguard.data.samples import fingerprint
from lineguard.data.seen import content_digests
from lineguard.models import MODELS, AnomalyModel, CalibrationSet
from lineguard.train.config import AnomalyConfig, default
from lineguard.train.workflow import Trained, TrainingHooks

if TYPE_CHECKING:
    from lineguard.station.preparation import PreparedCheck

# `--model auto` / `--backbone auto` / `--size auto`: the first of each is the default; the rest are
# tried only when validation defects can rank them (see ``candidate_configs``).
AUTO_MODELS = ("padim", "patchcore")
AUTO_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
AUTO_SHORT_SIDES = (256, 192)
# Fewer defects than this make validation AUROC too coarse (steps of 1/n) to rank candidates on.
MIN_SELECTION_DEFECTS = 10


def iter_images(samples: Sequence[SampleRef]) -> Iterator[np.ndarray]:
    """Decode lazily; a bad file raises DataError naming it (never skipped)."""
    for s in samples:
        yield read_image(s.path)


def _median_size(samples: Sequence[SampleRef]) -> tuple[float, float]:
    """Median (height, width) of up to 32 images spread over the set (headers only)."""
    from PIL import Image

    sizes = []
    for s in samples[:: max(1, len(samples) // 32)][:32]:
        with Image.open(s.path) as im:
            sizes.append(im.size[::-1])
    if not sizes:
        raise ValueError("no images to size the network input from")
    h, w = np.median(np.asarray(sizes, dtype=np.float64), axis=0)
    return float(h), float(w)


def native_size(samples: Sequence[SampleRef]) -> tuple[int, int]:
    """The images' median (height, width), rounded to multiples of 16: a tiled part's working size."""
    h, w = _median_size(samples)
    return max(32, round(h / 16) * 16), max(32, round(w / 16) * 16)


def auto_image_size(
    samples: Sequence[SampleRef], short_side: int = 256, max_long_side: int = 1024
) -> tuple[int, int]:
    """(H, W): the short side at ``short_side`` px, the images' median aspect ratio kept.

    Squashing a 500x1250 part into a square halves its thinnest defects a second
    time; keeping the aspect ratio spends the extra compute where the part is.
    Sides are multiples of 16 so both feature strides divide them.
    """
    h, w = _median_size(samples)
    aspect = h / w
    height, width = (
        (min(short_side * aspect, max_long_side), float(short_side))
        if aspect >= 1.0
        else (float(short_side), min(short_side / aspect, max_long_side))
    )
    return max(32, round(height / 16) * 16), max(32, round(width / 16) * 16)


def fit_anomaly_model(
    model: AnomalyModel,
    split: DataSplit,
    *,
    calibration_fraction: float = default(AnomalyConfig, "calibration_fraction"),
    target_frr: float = default(AnomalyConfig, "target_frr"),
    review_rate: float = default(AnomalyConfig, "review_rate"),
    target_sensitivity: float = default(AnomalyConfig, "target_sensitivity"),
    max_train: int | None = None,
    seed: int = 0,
    progress: bool = False,
    split_info: dict[str, Any] | None = None,
    synthetic_defects: int = 0,
    review_on_synthetic: bool = False,
) -> AnomalyModel:
    """Fit on good parts and calibrate on a held-out share of them (grouped by item).

    ``synthetic_defects``: when the data has no labelled defects for calibration, this many synthetic
    ones (CutPaste, scar, Perlin; made from the held-out good parts) give the validation AUROC that
    ranks candidate models, and the share of defects expected to pass as OK. With
    ``review_on_synthetic`` they also widen the REVIEW band to catch ``target_sensitivity`` of them —
    a stand-in until real defects exist, said so in the warnings."""
    fit_samples, cal_samples = split_good(split.train, calibration_fraction, seed)
    if max_train is not None and len(fit_samples) > max_train:
        fit_samples = sorted(random.Random(seed).sample(fit_samples, max_train), key=lambda s: str(s.path))
    if not fit_samples:
        raise ValueError(f"{split.name}: no good images left to fit on")
    if not cal_samples:
        raise ValueError(
            f"{split.name}: no good images held out for calibration "
            f"(calibration_fraction={calibration_fraction}, {len(split.train)} good images)"
        )
    defects: list[np.ndarray] = []
    source, note = "labelled", ""
    if split.calibration_defects:
        defects = list(iter_images(split.calibration_defects))
    elif synthetic_defects > 0:
        from lineguard.augment import synthetic_defect_set

        defects, _ = synthetic_defect_set(list(iter_images(cal_samples)), synthetic_defects, seed=seed)
        source = "synthetic" if defects else "labelled"
        if defects and review_on_synthetic:
            note = (
                f"the REVIEW band was set on {len(defects)} synthetic defects (CutPaste, scar, Perlin), not "
                "on real ones; confirm the thresholds on real defects as soon as there are some"
            )
        elif defects:
            note = (
                f"the expected escapes come from {len(defects)} synthetic defects (CutPaste, scar, Perlin), "
                "which are easier than real ones: on the benchmark protocol, real defects escaped "
                "3.5-5.5x as often; hold out real defects to measure it"
            )
    held_out = CalibrationSet(
        iter_images(cal_samples),
        len(cal_samples),
        defects,
        defect_source=source,
        widen=source == "labelled" or review_on_synthetic,
        target_frr=target_frr,
        review_rate=review_rate,
        target_sensitivity=target_sensitivity,
        note=note,
    )
    model.fit(iter_images(fit_samples), total=len(fit_samples), progress=progress, calibration=held_out)
    n_synthetic = len(defects) if source == "synthetic" else 0
    model.metadata.update(
        {
            "dataset": split.name,
            "dataset_notes": list(split.notes),
            "split": split_info or {},
            "n_fit_images": len(fit_samples),
            "n_calibration_good": len(cal_samples),
            "n_calibration_defect": len(split.calibration_defects),
            "n_calibration_synthetic": n_synthetic,
            "training_fingerprint": fingerprint(fit_samples),
            # Content digests let `evaluate` leave out the images the model has seen, wherever
            # the dataset lies by then.
            "seen_sha256": content_digests(
                s.path for s in (*fit_samples, *cal_samples, *split.calibration_defects)
            ),
            # The held-out good parts the thresholds came from (INT8 export maps its scores on them).
            "calibration_sha256": content_digests(s.path for s in cal_samples),
        }
    )
    return model


class Candidate(NamedTuple):
    """One configuration ``fit`` may try: model kind, backbone, network input (H, W)."""

    model: str
    backbone: str
    image_size: tuple[int, int]


def candidate_configs(
    split: DataSplit,
    backbone: str = "auto",
    image_size: tuple[int, int] | None = None,
    *,
    model: str = "auto",
    select: bool = True,
    synthetic_defects: int = 0,
) -> list[Candidate]:
    """Configurations to fit; the first is the default, the rest only when they can be ranked.

    "auto" model / backbone / ``None`` size mean the first of ``AUTO_MODELS``, ``AUTO_BACKBONES`` and
    ``AUTO_SHORT_SIDES`` unless candidates can be ranked:
    - with at least ``MIN_SELECTION_DEFECTS`` labelled defects kept for calibration: the default model
      on every auto backbone x short side, and each other auto model on the default backbone and size;
    - without labelled defects, with at least that many ``synthetic_defects``: each auto model on the
      default backbone and size (the multi-dataset protocol measured the synthetic ranking over
      model kinds, not over backbones).
    A model, backbone or size given explicitly is kept as given.
    """
    labelled = len(split.calibration_defects) >= MIN_SELECTION_DEFECTS
    synthetic = not split.calibration_defects and synthetic_defects >= MIN_SELECTION_DEFECTS
    ranked = select and (labelled or synthetic)
    models = AUTO_MODELS if model == "auto" else (model,)
    backbones = AUTO_BACKBONES if backbone == "auto" else (backbone,)
    if image_size is not None:
        sizes = [image_size]
    else:
        short_sides = AUTO_SHORT_SIDES if ranked and labelled else AUTO_SHORT_SIDES[:1]
        sizes = list(dict.fromkeys(auto_image_size(split.train, side) for side in short_sides))
    default = Candidate(models[0], backbones[0], sizes[0])
    if not ranked:
        return [default]
    if labelled:
        first = [Candidate(models[0], name, size) for size in sizes for name in backbones]
    else:
        first = [default]
    return first + [Candidate(other, backbones[0], sizes[0]) for other in models[1:]]


def _options_taken(kind: str) -> set[str]:
    """Keyword options ``MODELS[kind]`` accepts: its own and those of every class it builds on."""
    names: set[str] = set()
    for cls in MODELS[kind].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.kind is param.KEYWORD_ONLY:
                names.add(name)
    return names


def build_candidate(candidate: Candidate, **options: Any) -> AnomalyModel:
    """The candidate's model, built with the options that its model kind takes.

    One option set serves every candidate: options only another kind takes (PatchCore's memory-bank
    settings when the candidate is PaDiM) are left out; an option no model takes is an error, so a
    misspelt one is not silently dropped.
    """
    taken = _options_taken(candidate.model)
    known = set().union(*(_options_taken(kind) for kind in MODELS))
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown anomaly-model option(s): {', '.join(unknown)}")
    own = {k: v for k, v in options.items() if k in taken}
    return MODELS[candidate.model](candidate.backbone, candidate.image_size, **own)


def select_anomaly_model(
    build: Callable[[Candidate], AnomalyModel],
    candidates: Sequence[Candidate],
    split: DataSplit,
    *,
    report: Callable[[dict[str, Any]], None] | None = None,
    **fit_options: Any,
) -> AnomalyModel:
    """Fit each candidate as ``fit_anomaly_model`` does and keep the best validation image AUROC.

    Validation = the held-out good parts + the labelled calibration defects (without them, the
    synthetic defects ``fit_options["synthetic_defects"]`` asks for); the test split is never looked
    at. Ties keep the earlier (default-first) candidate. Every trial is recorded in the kept model's
    ``metadata["selection"]`` so the choice can be audited.
    """
    if not candidates:
        raise ValueError("no candidate configurations to fit")
    if len(candidates) == 1:
        return fit_anomaly_model(build(candidates[0]), split, **fit_options)
    if not split.calibration_defects and not fit_options.get("synthetic_defects"):
        raise ValueError(
            f"{split.name}: choosing among candidates needs labelled calibration defects or synthetic ones"
        )
    best: AnomalyModel | None = None
    best_auroc = -1.0
    trials = []
    for candidate in candidates:
        model = fit_anomaly_model(build(candidate), split, **fit_options)
        auroc = model.metadata["validation"]["image_auroc"]
        trial = {
            "model": candidate.model,
            "backbone": candidate.backbone,
            "image_size": [int(candidate.image_size[0]), int(candidate.image_size[1])],
            "validation_auroc": auroc,
            "fit_seconds": model.metadata.get("fit_seconds"),
        }
        trials.append(trial)
        if report is not None:
            report(trial)
        if auroc > best_auroc:
            best, best_auroc = model, auroc
    assert best is not None
    best.metadata["selection"] = {
        "criterion": "validation image AUROC (held-out good parts vs "
        f"{best.metadata['validation']['defects']} calibration defects)",
        "trials": trials,
    }
    return best


def train_anomaly(
    data: str | Path,
    format: str,
    out: Path,
    config: AnomalyConfig,
    *,
    resume: bool,
    hooks: TrainingHooks,
    prepare: PreparedCheck | None = None,
) -> Trained:
    """``lineguard fit``: split the good images, fit the candidate(s) the config allows, keep the
    one that validates best, calibrate its thresholds, save it to ``out``."""
    from lineguard.data import open_dataset

    if resume:
        raise ValueError("an anomaly model is fitted in one pass and keeps no checkpoint: fit it again")
    c = config
    split = open_dataset(data, format, seed=c.seed, test_fraction=c.test_fraction, good_class=c.good_class)
    if prepare is not None:  # split first, as evaluate re-creates it; then the check's crop
        hooks.tell(f"preparing every image as check {prepare.record['check']} does")
        split = prepare.split(split, progress=hooks.progress)
    options: dict[str, Any] = {"top_fraction": c.top_fraction or None}
    tiles = ""
    if c.tile_size is None:
        candidates = candidate_configs(
            split,
            c.backbone,
            c.image_size,
            model=c.model,
            select=c.select,
            synthetic_defects=c.synthetic_defects,
        )
    else:
        from lineguard.preprocess import Tiling

        height, width = c.image_size or native_size(split.train)
        overlap = c.tile_overlap if c.tile_overlap is not None else min(c.tile_size) // 8
        options["tiling"] = tiling = Tiling(height, width, *c.tile_size, overlap)
        tiles = f" in {len(tiling.origins)} tiles"
        candidates = candidate_configs(split, c.backbone, c.tile_size, model="patchcore", select=False)
    if len(candidates) == 1:
        ((kind, name, image_size),) = candidates
        hooks.tell(
            f"{split.name}: {len(split.train)} good training images, input "
            f"{image_size[1]}x{image_size[0]}{tiles}, {kind} on {name}"
        )
    else:
        evidence = (
            f"{len(split.calibration_defects)} labelled"
            if split.calibration_defects
            else f"{c.synthetic_defects} synthetic"
        )
        hooks.tell(
            f"{split.name}: {len(split.train)} good training images; choosing among "
            f"{len(candidates)} model x backbone x input candidates on {evidence} validation defects "
            "(--no-select skips this)"
        )

    def build(candidate: Candidate) -> AnomalyModel:
        return build_candidate(
            candidate,
            seed=c.seed,
            device=c.device,
            coreset_ratio=c.coreset_ratio,
            reweight_neighbours=c.reweight_neighbours,
            **options,
        )

    model = select_anomaly_model(
        build,
        candidates,
        split,
        report=hooks.on_trial,
        calibration_fraction=c.calibration_fraction,
        target_frr=c.target_frr,
        review_rate=c.review_rate,
        target_sensitivity=c.target_sensitivity,
        max_train=c.max_train,
        seed=c.seed,
        progress=hooks.progress,
        synthetic_defects=c.synthetic_defects,
        review_on_synthetic=c.review_on_synthetic,
        split_info={
            "format": format,
            "seed": c.seed,
            "test_fraction": c.test_fraction,
            "good_class": c.good_class,
        },
    )
    if len(candidates) > 1:
        hooks.tell(f"kept {model.kind} {model.backbone} {model.image_size[1]}x{model.image_size[0]}")
    model.metadata["training_config"] = config.model_dump(mode="json")
    if prepare is not None:
        model.metadata["check_from"] = prepare.record
    model.save(out)
    return Trained(model, split)
