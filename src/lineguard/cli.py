"""`lineguard` command line: fit, evaluate, predict, read, measure, export, calibrate, run, backbones."""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from lineguard.errors import LineGuardError
from lineguard.train.config import (
    CONFIGS,
    AnomalyConfig,
    ClassifyConfig,
    DetectConfig,
    SegmentConfig,
    TrainingConfig,
    default,
)

app = typer.Typer(
    help="LineGuard: learn good parts, score new ones, decide OK / REVIEW / NG.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class DataFormat(StrEnum):
    mvtec = "mvtec"
    folder = "folder"
    kolektor = "kolektor"
    elpv = "elpv"


class LabelFormat(StrEnum):
    folder = "folder"
    voc = "voc"
    coco = "coco"
    yolo = "yolo"
    mvtec = "mvtec"
    kolektor = "kolektor"


class AnyFormat(StrEnum):
    mvtec = "mvtec"
    folder = "folder"
    kolektor = "kolektor"
    elpv = "elpv"
    voc = "voc"
    coco = "coco"
    yolo = "yolo"


class Task(StrEnum):
    classify = "classify"
    detect = "detect"
    segment = "segment"


# What `evaluate` needs beyond the line PC's install (the `eval` extra).
EVAL_MODULES = ("sklearn", "scipy", "matplotlib", "pycocotools")
EVAL_HINT = "pip install 'lineguard[eval]'"


class ModelKind(StrEnum):
    auto = "auto"
    patchcore = "patchcore"
    padim = "padim"


def parse_size(text: str) -> tuple[int, int] | None:
    """'auto', '256' (square) or 'WIDTHxHEIGHT' -> (height, width)."""
    if text == "auto":
        return None
    try:
        if "x" in text:
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use auto, N or WIDTHxHEIGHT (e.g. 208x512)") from None
    if min(w, h) < 32 or max(w, h) > 4096:
        raise typer.BadParameter(f"{text!r}: each side must be within 32..4096 pixels")
    return h, w


# Exit codes, one per kind of outcome (README, "Exit codes").
EXIT_OK = 0
EXIT_PARTS_FAILED = 1  # ran, but some part could not be inspected, or the station stopped on a fault
EXIT_REFUSED = 2  # bad input or configuration, refused before any work (the message names it)
EXIT_INTERRUPTED = 130  # Ctrl-C outside a station run (a station decides its parts in flight first)
EXIT_INTERNAL = 70  # a bug: the message says so; LINEGUARD_DEBUG=1 shows the traceback


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(EXIT_REFUSED)


def _threads(n: int | None) -> None:
    """PyTorch's thread count; only called on paths that run PyTorch models."""
    if n:
        import torch

        torch.set_num_threads(n)


# Options named differently on the command line than in the configs.
OPTION_NAMES = {"image_size": "--size", "tile_size": "--tile", "good_classes": "--good-class"}


def _option(name: str) -> str:
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


def _per_task(name: str) -> str:
    """A supervised setting's default for each task, for the help text (the configs hold them)."""

    def shown(value) -> str:
        if value is None:
            return "auto"
        return "x".join(map(str, value[::-1])) if isinstance(value, tuple) else f"{value:g}"

    return ", ".join(
        f"{c.task} {shown(default(c, name))}" for c in (ClassifyConfig, DetectConfig, SegmentConfig)
    )


def _config(kind: type[TrainingConfig], **options) -> TrainingConfig:
    """The task's config from the command line's options; a bad one is refused naming the option."""
    from pydantic import ValidationError

    try:
        return kind(**options)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            inner = ".".join(str(p) for p in error["loc"][1:])
            if error["type"] == "extra_forbidden" and inner:
                problems.append(f"{_option(name)}: unknown key {inner!r}")
            elif error["type"] == "extra_forbidden":
                tasks = [c.task for c in CONFIGS.values() if name in c.model_fields]
                problems.append(f"{_option(name)} applies to --task {' / '.join(tasks)} only")
            else:
                message = error["msg"].removeprefix("Value error, ")
                where = f"{_option(name)}{' ' + inner if inner else ''}: " if name else ""
                problems.append(f"{where}{message}")
        _fail(ValueError("; ".join(problems)))
        raise  # unreachable: _fail exits


def load_scorer(path: Path, threads: int | None = None):
    """A bundle (manifest.json) runs on ONNX Runtime; a model folder on PyTorch."""
    from lineguard.runtime import is_bundle, load_bundle

    if is_bundle(path):
        return load_bundle(path, threads=threads)
    from lineguard.models import load_model

    _threads(threads)
    return load_model(str(path))


def expected_costs(cal) -> str:
    """What the calibrated thresholds are expected to cost, from the calibration evidence alone."""
    text = f"false rejects below {cal.frr_upper_95:.1%} (95 % bound on {cal.n_good} good images)"
    if cal.expected_escape_rate is None:
        return text + "; escapes unknown (no defects to measure them on: see --synthetic-defects)"
    how = " (leave-one-out)" if cal.sensitivity_threshold is not None else ""
    return (
        f"{text}; {cal.expected_escape_rate:.1%} of {cal.n_defect} {cal.defect_source} defects pass as OK"
        f"{how}, {cal.expected_ng_rate:.1%} caught at NG"
    )


# fit and train: the station check whose crop the model is trained on
CheckFromOption = Annotated[
    str | None,
    typer.Option(
        metavar="STATION.yaml:RECIPE/CHECK",
        help="Train on the crop this station check prepares: its camera_calibration, align_to or "
        "fixture, and roi applied to every image (and mask, box) first. The model records the "
        "check; `evaluate` prepares its test images the same way.",
    ),
]


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Dataset folder ('elpv' for the installed ELPV sample).")],
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Dataset layout.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    model: Annotated[
        ModelKind,
        typer.Option(
            help="padim: one Gaussian per position, for fixtured/aligned parts; "
            "patchcore: position-free nearest neighbours, for parts that move; "
            "auto: padim, or whichever of the two validates better on held-out defects "
            "(labelled, or the --synthetic-defects) when --select applies."
        ),
    ] = ModelKind.auto,
    backbone: Annotated[
        str,
        typer.Option(
            help="Feature extractor (see `lineguard backbones`); auto: efficientnet_lite0, or the best "
            "of efficientnet_lite0/1/2 on validation when --select applies."
        ),
    ] = "auto",
    size: Annotated[
        str,
        typer.Option(
            help="Network input: auto (short side 256, aspect ratio kept; 256 or 192, whichever "
            "validates better, when --select applies), N, or WIDTHxHEIGHT."
        ),
    ] = "auto",
    select: Annotated[
        bool,
        typer.Option(
            help="With at least 10 labelled defects kept for calibration (kolektor: the training "
            "items' defects; mvtec: defect folders under train/), fit PaDiM on every auto backbone x "
            "size plus PatchCore; without them, with --synthetic-defects 10 or more, fit PaDiM and "
            "PatchCore; keep the best validation AUROC."
        ),
    ] = True,
    top_fraction: Annotated[
        float,
        typer.Option(
            help="Part score = mean of this share of the highest anomaly-map pixels; "
            "0 = the single highest patch score."
        ),
    ] = default(AnomalyConfig, "top_fraction"),
    tile: Annotated[
        str | None,
        typer.Option(
            help="Inspect in overlapping tiles of this network input size (N or WIDTHxHEIGHT); "
            "--size is then the whole part's working size (auto: its native size). PatchCore only."
        ),
    ] = None,
    tile_overlap: Annotated[
        int | None, typer.Option(help="Pixels neighbouring tiles share (default: an eighth of a tile).")
    ] = None,
    coreset_ratio: Annotated[
        float, typer.Option(help="PatchCore: share of patches kept in the memory bank.")
    ] = default(AnomalyConfig, "coreset_ratio"),
    reweight_neighbours: Annotated[
        int,
        typer.Option(
            min=0,
            help="PatchCore: re-weight the highest patch score over this many bank neighbours (the "
            "paper's image score, b = 9); needs --top-fraction 0. 0 = off.",
        ),
    ] = default(AnomalyConfig, "reweight_neighbours"),
    good_class: Annotated[
        str | None,
        typer.Option(help="mvtec/folder layouts: the folder of good parts; default: good/ok/pass/normal."),
    ] = None,
    calibration_fraction: Annotated[
        float, typer.Option(help="Share of good images held out to calibrate thresholds.")
    ] = default(AnomalyConfig, "calibration_fraction"),
    target_frr: Annotated[float, typer.Option(help="False-reject rate the NG threshold aims at.")] = default(
        AnomalyConfig, "target_frr"
    ),
    review_rate: Annotated[
        float, typer.Option(help="Extra share of good parts that may go to REVIEW.")
    ] = default(AnomalyConfig, "review_rate"),
    target_sensitivity: Annotated[
        float,
        typer.Option(
            help="Share of labelled defects the REVIEW threshold must catch (when defects are known)."
        ),
    ] = default(AnomalyConfig, "target_sensitivity"),
    synthetic_defects: Annotated[
        int,
        typer.Option(
            min=0,
            help="Without labelled defects: this many synthetic ones (CutPaste, scar, Perlin) made "
            "from the held-out good images choose the model (--select) and estimate the escapes; "
            "0 = none.",
        ),
    ] = default(AnomalyConfig, "synthetic_defects"),
    review_on_synthetic: Annotated[
        bool,
        typer.Option(
            help="Also widen the REVIEW band to catch --target-sensitivity of the synthetic defects "
            "(fewer escapes, many more good parts to review: see docs/benchmarks.md)."
        ),
    ] = False,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="Share of good images (items for kolektor) kept for testing; default per format."),
    ] = None,
    max_train: Annotated[
        int | None, typer.Option(help="Fit on at most this many good images (seeded sample).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, coreset and projections.")] = 0,
    check_from: CheckFromOption = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto.")] = "cpu",
) -> None:
    """Learn good parts from DATA, calibrate thresholds on held-out good parts, save to OUT."""
    from lineguard.train import TrainingHooks, train

    _threads(threads)
    config = _config(
        AnomalyConfig,
        model=model.value,
        backbone=backbone,
        image_size=parse_size(size),
        select=select,
        top_fraction=top_fraction,
        tile_size=(parse_size(tile) or (256, 256)) if tile is not None else None,
        tile_overlap=tile_overlap,
        coreset_ratio=coreset_ratio,
        reweight_neighbours=reweight_neighbours,
        good_class=good_class,
        calibration_fraction=calibration_fraction,
        target_frr=target_frr,
        review_rate=review_rate,
        target_sensitivity=target_sensitivity,
        synthetic_defects=synthetic_defects,
        review_on_synthetic=review_on_synthetic,
        test_fraction=test_fraction,
        max_train=max_train,
        seed=seed,
        device=device,
    )

    def report(trial: dict) -> None:
        h, w = trial["image_size"]
        typer.echo(
            f"  {trial['model']} {trial['backbone']} {w}x{h}: validation AUROC "
            f"{trial['validation_auroc']:.4f}",
            err=True,
        )

    hooks = TrainingHooks(say=lambda line: typer.echo(line, err=True), on_trial=report)
    try:
        prepare = _check_from(check_from)
        estimator = train("anomaly", data, format.value, out, config, hooks=hooks, prepare=prepare).model
    except (LineGuardError, ValueError) as exc:
        _fail(exc)
    cal = estimator.calibration
    assert cal is not None
    typer.echo(
        f"saved {out}  fit {estimator.metadata['fit_seconds']:.1f}s  "
        f"thresholds: REVIEW >= {cal.thresholds.review:.4g}, NG >= {cal.thresholds.ng:.4g} "
        f"({cal.n_good} good, {cal.n_defect} defect calibration images)"
    )
    typer.echo(f"expected at these thresholds: {expected_costs(cal)}")
    for warning in cal.warnings:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)


