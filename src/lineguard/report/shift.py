"""The shift report: one self-contained HTML file (charts as inline SVG, part images as inline PNG,
no script, nothing fetched) of what a station decided over a period — counts by recipe and verdict,
Paretos of rejects, unjudged reasons and defect classes, control charts with the rules that fired,
capability of the measured features, drift alarms, the reviewers' escape and false-reject rates,
and the highest-scoring parts with their heatmaps.

``gather`` reads the record (aggregated by the database, never part by part); ``render`` turns
what it read into HTML and does no I/O.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lineguard.store.summary import Period, ShiftCounts, Specified, Worst

MAX_CHART_POINTS = 500  # subgroups drawn per chart: larger subgroups beyond (the rule the report states)
VERDICTS = ("OK", "REVIEW", "NG")
# Okabe-Ito colours: told apart with every common colour-vision deficiency.
COLOURS = {"OK": "#009E73", "REVIEW": "#E69F00", "NG": "#D55E00", "line": "#0072B2", "limit": "#555555"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; color: #222; }
body { padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.meta { color: #555; } table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; } th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
.tiles { display: flex; gap: 1rem; flex-wrap: wrap; }
.tile { border-radius: 0.4rem; padding: 0.6rem 1rem; color: #fff; min-width: 8rem; }
.tile b { display: block; font-size: 1.8rem; }
.chart svg { max-width: 100%; height: auto; } .why { color: #8a4b00; }
.parts { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: 1rem; }
.part img { width: 48%; image-rendering: pixelated; }
.missing { display: inline-block; width: 48%; color: #888; }
.verdict { color: #fff; padding: 0 0.3rem; }
""" + "".join(f".{v} {{ background: {COLOURS[v]}; }}\n" for v in VERDICTS)


@dataclass(frozen=True)
class CheckCharts:
    check: str
    size: int  # parts per subgroup
    scores: Any | None  # lineguard.api.charts.ValueChartOut
    rejects: Any | None  # RejectChartOut
    why_not: str = ""  # when a chart could not be drawn


@dataclass(frozen=True)
class FeatureCapability:
    feature: Specified
    capability: Any | None  # lineguard.spc.Capability
    why_not: str = ""


@dataclass(frozen=True)
class ShownPart:
    check: str
    part: Worst
    image_png: bytes | None
    heatmap_png: bytes | None


@dataclass
class ShiftData:
    period: Period
    generated: datetime
    counts: ShiftCounts
    charts: list[CheckCharts] = field(default_factory=list)
    capability: list[FeatureCapability] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)  # drift events, oldest first
    reviews: Any = None  # lineguard.spc.review.ReviewRates
    worst: list[ShownPart] = field(default_factory=list)


def subgroup_size(parts: int, wanted: int) -> int:
    """``wanted`` parts a subgroup, larger where a chart would exceed MAX_CHART_POINTS points."""
    return max(wanted, math.ceil(parts / MAX_CHART_POINTS))


