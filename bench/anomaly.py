"""Anomaly-detection benchmark: fit + evaluate on real data, table to docs/benchmarks.md.

Each configuration runs in its own process so peak memory is its own.

    python bench/anomaly.py                 # everything (about 30 min on 2 cores)
    python bench/anomaly.py --only kolektor # one dataset
    python bench/anomaly.py --only defaults # `fit`'s defaults on every visible dataset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"

# (name, dataset format, data path, model, backbone, extra fit options, seeds)
SUITES = {
    "kolektor": [
        # The defaults: `lineguard fit` with no options (PaDiM, backbone and size chosen on validation).
        ("KolektorSDD", "kolektor", str(SHARED / "kolektorsdd"), "auto", "auto", {}, (0, 1, 2)),
        (
            "KolektorSDD, no selection",
            "kolektor",
            str(SHARED / "kolektorsdd"),
            "padim",
            "efficientnet_lite0",
            {"select": False},
            (0, 1, 2),
        ),
        (
            "KolektorSDD, no selection",
            "kolektor",
            str(SHARED / "kolektorsdd"),
            "patchcore",
            "efficientnet_lite0",
            {"select": False},
            (0, 1, 2),
        ),
        (
            "KolektorSDD, no selection, max score",
            "kolektor",
            str(SHARED / "kolektorsdd"),
            "padim",
            "efficientnet_lite0",
            {"select": False, "top_fraction": None},
            (0, 1, 2),
        ),
    ],
    # Full resolution (about 500x1250): 256x256 tiles overlapping by 32 px, merged into one map.
    # 18 tiles a part give 10x the patches, so the coreset keeps 0.2 % to hold the bank near 7k.
    "kolektor-tiles": [
        (
            "KolektorSDD full-res, 256 tiles, coreset 0.2 %",
            "kolektor",
            str(SHARED / "kolektorsdd"),
            "patchcore",
            "efficientnet_lite0",
            {"tiles": [256, 256, 32], "coreset_ratio": 0.002},
            (0,),
        ),
    ],
    # Every visible dataset of bench/anomaly_protocol.py through `lineguard fit`'s defaults.
    "defaults": [
        ("KolektorSDD", "kolektor", str(SHARED / "kolektorsdd"), "auto", "auto", {}, (0, 1, 2)),
        ("ELPV", "elpv", "elpv", "auto", "auto", {}, (0,)),
        ("dobot-cubes", "folder", str(SHARED / "dobot-cubes"), "auto", "auto", {}, (0,)),
        ("hazelnut-subset", "mvtec", str(SHARED / "hazelnut-subset" / "Hazelnut"), "auto", "auto", {}, (0,)),
        ("casting-impellers", "mvtec", str(SHARED / "casting-impellers"), "auto", "auto", {}, (0,)),
    ],
    "elpv": [
        ("ELPV", "elpv", "elpv", "auto", "auto", {}, (0,)),
        ("ELPV", "elpv", "elpv", "patchcore", "efficientnet_lite0", {}, (0,)),
    ],
}


def print_epoch(record: dict) -> None:
    """A supervised bench's training progress: one JSON line per epoch on stderr."""
    print(json.dumps(record), file=sys.stderr, flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def run_one(spec: dict) -> dict:
    """Fit + evaluate one configuration in this process; returns the measurements."""
    import torch

    from lineguard.data import open_dataset
    from lineguard.evaluation import evaluate_anomaly_model
    from lineguard.models import MODELS
    from lineguard.train import build_candidate, candidate_configs, select_anomaly_model
    from lineguard.train.config import SYNTHETIC_DEFECTS

    torch.set_num_threads(spec["threads"])
    split = open_dataset(spec["data"], spec["format"], seed=spec["seed"])
    if spec.get("fit_only"):
        from lineguard.train.fit import iter_images

        samples = split.train[: spec["n_images"]]
        size = tuple(spec["size"])
        model = MODELS[spec["model"]](spec["backbone"], size, seed=0)
        start = time.perf_counter()
        model.fit(iter_images(samples), total=len(samples))
        return {
            "fit_seconds": time.perf_counter() - start,
            "n_images": len(samples),
            "size": list(size),
            **model.metadata,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    if spec.get("fit_step"):
        # What `lineguard fit DATA` does by default, end to end: fit both auto models, score them on
        # synthetic defects, keep one, calibrate. n_images good parts fitted, a quarter more held out.
        import dataclasses

        n_fit = spec["n_images"]
        split = dataclasses.replace(split, train=split.train[: n_fit + n_fit // 4], calibration_defects=())
        candidates = candidate_configs(
            split, "auto", tuple(spec["size"]), synthetic_defects=SYNTHETIC_DEFECTS
        )
        start = time.perf_counter()
        model = select_anomaly_model(
            lambda c: build_candidate(c, seed=0),
            candidates,
            split,
            calibration_fraction=0.2,
            synthetic_defects=SYNTHETIC_DEFECTS,
        )
        return {
            "fit_seconds": time.perf_counter() - start,
            "n_images": model.metadata["n_fit_images"],
            "model": model.kind,
            "trials": [[t["model"], t["fit_seconds"]] for t in model.metadata["selection"]["trials"]],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    options = dict(spec["options"])
    select = options.pop("select", True)
    synthetic = options.pop("synthetic_defects", SYNTHETIC_DEFECTS)
    if "tiles" in options:
        from lineguard.preprocess import Tiling
        from lineguard.train.fit import native_size

        th, tw, overlap = options.pop("tiles")
        options["tiling"] = Tiling(*native_size(split.train), th, tw, overlap)
        candidates = candidate_configs(split, spec["backbone"], (th, tw), model=spec["model"], select=False)
    else:
        size = tuple(spec["size"]) if spec.get("size") else None
        candidates = candidate_configs(
            split,
            spec["backbone"],
            size,
            model=spec["model"],
            select=select,
            synthetic_defects=synthetic,
        )

    def build(candidate):
        return build_candidate(candidate, seed=spec["seed"], **options)

    start = time.perf_counter()
    model = select_anomaly_model(build, candidates, split, seed=spec["seed"], synthetic_defects=synthetic)
    fit_total = time.perf_counter() - start
    metrics = evaluate_anomaly_model(model, split)
    return {
        "image_auroc": metrics["image_auroc"],
        "pixel_auroc": metrics["pixel_auroc"],
        "aupro": metrics["aupro"],
        "n_good": metrics["n_good"],
        "n_defect": metrics["n_defect"],
        "false_reject_rate": metrics["false_reject_rate"],
        "sensitivity": metrics["sensitivity"],
        "escape_rate": metrics["escape_rate"],
        "fit_seconds": model.metadata["fit_seconds"],
        "fit_and_calibrate_seconds": fit_total,
        "ms_per_image": metrics["ms_per_image"],
        "size": [model.tiling.height, model.tiling.width] if model.tiling else list(model.image_size),
        "backbone": model.backbone,
        "model": model.kind,
        "selection": model.metadata.get("selection"),
        "n_fit_images": model.metadata["n_fit_images"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def spawn(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{spec}: failed\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _trial_name(trial: dict) -> str:
    height, width = trial["image_size"]
    return (
        f"{trial.get('model', '')} {trial['backbone'].replace('efficientnet_', '')} {width}x{height}".strip()
    )


def fmt(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=[*SUITES, "fit-time"], action="append")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return

    chosen = args.only or [*SUITES, "fit-time"]
    only = " --only " + " --only ".join(chosen) if args.only else ""
    lines = [
        f"## Anomaly detection (`bench/anomaly.py{only}`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}, {args.threads} PyTorch threads, "
        f"command: `python bench/anomaly.py --threads {args.threads}{only}`.",
        "",
        "Each row: fit on good training images, calibrate thresholds on a held-out 20 % of them, "
        "evaluate on the test split (never seen in fitting). KolektorSDD splits by item (kosNN), "
        "a third of the 50 items for testing, three seeds = three different item splits; "
        "ELPV: 30 % of good cells + every cell rated defect probability >= 0.5 for testing; "
        "dobot-cubes: 20 % of the normal cubes + every abnormal one; hazelnut-subset and "
        "casting-impellers: their own test split. "
        "Pixel metrics are computed at the anomaly map's resolution; AUPRO is integrated to FPR 0.3 "
        "and normalised (MVTec AD convention). ms/img = model time per part in evaluation "
        "(batches of 8, preprocessing included). FRR and sensitivity at the calibrated NG threshold; "
        "escape = test defects decided OK (below REVIEW). "
        "fit s = the kept model's fit; fit step s = the whole fit step: every candidate tried, "
        "and scoring the calibration images.",
        "",
        "| data | model | backbone | input WxH | seed | good/defect | image AUROC | pixel AUROC | AUPRO "
        "| FRR | sensitivity | escape | fit s | fit step s | ms/img | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, list[dict]] = {}
    selections: list[tuple[str, int, dict, tuple[str, list[int]]]] = []
    for suite in chosen:
        if suite == "fit-time":
            continue
        for name, fmt_, data, model, backbone, options, seeds in SUITES[suite]:
            if fmt_ != "elpv" and not Path(data).is_dir():
                print(f"skip {name}: {data} absent", file=sys.stderr)
                continue
            for seed in seeds:
                spec = {
                    "format": fmt_,
                    "data": data,
                    "model": model,
                    "backbone": backbone,
                    "options": options,
                    "seed": seed,
                    "threads": args.threads,
                }
                print(f"running {name} {model} {backbone} seed {seed} ...", file=sys.stderr, flush=True)
                r = spawn(spec)
                summary.setdefault(f"{name} | {model} | {backbone}", []).append(r)
                used = r["backbone"] if r["backbone"] == backbone else f"{backbone}: {r['backbone']}"
                kind = r["model"] if r["model"] == model else f"{model}: {r['model']}"
                if r["selection"]:
                    kept = (r["model"], r["backbone"], r["size"])
                    selections.append((f"{name} | {model}", seed, r["selection"], kept))
                lines.append(
                    f"| {name} | {kind} | {used} | {r['size'][1]}x{r['size'][0]} | {seed} "
                    f"| {r['n_good']}/{r['n_defect']} | {fmt(r['image_auroc'])} | {fmt(r['pixel_auroc'])} "
                    f"| {fmt(r['aupro'])} | {fmt(r['false_reject_rate'])} | {fmt(r['sensitivity'])} "
                    f"| {fmt(r['escape_rate'])} "
                    f"| {r['fit_seconds']:.1f} | {r['fit_and_calibrate_seconds']:.1f} "
                    f"| {r['ms_per_image']:.1f} | {r['peak_rss_mb']:.0f} |"
                )
    if summary:
        lines += [
            "",
            "Mean over seeds:",
            "",
            "| data | model | backbone (splits) | image AUROC | pixel AUROC | AUPRO |",
            "|---|---|---|---|---|---|",
        ]
        for key, runs in summary.items():

            def mean(field, runs=runs):
                vals = [r[field] for r in runs if r[field] is not None]
                return sum(vals) / len(vals) if vals else None

            lines.append(
                f"| {key} ({len(runs)} splits) | {fmt(mean('image_auroc'))} "
                f"| {fmt(mean('pixel_auroc'))} | {fmt(mean('aupro'))} |"
            )
    if selections:
        lines += [
            "",
            "Validation image AUROC of each candidate the defaults tried (held-out 20 % of the training "
            "goods against the layout's labelled calibration defects, or without them against synthetic "
            "defects made from those goods; the test split is not used to choose). The kept one is in bold.",
            "",
            "| data | model | seed | candidates: validation image AUROC |",
            "|---|---|---|---|",
        ]
        for key, seed, selection, kept in selections:
            cells = [
                f"**{_trial_name(t)}: {t['validation_auroc']:.3f}**"
                if (t.get("model"), t["backbone"], t["image_size"]) == kept
                else f"{_trial_name(t)}: {t['validation_auroc']:.3f}"
                for t in selection["trials"]
            ]
            lines.append(f"| {key} | {seed} | " + ", ".join(cells) + " |")
    if "fit-time" in chosen:
        lines += [
            "",
            "### Fit time: 200 good images at 256x256, efficientnet_lite0, 1 thread",
            "",
            "ELPV good cells (300x300, resized to 256x256); time of `fit()` alone "
            "(feature extraction + coreset or Gaussians).",
            "",
            "| model | fit s | memory bank / positions | peak RSS MB |",
            "|---|---|---|---|",
        ]
        for model in ("patchcore", "padim"):
            spec = {
                "format": "elpv",
                "data": "elpv",
                "model": model,
                "backbone": "efficientnet_lite0",
                "seed": 0,
                "threads": 1,
                "fit_only": True,
                "n_images": 200,
                "size": [256, 256],
            }
            print(f"running fit-time {model} ...", file=sys.stderr, flush=True)
            r = spawn(spec)
            size = r.get("memory_bank_size") or r.get("n_positions")
            lines.append(f"| {model} | {r['fit_seconds']:.1f} | {size} | {r['peak_rss_mb']:.0f} |")
        from lineguard.train.config import SYNTHETIC_DEFECTS

        spec = {**spec, "fit_only": False, "fit_step": True, "model": "auto"}
        print("running fit-time fit step ...", file=sys.stderr, flush=True)
        r = spawn(spec)
        fits = ", ".join(f"{kind} {s:.1f} s" for kind, s in r["trials"])
        lines += [
            "",
            f"The whole default fit step (`lineguard fit` without options: {fits} to fit, then scoring "
            f"both on {SYNTHETIC_DEFECTS} synthetic defects and the held-out good cells, keeping "
            f"{r['model']}, calibrating), {r['n_images']} good cells fitted + a quarter more held out: "
            f"**{r['fit_seconds']:.1f} s** on one thread (target <= 60 s), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB.",
        ]
    write_section(args.out, "anomaly:" + "+".join(chosen), "\n".join(lines))
    print("\n".join(lines))


def write_section(path: Path, key: str, text: str) -> None:
    """Replace this run's section of the benchmarks page, keeping every other section."""
    start, end = f"<!-- {key} start -->", f"<!-- {key} end -->"
    block = f"{start}\n{text}\n{end}"
    page = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in page and end in page:
        before, rest = page.split(start, 1)
        page = before + block + rest.split(end, 1)[1]
    else:
        page = page.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


if __name__ == "__main__":
    main()