def _check_from(spec: str | None):
    """`--check-from STATION.yaml:recipe/check`: that check's preparation, read and validated."""
    if spec is None:
        return None
    from lineguard.station.preparation import PreparedCheck

    return PreparedCheck.from_station(spec)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Labelled dataset folder (or COCO .json for --format coco).")],
    format: Annotated[LabelFormat, typer.Option("--format", "-f", help="Label layout.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    task: Annotated[
        Task,
        typer.Option(
            help="classify (folder, voc, coco, yolo), detect (boxes: voc, coco, yolo) or segment "
            "(masks: mvtec, kolektor, folder)."
        ),
    ] = Task.classify,
    backbone: Annotated[str, typer.Option(help="Backbone name (see `lineguard backbones`).")] = default(
        ClassifyConfig, "backbone"
    ),
    size: Annotated[
        str,
        typer.Option(
            help="Network input: SIZE (square), WIDTHxHEIGHT, or auto (segment: short side 256, aspect "
            f"kept; {_per_task('image_size')})."
        ),
    ] = "auto",
    epochs: Annotated[int | None, typer.Option(min=1, help=f"Default: {_per_task('epochs')}.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=2, help=f"Default: {_per_task('batch_size')}.")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(min=0, help=f"Epochs without improvement before stopping ({_per_task('patience')})."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help=f"AdamW learning rate (cosine schedule); default: {_per_task('lr')}."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for the split, initialisation, shuffling and augmentation.")
    ] = default(ClassifyConfig, "seed"),
    val_fraction: Annotated[
        float | None,
        typer.Option(help=f"Held out for early stopping and calibration ({_per_task('val_fraction')})."),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(help=f"Held out for `lineguard evaluate` ({_per_task('test_fraction')})."),
    ] = None,
    augment: Annotated[
        Path | None, typer.Option(help="YAML mapping of augmentation settings (see docs/supervised.md).")
    ] = None,
    good_class: Annotated[
        list[str] | None, typer.Option(help="Class(es) that mean a good part; default: good/ok/pass/normal.")
    ] = None,
    synthetic: Annotated[
        int,
        typer.Option(
            min=0,
            help="segment: add this many synthetic defects (CutPaste, scar, Perlin, copy-paste) to training.",
        ),
    ] = default(SegmentConfig, "synthetic"),
    check_from: CheckFromOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint after an interruption.")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch.")] = None,
) -> None:
    """Train a supervised model by transfer learning, with early stopping and resumable checkpoints.

    The labelled images are split (stratified by class, items kept whole) into train / validation /
    test by the seed; the validation split stops training (and calibrates a classifier's
    confidences); `lineguard evaluate` later re-creates the test split from the seed in the model.
    A detector (FCOS on the backbone) stops on validation mAP@0.5; images without boxes train as
    good parts.
    """
    import yaml

    from lineguard.train import TrainingHooks
    from lineguard.train import train as train_task
    from lineguard.train.supervised import epoch_line, training_summary

    _threads(threads)
    try:
        settings = yaml.safe_load(augment.read_text()) if augment else None
    except (OSError, yaml.YAMLError) as exc:
        _fail(ValueError(f"--augment {augment}: {exc}"))
    given = {
        "backbone": backbone,
        "image_size": parse_size(size),
        "epochs": epochs,
        "batch_size": batch_size,
        "patience": patience,
        "lr": lr,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "augment": settings,
        "good_classes": tuple(good_class) if good_class else None,
        "synthetic": synthetic or None,
    }
    config = _config(CONFIGS[task.value], **{k: v for k, v in given.items() if v is not None})
    hooks = TrainingHooks(
        say=lambda line: typer.echo(line, err=True),
        on_epoch=lambda record: typer.echo(epoch_line(task.value, record)),
    )
    try:
        prepare = _check_from(check_from)
        trained = train_task(
            task.value, data, format.value, out, config, resume=resume, hooks=hooks, prepare=prepare
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"{training_summary(trained)}\nmodel: {out}")