def gather(
    store, archive, period: Period, size: int = 25, worst: int = 6, progress: bool = False
) -> ShiftData:
    """Everything the report shows, read from the record and the image archive."""
    from tqdm.auto import tqdm

    from lineguard.api.charts import reject_chart, value_chart
    from lineguard.spc import capability
    from lineguard.spc.review import review_rates
    from lineguard.store import Grouping, NoData

    stations = store.stations()
    if period.station not in stations:
        raise ValueError(f"no station {period.station!r} in the record; it holds {stations or 'no parts'}")
    counts = store.shift_counts(period)
    if counts.parts == 0:
        raise ValueError(f"station {period.station!r} decided no parts in {_span(period)}")
    checks = counts.checks
    steps = tqdm(
        total=3 + 2 * len(checks) + len(counts.specified), desc="report", unit="query", disable=not progress
    )
    data = ShiftData(period, datetime.now(UTC), counts)
    steps.update(1)
    for check in checks:
        judged = sum(n for (c, decision), n in counts.decisions.items() if c == check)
        n = subgroup_size(judged, size)
        grouping = Grouping(period.station, check, size=n, since=period.since, until=period.until)
        scores = rejects = None
        why = []
        try:
            scores = value_chart(store, grouping, "score", "xbar_s")
        except (NoData, ValueError) as exc:
            why.append(f"scores: {exc}")
        try:
            rejects = reject_chart(store, grouping, ("REVIEW", "NG"))
        except (NoData, ValueError) as exc:
            why.append(f"rejects: {exc}")
        data.charts.append(CheckCharts(check, n, scores, rejects, "; ".join(why)))
        shown = store.worst_parts(period, check, worst)
        data.worst.extend(
            ShownPart(check, w, _png(archive, w.image_sha256), _png(archive, w.heatmap_sha256)) for w in shown
        )
        steps.update(2)
    for feature in counts.specified:
        grouping = Grouping(period.station, feature.check, size=5, since=period.since, until=period.until)
        try:
            stats = store.value_subgroups(grouping, feature.name).stats
            data.capability.append(FeatureCapability(feature, capability(stats, feature.lo, feature.hi)))
        except (NoData, ValueError) as exc:
            data.capability.append(FeatureCapability(feature, None, str(exc)))
        steps.update(1)
    events = store.events(
        period.station,
        limit=1000,
        since=period.since,
        until=period.until,
        kinds=("drift_raised", "drift_cleared"),
    )
    data.drift = list(reversed(events))
    steps.update(1)
    decided, reviewed = store.review_counts(period.station, period.since, period.until)
    data.reviews = review_rates(decided, reviewed)
    steps.update(1)
    steps.close()
    return data


def _png(archive, sha: str | None) -> bytes | None:
    if sha is None:
        return None
    try:
        return archive.get_png(sha)
    except (FileNotFoundError, OSError):
        return None  # retention removed it, or it is damaged: the report says "not kept"


def _span(period: Period) -> str:
    since = period.since.isoformat() if period.since else "the first part"
    until = period.until.isoformat() if period.until else "the last"
    return f"[{since}, {until})"


# -- rendering ----------------------------------------------------------------------------------


def _svg(figure) -> str:
    """A matplotlib figure as inline SVG (its text stays text: searchable, sharp when zoomed)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 9.0, height: float = 2.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _control_svg(chart, title: str, ylabel: str) -> str:
    """A control chart: points joined, centre and limits, points where a rule fired in red."""
    figure, ax = _figure()
    points = chart.points
    x = list(range(len(points)))
    values = [p.value if p.value is not None else math.nan for p in points]
    ax.plot(x, values, marker="o", markersize=3, linewidth=1, color=COLOURS["line"], label=ylabel)
    ax.plot(x, [p.center for p in points], color=COLOURS["limit"], linewidth=1, label="centre")
    ax.plot(x, [p.ucl for p in points], color=COLOURS["limit"], linewidth=1, linestyle="--", label="limits")
    ax.plot(x, [p.lcl for p in points], color=COLOURS["limit"], linewidth=1, linestyle="--")
    fired = sorted({v.index for v in chart.violations})
    if fired:
        ax.scatter(
            fired,
            [values[i] for i in fired],
            color=COLOURS["NG"],
            zorder=3,
            s=30,
            marker="x",
            label="rule fired",
        )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("subgroup")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper right")
    return _svg(figure)


def _pareto_svg(items: list[tuple[str, int]], title: str) -> str:
    """Bars, largest first, with the cumulative share."""
    figure, ax = _figure(height=2.8)
    names = [name for name, _ in items]
    counts = [n for _, n in items]
    ax.bar(range(len(items)), counts, color=COLOURS["NG"])
    ax.set_xticks(range(len(items)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("parts")
    ax.set_title(title, fontsize=10)
    share = ax.twinx()
    total = sum(counts)
    running = [100 * sum(counts[: i + 1]) / total for i in range(len(counts))]
    share.plot(range(len(items)), running, color=COLOURS["line"], marker="o", markersize=3)
    share.set_ylim(0, 105)
    share.set_ylabel("cumulative %")
    return _svg(figure)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return '<div class="missing">not kept</div>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(data: ShiftData) -> str:
    counts, period = data.counts, data.period
    e = html.escape
    sections = [
        _summary(data),
        _paretos(data),
        _charts(data),
        _capability(data),
        _drift(data),
        _reviews(data),
    ]
    sections.append(_worst(data))
    title = f"Shift report — {period.station}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{e(title)}</h1>
<p class="meta">Parts decided in {e(_span(period))} · {counts.parts} parts · generated
{e(data.generated.isoformat(timespec="seconds"))} by LineGuard</p>
{"".join(sections)}
</body></html>
"""


def _summary(data: ShiftData) -> str:
    counts = data.counts
    by_verdict = {v: sum(n for (_, verdict), n in counts.verdicts.items() if verdict == v) for v in VERDICTS}
    tiles = "".join(
        f'<div class="tile {v}">{v}<b>{by_verdict[v]}</b>{_pct(by_verdict[v] / counts.parts)}</div>'
        for v in VERDICTS
    )
    recipes = sorted({recipe for recipe, _ in counts.verdicts})
    rows = [
        [
            html.escape(r or "–"),
            *(str(counts.verdicts.get((r, v), 0)) for v in VERDICTS),
            str(sum(counts.verdicts.get((r, v), 0) for v in VERDICTS)),
        ]
        for r in recipes
    ]
    return f'<h2 id="counts">Counts</h2><div class="tiles">{tiles}</div>' + _table(
        ["recipe", *VERDICTS, "parts"], rows
    )


def _paretos(data: ShiftData) -> str:
    counts = data.counts
    rejects = sorted(
        (
            (check, sum(n for (c, d), n in counts.decisions.items() if c == check and d != "OK"))
            for check in counts.checks
        ),
        key=lambda item: -item[1],
    )
    rejects = [item for item in rejects if item[1]]
    out = ['<h2 id="pareto">Pareto</h2>']
    if rejects:
        out.append(f'<div class="chart">{_pareto_svg(rejects, "REVIEW and NG by check")}</div>')
    else:
        out.append("<p>No check rejected a part in this period.</p>")
    classes = sorted(counts.defect_classes.items(), key=lambda item: -item[1])
    if classes:
        out.append(f'<div class="chart">{_pareto_svg(classes, "defect classes found by reviewers")}</div>')
    else:
        out.append("<p>No reviewer found a defect in this period.</p>")
    if counts.unjudged:
        rows = [[html.escape(c), html.escape(reason), str(n)] for c, reason, n in counts.unjudged]
        out.append("<p>Checks that could not judge (never OK: REVIEW or NG by the recipe's fail-safe):</p>")
        out.append(_table(["check", "reason", "parts"], rows))
    return "".join(out)


def _charts(data: ShiftData) -> str:
    out = ['<h2 id="charts">Control charts</h2>']
    out.append(
        "<p>Each check's score as an X̄-S chart and its share of REVIEW/NG parts as a p chart, in "
        f"subgroups of consecutive parts (larger where a chart would pass {MAX_CHART_POINTS} points); "
        "limits from this period (phase I); ✕ marks a point where a Nelson rule fired.</p>"
    )
    for c in data.charts:
        out.append(f"<h3>{html.escape(c.check)} <small>({c.size} parts a subgroup)</small></h3>")
        if c.scores is not None:
            out.append(
                f'<div class="chart">{_control_svg(c.scores.location, "X̄ of the score", "score")}</div>'
            )
            out.append(f'<div class="chart">{_control_svg(c.scores.spread, "S of the score", "std")}</div>')
        if c.rejects is not None:
            out.append(
                f'<div class="chart">{_control_svg(c.rejects.chart, "p: REVIEW and NG", "share")}</div>'
            )
        fired = [
            v
            for chart in ((c.scores.location, c.scores.spread) if c.scores else ())
            for v in chart.violations
        ]
        fired += list(c.rejects.chart.violations) if c.rejects else []
        if fired:
            rows = [
                [
                    html.escape(v.rule),
                    str(v.index),
                    html.escape(v.start.isoformat(timespec="seconds")),
                    html.escape(v.description),
                ]
                for v in fired[:20]
            ]
            out.append(_table(["rule", "subgroup", "from", "what"], rows))
        if c.why_not:
            out.append(f'<p class="why">No chart: {html.escape(c.why_not)}</p>')
    return "".join(out)