@app.command()
def evaluate(
    model_path: Annotated[
        Path,
        typer.Argument(metavar="MODEL", help="Model folder from `lineguard fit` or `train`, or a bundle."),
    ],
    data: Annotated[Path, typer.Argument(help="Dataset folder ('elpv' for the installed sample).")],
    format: Annotated[AnyFormat, typer.Option("--format", "-f", help="Dataset layout.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (metrics.json + PNG plots).")],
    seed: Annotated[int | None, typer.Option(help="Split seed; default: the one used by fit.")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Default: the one used by fit.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch.")] = None,
) -> None:
    """Score the test split of DATA and write REPORT/metrics.json with plots.

    Anomaly models: AUROCs, AUPRO, ROC, histogram, heatmaps. Classifiers: accuracy, per-class
    precision / recall, confusion matrix, calibration (ECE, reliability diagram). Detectors:
    mAP@0.5 and mAP@0.5:0.95 (COCOeval), per-class AP and PR curves, overlays. Segmenters: image AP,
    mask IoU / F1, PR curve, overlays.
    """
    from lineguard.tasks import get_task

    try:
        # lineguard.evaluation needs the eval extra: imported where a missing one is explained.
        from lineguard.evaluation.result import EvaluationRequest

        estimator = load_scorer(model_path, threads)
        spec = get_task(estimator.task, model_path)
        spec.check_format(format.value)
        request = EvaluationRequest(data, format.value, out, seed, test_fraction)
        evaluation = spec.resolve("evaluator")(estimator, request)
    except (LineGuardError, ValueError) as exc:
        _fail(exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EVAL_MODULES:
            raise
        _fail(ValueError(f"evaluate needs {exc.name}, which the line PC's install leaves out: " + EVAL_HINT))
    typer.echo(f"{evaluation.summary}\nreport: {out / 'metrics.json'}")
    _say_escapes(evaluation.metrics)


def _say_escapes(metrics: dict) -> None:
    """The test split's decisions for defects, and a loud warning when too many pass as OK."""
    from lineguard.decision import MAX_EXPECTED_ESCAPE

    escape = metrics.get("escape_rate")  # anomaly evaluations measure it
    if escape is None:
        return
    bad, good = metrics["decisions"]["defect"], metrics["decisions"]["good"]
    typer.echo(
        f"defects: {bad['OK']} passed as OK (escape rate {escape:.1%}), {bad['REVIEW']} REVIEW, "
        f"{bad['NG']} NG; good parts: {good['REVIEW']} REVIEW, {good['NG']} NG"
    )
    if escape > MAX_EXPECTED_ESCAPE:
        typer.secho(
            f"warning: ESCAPES: {escape:.0%} of the test defects pass as OK at the calibrated thresholds "
            f"(more than {MAX_EXPECTED_ESCAPE:.0%}); do not run this model on a line as it is",
            fg="red",
            err=True,
        )


def _image_files(inputs: list[Path], recursive: bool = True) -> list[Path]:
    """The files named, and the images in the folders named (sorted), in the order given."""
    from lineguard.data.image_io import IMAGE_SUFFIXES, list_images

    files: list[Path] = []
    for item in inputs:
        if item.is_dir() and recursive:
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_dir():
            files += list_images(item)
        else:
            files.append(item)
    return files


def parse_roi(text: str | None, option: str = "--roi") -> tuple[int, int, int, int] | None:
    """'x,y,w,h' in pixels."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use x,y,width,height in pixels (e.g. 100,40,600,200)", param_hint=option
        ) from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise typer.BadParameter(f"{text!r}: x and y must be >= 0, width and height > 0", param_hint=option)
    return x, y, w, h


@app.command()
def predict(
    model_path: Annotated[
        Path,
        typer.Argument(metavar="MODEL", help="Model folder from `lineguard fit` or `train`, or a bundle."),
    ],
    inputs: Annotated[
        list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Images or folders of images.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch.")] = None,
) -> None:
    """Print one line per image: path, score, decision, threshold (classifiers: class and
    confidence; detectors: each box at or above the REVIEW threshold, with class and confidence).

    An image that cannot be read is reported as NG with the reason, never skipped,
    and the exit code is 1.
    """
    from lineguard.data.image_io import read_image

    try:
        estimator = load_scorer(model_path, threads)
    except LineGuardError as exc:
        _fail(exc)
    thresholds = estimator.thresholds
    if thresholds is None:
        _fail(ValueError(f"{model_path}: model has no calibrated thresholds"))
    failed = False
    for path in _image_files(inputs):
        record: dict[str, Any] = {
            "path": str(path),
            "threshold": thresholds.ng,
            "review_threshold": thresholds.review,
        }
        try:
            prediction = estimator.predict([read_image(path)])
            if isinstance(prediction, list):  # a detector: its boxes, the part scored by the top one
                found = prediction[0]
                record.update(
                    score=found.top_score,
                    decision=thresholds.decide(found.top_score).value,
                    # The boxes that move the decision (REVIEW or NG), not every low-score candidate.
                    detections=found.above(thresholds.review).to_list(estimator.classes),
                )
            else:
                score = float(prediction.scores[0])
                record.update(score=score, decision=thresholds.decide(score).value)
                if hasattr(prediction, "labels"):  # a classifier names the class too
                    label = int(prediction.labels[0])
                    record.update(
                        label=estimator.classes[label], confidence=float(prediction.probabilities[0, label])
                    )
        except LineGuardError as exc:
            failed = True
            record.update(score=None, decision="NG", error=str(exc))
        if as_json:
            typer.echo(json.dumps(record))
        else:
            score_text = "-" if record["score"] is None else f"{record['score']:.5g}"
            extra = f"  ({record['error']})" if "error" in record else ""
            if "label" in record:
                extra += f"\t{record['label']}\t{record['confidence']:.4f}"
            for found in record.get("detections", []):
                extra += f"\t{found['class']} {found['confidence']:.3f} {found['box_xyxy']}"
            typer.echo(f"{path}\t{score_text}\t{record['decision']}\t{thresholds.ng:.5g}{extra}")
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


class PrintKindOption(StrEnum):
    auto = "auto"
    dot_matrix = "dot_matrix"
    solid = "solid"


class EngineOption(StrEnum):
    auto = "auto"
    rapidocr = "rapidocr"
    tesseract = "tesseract"


class InkOption(StrEnum):
    dark = "dark"
    light = "light"


class MotionOption(StrEnum):
    translation = "translation"
    euclidean = "euclidean"


@app.command()
def read(
    inputs: Annotated[
        list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Images or folders of images.")
    ],
    expect: Annotated[
        str | None,
        typer.Option(
            help="Regular expression the whole text (its lines joined by one space) must match; "
            "{part_id} stands for the part's ID, taken literally."
        ),
    ] = None,
    roi: Annotated[
        str | None, typer.Option(help="Read only this region of each image: x,y,width,height in pixels.")
    ] = None,
    print_kind: Annotated[
        PrintKindOption,
        typer.Option("--print", help="dot_matrix joins separate dots into strokes; auto decides per image."),
    ] = PrintKindOption.auto,
    polarity: Annotated[InkOption, typer.Option(help="Print darker (dark) or lighter than its surface.")] = (
        InkOption.dark
    ),
    charset: Annotated[str | None, typer.Option(help="The characters the print may contain.")] = None,
    engine: Annotated[
        EngineOption,
        typer.Option(help="rapidocr, tesseract (Debian's tesseract-ocr), or auto: RapidOCR when installed."),
    ] = EngineOption.auto,
    part_id: Annotated[
        str | None,
        typer.Option(help="What {part_id} stands for; default: each file's name less its suffix."),
    ] = None,
    min_confidence: Annotated[
        float, typer.Option(help="With --expect: a reading less certain than this is REVIEW.", min=0, max=1)
    ] = 0.8,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads for the OCR models.", min=1)] = 1,
) -> None:
    """Read the printed text in each image: lot codes, dates, dot-matrix and inkjet print.

    Prints per image: path, the text (lines joined by one space), its mean confidence, and with
    --expect the decision a recipe's ocr check would make (OK / REVIEW / NG, with the reason).

    Exit code 1 when an image cannot be read, holds no text, or (with --expect) is not OK.
    """
    import numpy as np
    from pydantic import ValidationError

    from lineguard.data.image_io import read_image
    from lineguard.preprocess import crop_roi
    from lineguard.tools.checks import OcrTool
    from lineguard.tools.config import DEFAULT_CHARSET, OcrToolConfig
    from lineguard.tools.ocr import OcrUnavailable, TextReader

    box = parse_roi(roi)
    settings = {
        "print": print_kind.value,
        "polarity": polarity.value,
        "charset": DEFAULT_CHARSET if charset is None else charset,
        "engine": engine.value,
    }
    tool: OcrTool | None = None
    try:
        if expect is not None:
            config = OcrToolConfig(kind="ocr", expect=expect, min_confidence=min_confidence, **settings)
            tool = OcrTool(config, threads)
            reader = tool.reader
        else:
            reader = TextReader(**settings, threads=threads)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [
            f"--{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        _fail(ValueError("; ".join(problems)))
    except (OcrUnavailable, ValueError) as exc:
        _fail(exc)
    failed = False
    for path in _image_files(inputs):
        record: dict[str, Any] = {"path": str(path)}
        try:
            image = crop_roi(read_image(path), box)
            reading = reader.read(image)
        except (LineGuardError, ValueError) as exc:
            failed = True
            record.update(text=None, confidence=None, error=str(exc))
            if tool is not None:
                record.update(decision="NG", reason=str(exc))
        else:
            record.update(
                text=reading.text,
                confidence=round(reading.confidence, 4),
                lines=[
                    {
                        "text": line.text,
                        "confidence": round(line.confidence, 4),
                        "box": np.round(line.box, 1).tolist(),
                        "chars": [[c.char, round(c.confidence, 4)] for c in line.chars],
                    }
                    for line in reading.lines
                ],
            )
            failed |= not reading.text
            if tool is not None:
                result = tool.verify(reading, image, path.stem if part_id is None else part_id)
                decision = "NG" if result.decision is None else result.decision.value
                record.update(decision=decision, reason=result.reason)
                failed |= decision != "OK"
        if as_json:
            typer.echo(json.dumps(record))
        else:
            if record["text"] is None:
                line = f"{path}\t-\t-\t(cannot read: {record['error']})"
            else:
                line = f"{path}\t{record['text'] or '(no text found)'}\t{record['confidence']:.2f}"
            if tool is not None and record["text"] is not None:
                line += f"\t{record['decision']}" + (f" ({record['reason']})" if record["reason"] else "")
            typer.echo(line)
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


def _measurement_text(m) -> str:
    number = "-" if m.value is None else f"{m.value:.5g}"
    if m.text is None:
        value = f"{number} {m.unit}".rstrip()
    elif m.unit:  # a number with a label (a contrast and its grade)
        value = f"{number} {m.unit} ({m.text})"
    else:  # what was read
        value = m.text
    return f"{m.name}={value}" + (f" {m.decision}" if m.decision else "")


@app.command()
def measure(
    tool_file: Annotated[
        Path,
        typer.Argument(
            metavar="TOOL.yaml", help="A tool: the mapping a recipe check's `tool:` key holds (kind: ...)."
        ),
    ],
    inputs: Annotated[
        list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Images or folders of images.")
    ],
    roi: Annotated[
        str | None, typer.Option(help="The check's roi: x,y,width,height in pixels (tool coordinates).")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(help="The check's camera_calibration (`lineguard calibrate`): undistort, mm/px."),
    ] = None,
    align_to: Annotated[
        Path | None, typer.Option(help="The check's align_to: reference image each part is aligned to.")
    ] = None,
    align_motion: Annotated[MotionOption, typer.Option(help="The check's align_motion.")] = (
        MotionOption.translation
    ),
    fixture: Annotated[
        Path | None,
        typer.Option(
            help="The check's fixture: its reference image (with --pattern), instead of --align-to."
        ),
    ] = None,
    pattern: Annotated[
        str | None, typer.Option(help="The fixture's pattern: x,y,width,height on its reference image.")
    ] = None,
    angle_range: Annotated[
        float, typer.Option(help="The fixture's angle_range: the part turns up to ± this many degrees.")
    ] = 0.0,
    part_id: Annotated[
        str | None,
        typer.Option(help="The part ID an ocr tool's {part_id} stands for; default: the file's name."),
    ] = None,
    overlay: Annotated[
        Path | None, typer.Option(help="Write each image's overlay (what the tool found) to this folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads (the ocr tool's models).", min=1)] = 1,
) -> None:
    """Run a tool file (measure, blob, presence, ocr, code, color) on images, as a recipe check would.

    Undistort, align or follow the fixture, crop the ROI, judge, exactly as a check with these
    keys does. Prints per
    image the decision, each value with its unit and own decision, and the reason: tune the
    file here, then paste it under a check's `tool:` key.

    Exit code 1 when an image cannot be read or is not OK; 2 when the tool file is invalid.
    """
    import dataclasses

    import cv2

    from lineguard.data.image_io import read_image
    from lineguard.station.checks import CheckRunner
    from lineguard.station.config import ConfigError, load_tool_check

    if (fixture is None) != (pattern is None):
        _fail(ValueError("--fixture REFERENCE and --pattern x,y,w,h go together"))
    taught = None
    if fixture is not None:
        taught = {
            "reference": fixture,
            "pattern": parse_roi(pattern, "--pattern"),
            "angle_range": angle_range,
        }
    try:
        check = load_tool_check(
            tool_file,
            roi=parse_roi(roi),
            camera_calibration=calibration,
            align_to=align_to,
            align_motion=align_motion.value,
            fixture=taught,
        )
        runner = CheckRunner(check, threads=threads)
    except (ConfigError, LineGuardError) as exc:
        _fail(exc)
    if overlay is not None:
        overlay.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    failed = False
    for path in _image_files(inputs):
        record: dict[str, Any] = {"path": str(path)}
        try:
            image = read_image(path)
        except LineGuardError as exc:
            failed = True
            record.update(decision="NG", score=None, reason=f"cannot read: {exc}", measurements=[])
            run = None
        else:
            run = runner.run(image, path.stem if part_id is None else part_id)
            outcome = run.outcome
            decision = "NG" if outcome.decision is None else outcome.decision.value
            failed |= decision != "OK"
            record.update(
                decision=decision,
                score=outcome.score,
                reason=outcome.reason,
                measurements=[dataclasses.asdict(m) for m in run.measurements],
                timings_ms={k: round(v, 3) for k, v in run.timings_ms.items()},
            )
        if overlay is not None and run is not None and run.overlay is not None:
            name = path.stem
            while name in written:
                name += "_"
            written.add(name)
            target = overlay / f"{name}.png"
            cv2.imwrite(str(target), run.overlay[:, :, ::-1])
            record["overlay"] = str(target)
        if as_json:
            typer.echo(json.dumps(record))
        else:
            values = " ".join(_measurement_text(m) for m in run.measurements) if run else ""
            reason = f"\t({record['reason']})" if record["reason"] else ""
            typer.echo(f"{path}\t{record['decision']}\t{values}{reason}")
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


@app.command()
def export(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="Model folder from `lineguard fit` or `train`.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Bundle folder to write (a name ending in .zip: one zip).")
    ],
    search: Annotated[
        str,
        typer.Option(
            help="PatchCore nearest-neighbour search: graph (exact, in ONNX), "
            "faiss-flat (exact) or faiss-hnsw (approximate)."
        ),
    ] = "graph",
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantise the feature network to INT8, behind the accuracy guard.")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Dataset for --int8: its good training images calibrate, its test split validates."
        ),
    ] = None,
    format: Annotated[
        DataFormat | None, typer.Option("--format", "-f", help="Layout of the --calibration dataset.")
    ] = None,
    max_auroc_drop: Annotated[float, typer.Option(help="Guard: largest image-AUROC loss accepted.")] = 0.005,
    max_decision_change: Annotated[
        float, typer.Option(help="Guard: largest share of OK/REVIEW/NG decisions allowed to change.")
    ] = 0.005,
    calibration_images: Annotated[int, typer.Option(help="Good images used to calibrate INT8.")] = 100,
    threads: Annotated[int, typer.Option(help="CPU threads for the guard's speed measurement.")] = 1,
) -> None:
    """Export MODEL as a bundle: ONNX graph (normalisation, network, map, score) + manifest.json.

    The bundle runs with ONNX Runtime, numpy and OpenCV only (no PyTorch; faiss
    too for the faiss searches), and `evaluate` / `predict` accept it in place of
    the model. With --int8 the INT8 bundle is written only when it passes the
    guard on the --calibration dataset's test split; otherwise the fp32 bundle is
    written and the report says why (quantization_report.json in the bundle).
    """
    import shutil
    import tempfile

    from lineguard.bundle import export_bundle, quantize_bundle, zip_bundle
    from lineguard.models import load_model
    from lineguard.supervised.base import is_supervised_model

    if int8 and is_supervised_model(model_path):
        _fail(ValueError("--int8 quantises anomaly bundles; supervised models export in fp32"))
    if int8 and (calibration is None or format is None):
        _fail(ValueError("--int8 needs --calibration DATA and --format"))
    if not int8 and calibration is not None:
        _fail(ValueError("--calibration is only used with --int8"))
    zipped = out.suffix.lower() == ".zip"
    try:
        model = load_model(str(model_path))
        with tempfile.TemporaryDirectory() as tmp:
            staged = int8 or zipped  # written aside first, then quantised and/or zipped into `out`
            bundle = export_bundle(model, Path(tmp) / "fp32" if staged else out, search=search)
            if int8:
                assert calibration is not None and format is not None  # checked above
                bundle = Path(tmp) / "int8"
                cal, val, labels, score_images = _int8_sets(model, calibration, format, calibration_images)
                report = quantize_bundle(
                    Path(tmp) / "fp32",
                    bundle,
                    cal,
                    val,
                    labels,
                    score_images=score_images,
                    max_auroc_drop=max_auroc_drop,
                    max_decision_change=max_decision_change,
                    threads=threads,
                )
                typer.echo(report.summary())
            if zipped:
                zip_bundle(bundle, out)
            elif staged:
                if out.exists():
                    shutil.rmtree(out)
                shutil.copytree(bundle, out)
    except (LineGuardError, ValueError) as exc:
        _fail(exc)
    if zipped:
        typer.echo(f"bundle {out} ({out.stat().st_size / 1e6:.1f} MB, zip)")
    else:
        size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        typer.echo(f"bundle {out} ({size:.1f} MB): {', '.join(sorted(f.name for f in out.iterdir()))}")
    from lineguard.runtime.manifest import manifest_sha256

    typer.echo(f"manifest sha256 {manifest_sha256(out)} (a recipe check's bundle_sha256 pins it)")


def _int8_sets(model, data: Path, format: DataFormat, n_calibration: int):
    """INT8 calibration images (good training images, spread over the set), the guard's
    validation set (the test split, minus any image the model was fitted or calibrated on)
    and the threshold hold-out on which INT8 scores are mapped (None if not found in DATA)."""
    from lineguard.data.seen import SeenImages
    from lineguard.evaluation import split_as_fitted, unseen_test_samples
    from lineguard.train.fit import iter_images

    split = split_as_fitted(model.metadata, data, format.value)
    good = split.train[:: max(1, len(split.train) // n_calibration)][:n_calibration]
    test = unseen_test_samples(split, model.metadata)
    if not good or not test:
        raise ValueError(f"{data}: needs good training images and a test split for --int8")
    held_out = SeenImages.of(model.metadata, "calibration")
    scored = [s for s in split.train if s.path in held_out]
    score_images = list(iter_images(scored)) if len(scored) >= 2 else None
    return list(iter_images(good)), list(iter_images(test)), [int(s.label) for s in test], score_images


@app.command()
def calibrate(
    images: Annotated[
        list[Path], typer.Argument(metavar="IMAGE_OR_DIR...", help="Checkerboard views from one camera.")
    ],
    pattern: Annotated[str, typer.Option(help="Inner corners of the board, COLUMNSxROWS (e.g. 9x6).")],
    square_mm: Annotated[float, typer.Option(help="Side of one board square in mm.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write the calibration to.")],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="The view whose board lies in the inspection plane (sets mm/px); default: the first."
        ),
    ] = None,
) -> None:
    """Camera matrix, lens distortion and px -> mm scale from checkerboard images (OpenCV).

    Use 10-20 views with the board tilted and moved over the whole frame; the
    reference view should show the board where the parts are inspected.
    """
    from lineguard.data.image_io import read_image
    from lineguard.preprocess.camera import calibrate_camera

    try:
        cols, rows = (int(v) for v in pattern.lower().split("x"))
    except ValueError:
        _fail(ValueError(f"--pattern {pattern!r}: use COLUMNSxROWS of inner corners, e.g. 9x6"))
    files = _image_files(images, recursive=False)
    try:
        index = 0
        if reference is not None:
            if reference.resolve() not in [f.resolve() for f in files]:
                files.insert(0, reference)
            index = [f.resolve() for f in files].index(reference.resolve())
        views = [(str(f), read_image(f)) for f in files]
        cal = calibrate_camera(views, (cols, rows), square_mm, reference=index)
    except (LineGuardError, ValueError) as exc:
        _fail(exc)
    cal.save(out)
    m = cal.camera_matrix
    scale = "n/a" if cal.mm_per_px is None else f"{cal.mm_per_px:.5g} mm/px"
    typer.echo(
        f"board found in {len(cal.views)}/{len(files)} images | fx {m[0, 0]:.1f} fy {m[1, 1]:.1f} "
        f"cx {m[0, 2]:.1f} cy {m[1, 2]:.1f} px | reprojection RMS {cal.rms_px:.3f} px | {scale}\n"
        f"calibration: {out}"
    )


def _summary_line(station) -> str:
    s = station.status()
    c = s.counters
    p50 = "-" if s.latency_ms_p50 is None else f"{s.latency_ms_p50:.0f}"
    p99 = "-" if s.latency_ms_p99 is None else f"{s.latency_ms_p99:.0f}"
    line = (
        f"{s.state:8s} parts {c['parts']:6d} | OK {c['OK']} REVIEW {c['REVIEW']} NG {c['NG']} | "
        f"{s.parts_per_min_last_60s:.0f} parts/min | latency p50 {p50} p99 {p99} ms | "
        f"queue {s.queue_depth} overload {c['overload']} | record backlog {s.record_backlog} "
        f"({s.record_backlog_age_s:.1f} s) refused {c['refused_backlog']} | journal {s.journal_pending}"
    )
    if s.error:
        line += f" | ERROR: {s.error}"
    return line


@app.command()
def run(
    config_file: Annotated[Path, typer.Argument(metavar="STATION.yaml", help="The station configuration.")],
    max_parts: Annotated[int | None, typer.Option(help="Stop after deciding this many parts.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    api: Annotated[bool, typer.Option(help="Serve the REST API when the config has an api section.")] = True,
    quiet: Annotated[bool, typer.Option(help="No live summary, only the final one.")] = False,
) -> None:
    """Run an inspection station: images in, one OK / REVIEW / NG per part, recorded, then reported.

    Runs until its finite sources are done (a folder, a replay without loop), --max-parts or
    --duration is reached, or Ctrl-C / SIGTERM; parts in flight are decided before it stops.
    """
    import logging

    from lineguard.station import load_config, run_station

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(config_file)
        if api and config.api is not None:
            where = config.api.token_file or Path(config.state_dir) / "api-token"
            typer.echo(
                f"REST API: http://{config.api.host}:{config.api.port}/docs | bearer token: "
                f"${config.api.token_env} if set, else the file {where} (made on first start)"
            )
        station = run_station(
            config,
            max_parts=max_parts,
            duration_s=duration,
            on_tick=None if quiet else lambda st: typer.echo(_summary_line(st)),
            api=api,
        )
    except (LineGuardError, OSError, ValueError, KeyError) as exc:
        _fail(exc)
    typer.echo(_summary_line(station))
    counters = station.counters
    if counters["overload"] or counters["refused_backlog"]:
        # Parts failed without being inspected must not hide in the verdict counts.
        typer.secho(
            f"warning: {counters['overload']} checks were failed as overload (the inspection queue was "
            f"full: those parts are REVIEW/NG without inspection) and {counters['refused_backlog']} parts "
            "were refused at the source (the record fell behind); lower the line rate, add workers, "
            "or let the source wait (back-pressure)",
            fg="yellow",
            err=True,
        )
    state = Path(config.state_dir)
    typer.echo(
        f"record: {config.store.url or state / 'record.db'} | "
        f"images: {config.store.archive or state / 'images'}"
    )
    if station.state == "error":
        raise typer.Exit(1)


def _open_record(url: str):
    """The record at ``url``, checked reachable; a command's journal (never written: commands
    record no parts) lies in a folder of its own."""
    from lineguard.store import RecordStore

    store = RecordStore(url, Path(tempfile.mkdtemp(prefix="lineguard-read-")) / "journal.jsonl")
    store.verify()
    return store


def _record_period(record: str, station: str | None, since, until, archive: Path):
    """The record (opened to read), its one station or the named one, and the period; bad input
    (an unreachable record, an unknown station, a time range upside down) is a clear error."""
    from lineguard.store.summary import Period

    store = _open_record(record)
    stations = store.stations()
    if station is None:
        if len(stations) != 1:
            raise ValueError(f"the record holds stations {stations or 'none'}; name one with --station")
        station = stations[0]
    elif station not in stations:
        raise ValueError(f"no station {station!r} in the record; it holds {stations or 'none'}")
    if not archive.is_dir():
        raise ValueError(f"{archive}: no image archive there (the station's store.archive)")
    utc = [None if t is None else t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until)]
    return store, Period(station, *utc)


# The options every command reading a station's record shares.
RecordUrl = Annotated[
    str, typer.Argument(metavar="RECORD_URL", help="The station's record (SQLAlchemy URL).")
]
ArchiveOption = Annotated[
    Path,
    typer.Option("--archive", help="The station's image archive (its store.archive; default STATE/images)."),
]
SinceOption = Annotated[
    datetime | None, typer.Option("--since", help="Parts decided from (ISO 8601, UTC if no zone).")
]
UntilOption = Annotated[datetime | None, typer.Option("--until", help="Parts decided before.")]
StationOption = Annotated[
    str | None, typer.Option("--station", help="Which station; needed when the record holds several.")
]


class HarvestFormat(StrEnum):
    folder = "folder"
    mvtec = "mvtec"


@app.command()
def harvest(
    record: RecordUrl,
    out: Annotated[Path, typer.Option("--out", "-o", help="The dataset folder to write (new or empty).")],
    archive: ArchiveOption,
    station: StationOption = None,
    check: Annotated[
        str | None, typer.Option(help="Whose images; needed when parts have several checks.")
    ] = None,
    format: Annotated[
        HarvestFormat, typer.Option("--format", "-f", help="Dataset layout.")
    ] = HarvestFormat.folder,
    since: SinceOption = None,
    until: UntilOption = None,
    station_ok: Annotated[
        bool, typer.Option(help="Also the OK parts nobody reviewed whose images were kept, as good.")
    ] = True,
    test_fraction: Annotated[float, typer.Option(help="mvtec: good parts put in test/good.")] = 0.2,
) -> None:
    """Export reviewed parts (and kept OK parts) as a dataset `fit` and `train` read as it is.

    Each image is the check's archived crop, labelled by its latest review (good, or its defect
    class) or, for an unreviewed OK part, by the station. provenance.csv says, per image, the
    station, part uid, bundle sha256 and reviewer; harvest.json sums it up.
    """
    from lineguard.store import ImageArchive
    from lineguard.store.harvest import harvest as write_harvest

    try:
        store, period = _record_period(record, station, since, until, archive)
        labelled = store.labelled_parts(period.station, period.since, period.until, station_ok=station_ok)
        where = store.engine.url.render_as_string(hide_password=True)
        result = write_harvest(
            labelled, ImageArchive(archive), out, check, format.value, test_fraction, where, progress=True
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    counts = ", ".join(f"{n} {label}" for label, n in sorted(result.written.items()))
    typer.echo(f"harvested {counts} into {out} ({format.value} layout); provenance: {out / 'provenance.csv'}")
    for why, n in sorted(result.skipped.items()):
        typer.secho(f"left out: {n} parts, {why}", fg="yellow", err=True)


@app.command()
def compare(
    bundle_a: Annotated[Path, typer.Argument(metavar="BUNDLE_A", help="The deployed bundle.")],
    bundle_b: Annotated[Path, typer.Argument(metavar="BUNDLE_B", help="The candidate.")],
    data: Annotated[Path, typer.Argument(help="Labelled parts (e.g. a harvest).")],
    format: Annotated[DataFormat, typer.Option("--format", "-f", help="Dataset layout.")] = DataFormat.folder,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the comparison as JSON.")
    ] = None,
    show: Annotated[int, typer.Option(help="Changed parts to list.")] = 20,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads.")] = None,
) -> None:
    """Score both bundles on the same labelled parts: AUROC and, at each bundle's own thresholds,
    false-reject, review and escape rates, and the parts whose decision would change.

    Parts either bundle saw in training are left out (by content). Runs on ONNX Runtime.
    """
    from lineguard.data import open_dataset
    from lineguard.runtime import load_bundle

    try:
        from lineguard.evaluation.compare import compare_bundles

        a, b = (load_bundle(path, threads=threads) for path in (bundle_a, bundle_b))
        if a.task != b.task:
            raise ValueError(
                f"{bundle_a} is a {a.task} bundle, {bundle_b} a {b.task} one: compare like with like"
            )
        comparison = compare_bundles(a, b, open_dataset(data, format.value), progress=True)
    except (LineGuardError, ValueError) as exc:
        _fail(exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EVAL_MODULES:
            raise
        _fail(ValueError(f"compare needs {exc.name}, which the line PC's install leaves out: " + EVAL_HINT))

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    def auc(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    typer.echo(
        f"{comparison.data}: {comparison.n_good} good, {comparison.n_defect} defective parts"
        + (f" ({comparison.excluded_seen} left out: seen in training)" if comparison.excluded_seen else "")
    )
    typer.echo(f"{'':<4}{'AUROC':>8}{'false reject':>14}{'good->REVIEW':>14}{'escape':>10}  bundle")
    for name, score in (("A", comparison.a), ("B", comparison.b)):
        typer.echo(
            f"{name:<4}{auc(score.image_auroc):>8}{pct(score.false_reject_rate):>14}"
            f"{pct(score.good_to_review):>14}{pct(score.escape_rate):>10}  {score.bundle}"
        )
    typer.echo(f"{len(comparison.changed)} parts would change decision from A to B")
    for c in comparison.changed[:show]:
        kind = "defect" if c.defective else "good"
        typer.echo(f"  {c.file} ({kind}): {c.decision_a} {c.score_a:.4g} -> {c.decision_b} {c.score_b:.4g}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
        typer.echo(f"comparison: {out}")


@app.command()
def report(
    record: RecordUrl,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    archive: ArchiveOption,
    since: SinceOption = None,
    until: UntilOption = None,
    station: StationOption = None,
    subgroup: Annotated[int, typer.Option(min=2, help="Parts a control-chart subgroup (at least).")] = 25,
    worst: Annotated[int, typer.Option(min=0, max=50, help="Highest-scoring parts shown per check.")] = 6,
) -> None:
    """Write the shift report: one self-contained HTML file (opens with no network).

    Counts by verdict and recipe, Paretos of rejects, unjudged reasons and defect classes, control
    charts with the rules that fired, capability of measured features, drift alarms, the reviewers'
    escape and false-reject rates, and the highest-scoring parts with their heatmaps.
    """
    from lineguard.store import ImageArchive

    try:
        from lineguard.report import gather, render

        store, period = _record_period(record, station, since, until, archive)
        data = gather(store, ImageArchive(archive), period, size=subgroup, worst=worst, progress=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(data), encoding="utf-8")
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EVAL_MODULES:
            raise
        _fail(ValueError(f"report needs {exc.name}, which the line PC's install leaves out: " + EVAL_HINT))
    typer.echo(f"{data.counts.parts} parts of {period.station}: {out} ({out.stat().st_size / 1e6:.1f} MB)")


users_app = typer.Typer(help="People who log in, review and change recipes: users, roles, API tokens.")
audit_app = typer.Typer(help="The chained audit trail of every change people made.")
opcua_app = typer.Typer(help="The OPC UA server's trust list of client certificates.")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(opcua_app, name="opcua")
StationFile = Annotated[
    Path, typer.Argument(metavar="STATION.yaml", help="The station whose record holds them.")
]


def _station_record(config_file: Path):
    """The station's configuration and its record (the users, tokens and audit trail live there)."""
    from lineguard.station import load_config
    from lineguard.store import sqlite_url

    config = load_config(config_file)
    state = Path(config.state_dir)
    state.mkdir(parents=True, exist_ok=True)  # users may be added before the station first runs
    return config, _open_record(config.store.url or sqlite_url(state / "record.db"))


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def users_add(
    config_file: StationFile,
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="operator, engineer or admin.")] = "operator",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
) -> None:
    """Add a user (the password is asked for twice, or read from standard input)."""
    from lineguard.store.audit import record_change

    try:
        config, store = _station_record(config_file)
        user = store.add_user(name, role, _new_password(password_stdin))
        record_change(
            store,
            config.state_dir,
            config.station,
            _actor(),
            "user added",
            f"user {name}",
            None,
            {"role": role},
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"user {user.name} ({user.role}) added")