def _capability(data: ShiftData) -> str:
    out = ['<h2 id="capability">Capability</h2>']
    if not data.capability:
        return out[0] + "<p>No measurement with specification limits was recorded in this period.</p>"
    rows = []
    for f in data.capability:
        spec = f.feature
        name = html.escape(f"{spec.check} / {spec.name}" + (f" ({spec.unit})" if spec.unit else ""))
        limits = f"{_num(spec.lo, 4)} … {_num(spec.hi, 4)}"
        cap = f.capability
        if cap is None:
            rows.append(
                [name, limits, str(spec.n), f'<span class="why">{html.escape(f.why_not)}</span>', "", "", ""]
            )
            continue
        low, high = cap.cpk_interval
        rows.append(
            [
                name,
                limits,
                str(cap.n),
                _num(cap.mean, 4),
                _num(cap.cp, 2),
                f"{cap.cpk:.2f} ({low:.2f}–{high:.2f})",
                f"{cap.ppk:.2f}",
            ]
        )
    return out[0] + _table(["feature", "spec", "n", "mean", "Cp", "Cpk (95 %)", "Ppk"], rows)


def _drift(data: ShiftData) -> str:
    out = ['<h2 id="drift">Drift</h2>']
    if not data.drift:
        return out[0] + "<p>No drift alarm rose or cleared in this period.</p>"
    rows = [
        [html.escape(e["at"]), html.escape(e["kind"].removeprefix("drift_")), html.escape(e["detail"])]
        for e in data.drift
    ]
    return out[0] + _table(["at", "alarm", "what moved"], rows)


def _reviews(data: ShiftData) -> str:
    rates = data.reviews
    out = ['<h2 id="reviews">Reviews</h2>']
    rows = [
        [
            s.verdict,
            str(s.decided),
            str(s.reviewed),
            str(s.defect),
            _pct(s.defect_share.estimate)
            + (
                f" ({_pct(s.defect_share.low)}–{_pct(s.defect_share.high)})"
                if s.defect_share.low is not None
                else ""
            ),
        ]
        for s in rates.strata
    ]
    out.append(
        _table(
            ["station verdict", "decided", "sampled and reviewed", "found defective", "defect share (95 %)"],
            rows,
        )
    )
    lines = []
    for label, rate in (
        ("escape rate (defective parts passed as OK)", rates.escape_rate),
        ("false-reject rate (good parts failed as NG)", rates.false_reject_rate),
        ("good parts sent to REVIEW", rates.good_sent_to_review),
    ):
        interval = f" (95 %: {_pct(rate.low)}–{_pct(rate.high)})" if rate.low is not None else ""
        why = f' <span class="why">{html.escape(rate.why_not)}</span>' if rate.why_not else ""
        lines.append(f"<li>{label}: <b>{_pct(rate.estimate)}</b>{interval}{why}</li>")
    out.append(f"<ul>{''.join(lines)}</ul>")
    return "".join(out)


def _worst(data: ShiftData) -> str:
    out = ['<h2 id="worst">Highest-scoring parts</h2>']
    if not data.worst:
        return out[0] + "<p>No part with a kept image.</p>"
    cards = []
    for shown in data.worst:
        w = shown.part
        label = f"{shown.check}: {w.part_id}"
        images = _img(shown.image_png, label) + _img(shown.heatmap_png, label + " heatmap")
        when = html.escape(w.decided_at.isoformat(timespec="seconds"))
        cards.append(
            f'<div class="part"><b>{html.escape(label)}</b> '
            f'<span class="verdict {w.verdict}">{w.verdict}</span> score {w.score:.4g}<br>{images}'
            f"<br><small>{when} · {html.escape(w.uid)}</small></div>"
        )
    return out[0] + f'<div class="parts">{"".join(cards)}</div>'