@users_app.command("list")
def users_list(config_file: StationFile) -> None:
    """The users, their roles and whether they are disabled."""
    try:
        _, store = _station_record(config_file)
        people = store.users()
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    for user in people:
        state = "disabled" if user.disabled else "enabled"
        typer.echo(f"{user.name}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d}")


@users_app.command("set")
def users_set(
    config_file: StationFile,
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str | None, typer.Option(help="A new role.")] = None,
    disable: Annotated[
        bool | None, typer.Option("--disable/--enable", help="Lock the user out, or let them in.")
    ] = None,
    password: Annotated[bool, typer.Option(help="Set a new password (asked for).")] = False,
    password_stdin: Annotated[bool, typer.Option(help="...read from standard input.")] = False,
) -> None:
    """Change a user's role, disable or enable them, or set a new password. Disabling also
    revokes their API tokens."""
    from lineguard.store.audit import record_change

    try:
        config, store = _station_record(config_file)
        before = next((u for u in store.users() if u.name == name), None)
        secret = _new_password(password_stdin) if password or password_stdin else None
        after = store.set_user(name, role=role, disabled=disable, password=secret)
        revoked = store.revoke_tokens(name) if disable else 0
        changes = {"role": after.role, "disabled": after.disabled, "password changed": secret is not None}
        previous = None if before is None else {"role": before.role, "disabled": before.disabled}
        record_change(
            store,
            config.state_dir,
            config.station,
            _actor(),
            "user changed",
            f"user {name}",
            previous,
            changes,
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(
        f"user {after.name}: {after.role}, {'disabled' if after.disabled else 'enabled'}"
        + (f"; {revoked} tokens revoked" if revoked else "")
    )


@users_app.command("token")
def users_token(
    config_file: StationFile,
    name: Annotated[str, typer.Argument(help="Whose token (an MES client can be a user of its own).")],
    label: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Issue an API token for a user: printed once, kept only as its digest. The REST API takes it
    as `Authorization: Bearer TOKEN` with the user's role."""
    from lineguard.store.audit import record_change

    try:
        config, store = _station_record(config_file)
        token = store.issue_token(name, label)
        record_change(
            store,
            config.state_dir,
            config.station,
            _actor(),
            "token issued",
            f"user {name}",
            None,
            {"label": label},
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(token)


@opcua_app.command("trust")
def opcua_trust(
    config_file: StationFile,
    certificate: Annotated[
        Path, typer.Argument(help="The client's certificate (DER or PEM), e.g. from STATE/opcua/rejected/.")
    ],
) -> None:
    """Let a client application (a PLC, SCADA, MES) open secure channels to the station."""
    from lineguard.sinks.opcua_trust import TrustList, describe, load_certificate
    from lineguard.store.audit import record_change

    try:
        config, store = _station_record(config_file)
        trust = TrustList(Path(config.state_dir) / "opcua")
        who = describe(load_certificate(certificate))
        target = trust.trust(certificate)
        record_change(
            store, config.state_dir, config.station, _actor(), "opcua client trusted", who, None, str(target)
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"trusted {who}: {target}")


@opcua_app.command("list")
def opcua_list(config_file: StationFile) -> None:
    """The trusted client certificates, and those refused so far."""
    from lineguard.sinks.opcua_trust import describe, load_certificate
    from lineguard.station import load_config

    try:
        folder = Path(load_config(config_file).state_dir) / "opcua"
        for kind in ("trusted", "rejected"):
            for path in sorted((folder / kind).glob("*")):
                typer.echo(f"{kind}\t{describe(load_certificate(path))}\t{path}")
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)


@audit_app.command("verify")
def audit_verify(config_file: StationFile) -> None:
    """Check the audit trail: every entry's hash, its link to the one before, no gaps, and that it
    still reaches the head kept in the station's state folder. Exit 1 when it does not."""
    from lineguard.store.audit import HEAD_FILE, check_head

    try:
        config, store = _station_record(config_file)
        found = store.verify_audit()
        head = check_head(
            found,
            lambda seq: next(iter(store.audit_entries(seq - 1, 1)), None),
            Path(config.state_dir) / HEAD_FILE,
        )
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    if not found.intact or head:
        typer.secho(f"audit trail NOT intact: {found.why or head}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {found.entries} entries, head {found.head[:16]}…")


@audit_app.command("export")
def audit_export(
    config_file: StationFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="The CSV file to write.")],
) -> None:
    """Write the audit trail as CSV (seq, at, station, actor, action, target, before, after, hashes)."""
    import csv

    from lineguard.store.audit import AuditEntry

    try:
        _, store = _station_record(config_file)
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, list(AuditEntry.__dataclass_fields__))
            writer.writeheader()
            after, written = 0, 0
            while batch := store.audit_entries(after, 1000):
                for entry in batch:
                    writer.writerow(entry.__dict__)
                written += len(batch)
                after = batch[-1].seq
    except (LineGuardError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"{written} audit entries: {out}")


@app.command()
def backbones() -> None:
    """List the registered feature extractors and where their weights come from."""
    from lineguard.backbones import available_backbones

    for name, spec in sorted(available_backbones().items()):
        where = "offline" if spec.offline else "hub"
        typer.echo(f"{name:22s} {where:8s} {spec.source}")
    typer.echo(f"{'timm:<name>':22s} {'hub':8s} any timm model with stride-8 and stride-16 stages")


def main() -> None:
    """The `lineguard` command: known failures are clear one-line messages with their own exit
    code; no traceback reaches a user unless LINEGUARD_DEBUG is set."""
    import os

    try:
        app()
    except LineGuardError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_REFUSED)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except MemoryError:
        typer.secho("error: out of memory", fg="red", err=True)
        sys.exit(EXIT_INTERNAL)
    except Exception as exc:
        if os.environ.get("LINEGUARD_DEBUG"):
            raise
        typer.secho(
            f"internal error: {type(exc).__name__}: {exc} (a bug in LineGuard; LINEGUARD_DEBUG=1 shows "
            "where)",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
