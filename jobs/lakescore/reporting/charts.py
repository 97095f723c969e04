"""The report's four charts as static inline SVG: score histogram over the training baseline,
PSI over time, rows per partition, validation per run. Input: the values of
:mod:`lakescore.reporting.data`; output: one ``<svg>`` element (or an empty-state paragraph).

Why hand-written SVG and not a chart library. We tried the candidate the issue names, Vega-Lite
through ``altair`` + ``vl-convert-python`` (checked here: it installs from PyPI and renders
offline). It does not fit, for three reasons:

* **The page is a contract.** Tests, scrapers and the Airflow UI tests find every mark by a
  stable id, class and data attribute (``svg#score-histogram rect.bar[data-count]``,
  ``circle.psi-point[data-ds][data-value]``, ``rect.validation-cell[data-run-id]``,
  ``line.threshold-warn[data-value]``). Vega's SVG renderer draws a bar as a bare ``<path>`` in
  a generic ``g.mark-rect`` group with only an ``aria-label``, so none of that survives.
* **Weight where the page is served.** ``vl-convert`` is an 84 MB wheel (it bundles a
  JavaScript engine); ``import altair`` plus the first render took 2.1 s + 0.6 s here, paid by
  every Airflow API-server process that serves a report, for four small charts.
* **Size.** The four charts are bar, step-line, line-with-points and a strip of cells: about
  300 lines of straight code with no layout engine to learn.

Every string that reaches the SVG is escaped with :func:`esc` (the same rule as the page's
templates). Marks carry ``<title>`` tooltips, so the page needs no JavaScript.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from datetime import date
from typing import Any

from lakescore.reporting.data import (
    PartitionRows,
    PsiPoint,
    ScoreHistogram,
    ValidationOutcome,
    tone,
)

# series colours (also used by the page's pills and the legend swatches)
C_SCORES = "#2563eb"
C_BASELINE = "#ea580c"
C_PREVIOUS = "#0891b2"
C_ROWS = "#6366f1"
C_REJECTED = "#f87171"
C_OK = "#16a34a"
C_WARN = "#d97706"
C_FAIL = "#dc2626"
C_MUTED = "#94a3b8"
C_AXIS = "#64748b"
C_GRID = "#e2e8f0"


# --------------------------------------------------------------------------- the charts


def score_histogram(hist: ScoreHistogram | None) -> str:
    """Bars: the share of rows per score bin; a step line: the training baseline's shares. A
    multiclass model's bins are its classes: one bar per predicted class, named on the axis
    (``data-label``), and no baseline (a score baseline says nothing about label shares)."""
    if hist is None:
        return empty(
            "score-histogram-empty",
            "No score metrics yet: the histogram appears after the first published run.",
        )
    if not hist.counts:
        return empty("score-histogram-empty", "The latest metrics row has no histogram.")
    if hist.rows == 0:
        return empty(
            "score-histogram-empty",
            f"Partition {ds_text(hist.metrics.get('ds'))} was published empty (0 rows): "
            "nothing to plot.",
        )
    frame = _Frame(560, 320, left=58, right=16)
    n, shares, baseline, labels = len(hist.counts), hist.shares, hist.baseline, hist.labels
    top, ticks = nice_axis(max(shares + (baseline or [])))
    frame.top_value = top

    def x(i: float) -> float:
        return frame.left + frame.width * i / n

    title = "Predicted class shares" if labels else "Score histogram against the training baseline"
    out = [svg_open("score-histogram", frame, title), _y_grid(ticks, frame, pct)]
    slot = frame.width / n
    for i, (count, share) in enumerate(zip(hist.counts, shares, strict=True)):
        if labels:
            tip = f"class {labels[i]}: {count:,} rows ({share:.1%})"
        else:
            tip = f"{num(hist.edges[i])} to {num(hist.edges[i + 1])}: {count:,} rows ({share:.1%})"
            tip += f"; training baseline {baseline[i]:.1%}" if baseline else ""
        out.append(
            f'<rect class="bar" x="{x(i) + 1:.2f}" y="{frame.y(share):.2f}" '
            f'width="{max(slot - 2, 1):.2f}" height="{frame.height * share / top:.2f}" '
            f'fill="{C_SCORES}" fill-opacity="0.85" data-bin="{i}" data-count="{count}" '
            + (f'data-label="{esc(labels[i])}" ' if labels else "")
            + f'data-share="{share:.6f}"><title>{esc(tip)}</title></rect>'
        )
    if baseline:
        out.append(_baseline_steps(baseline, x, frame))
    if labels:  # one name under each bar (thinned when there are many classes)
        shown = thin(n, 11)
        fit = max(3, int(frame.width / len(shown) / 6.5))  # characters of 11px text
        out += [_x_tick(x(i + 0.5), frame.bottom, clip(labels[i], fit)) for i in shown]
    else:  # bin edges, thinned to at most ~11 labels
        step = max(1, math.ceil((n + 1) / 11))
        out += [_x_tick(x(i), frame.bottom, num(hist.edges[i])) for i in range(0, n + 1, step)]
    out.append(_frame_axes(frame, "predicted class" if labels else "score", "share of rows"))
    legend = [
        ("rect", C_SCORES, f"partition {ds_text(hist.metrics.get('ds'))} ({hist.rows:,} rows)")
    ]
    if not labels:
        legend.append(
            ("line", C_BASELINE, "training baseline")
            if baseline
            else ("none", C_MUTED, "no training baseline recorded")
        )
    out += [_legend(frame.left, 14, legend), "</svg>"]
    return "".join(out)


def _baseline_steps(baseline: list[float], x: Callable[[float], float], frame: _Frame) -> str:
    """The training baseline's shares as a step line over the histogram's bins."""
    d = [f"M{x(0):.2f},{frame.y(baseline[0]):.2f}"]
    for i, share in enumerate(baseline):
        d.append(f"{f'V{frame.y(share):.2f} ' if i else ''}H{x(i + 1):.2f}")
    return (
        f'<path class="baseline" d="{" ".join(d)}" fill="none" stroke="{C_BASELINE}" '
        f'stroke-width="2.5" stroke-linejoin="round" data-bins="{len(baseline)}">'
        f"<title>training baseline (re-binned to the same bins)</title></path>"
    )


PSI_SERIES = (
    ("psi_previous", "psi-previous", C_PREVIOUS, "vs previous partition"),
    ("psi_baseline", "psi-baseline", C_BASELINE, "vs training baseline"),
)


def psi_over_time(points: list[PsiPoint], warn: float, fail: float | None) -> str:
    """Both PSI series per partition over time, on bands and dashed lines at the job's warn /
    fail thresholds; a refused partition's point is hollow."""
    if not points:
        return empty(
            "psi-over-time-empty",
            "No drift metrics yet: PSI appears once partitions have been scored.",
        )
    values = [getattr(p, key) for p in points for key, *_ in PSI_SERIES]
    values = [v for v in values if v is not None]
    if not values:
        return empty(
            "psi-over-time-empty",
            "No PSI yet: it needs a previous published partition or a training baseline.",
        )
    frame = _Frame(560, 320, left=58, right=70)
    frame.top_value, ticks = nice_axis(max([*values, warn, fail or 0.0]) * 1.1)
    days = [p.ds for p in points]
    x = _date_scale(days, frame, pad=18.0)
    out = [svg_open("psi-over-time", frame, "PSI per partition over time")]
    out.append(_psi_bands(frame, warn, fail))
    out.append(_y_grid(ticks, frame, lambda v: f"{v:.2f}"))
    out.append(_psi_thresholds(frame, warn, fail))
    for key, css, colour, label in PSI_SERIES:
        d, pen_down = [], False
        for p in points:
            v = getattr(p, key)
            if v is None:
                pen_down = False
                continue
            d.append(f"{'L' if pen_down else 'M'}{x(p.ds):.2f},{frame.y(v):.2f}")
            pen_down = True
        if d:
            out.append(
                f'<path class="psi-line {css}" d="{" ".join(d)}" fill="none" '
                f'stroke="{colour}" stroke-width="2.2" stroke-linejoin="round">'
                f"<title>{esc(label)}</title></path>"
            )
    for key, css, colour, label in PSI_SERIES:
        out += [_psi_point(p, getattr(p, key), x(p.ds), frame, css, colour, label) for p in points]
    out += [
        _x_tick(x(days[i]), frame.bottom, short_date(days[i], days)) for i in thin(len(days), 7)
    ]
    out.append(_frame_axes(frame, "partition (ds)", "PSI"))
    legend = [(kind, colour, label) for _, _, colour, label in PSI_SERIES for kind in ["line"]]
    out += [_legend(frame.left, 14, [*legend, ("dash", C_AXIS, "thresholds")]), "</svg>"]
    return "".join(out)


def rows_per_partition(parts: list[PartitionRows]) -> str:
    """Bars: rows published per partition (quarantined rows stacked on top); a cross where a
    partition has no successful run."""
    if not parts:
        return empty("rows-per-ds-empty", "No runs yet: nothing has been scored.")
    frame = _Frame(560, 300, left=64, right=16)
    frame.top_value, ticks = nice_axis(
        max([(p.published_rows or 0) + p.rejected_rows for p in parts] + [1])
    )
    n, days = len(parts), [p.ds for p in parts]
    slot = frame.width / n
    bar_w = min(56.0, slot * 0.7)
    out = [svg_open("rows-per-ds", frame, "Rows scored per partition")]
    out.append(_y_grid(ticks, frame, compact))
    for i, part in enumerate(parts):
        out.append(_partition_bar(part, frame.left + slot * (i + 0.5), bar_w, frame, n <= 16))
    out += [
        _x_tick(frame.left + slot * (i + 0.5), frame.bottom, short_date(days[i], days))
        for i in thin(n, 8)
    ]
    out.append(_frame_axes(frame, "partition (ds)", "rows"))
    legend = [("rect", C_ROWS, "rows published")]
    if any(p.rejected_rows for p in parts):
        legend.append(("rect", C_REJECTED, "rows quarantined"))
    if any(p.published_rows is None for p in parts):
        legend.append(("cross", C_FAIL, "no successful run"))
    out += [_legend(frame.left, 14, legend), "</svg>"]
    return "".join(out)


def validation_per_run(outcomes: list[ValidationOutcome], *, any_runs: bool) -> str:
    """One cell per run, coloured by its validation outcome, with the failed count in it."""
    if not any_runs:
        return empty("validation-outcomes-empty", "No runs yet.")
    if not outcomes:
        return empty("validation-outcomes-empty", "No validation results recorded for these runs.")
    n, left, top = len(outcomes), 16, 44
    frame = _Frame(560, 128, left=left, right=16)
    cell = min(44.0, frame.width / n)
    out = [svg_open("validation-outcomes", frame, "Validation outcome per run")]
    counts: dict[str, int] = {}
    for i, o in enumerate(outcomes):
        counts[o.status] = counts.get(o.status, 0) + 1
        x = left + i * cell
        tip = f"{ds_text(o.ds)} · run {o.run_id} · validation {o.status}" + (
            f" · {o.failed} of {o.evaluated} expectations failed" if o.evaluated else ""
        )
        out.append(
            f'<rect class="validation-cell" x="{x + 1:.2f}" y="{top}" '
            f'width="{max(cell - 2, 1):.2f}" height="34" rx="4" '
            f'fill="{validation_colour(o.status)}" data-status="{esc(o.status)}" '
            f'data-run-id="{esc(o.run_id)}"><title>{esc(tip)}</title></rect>'
        )
        mark = str(o.failed) if o.failed else ("✓" if tone(o.status) == "ok" else "")
        if mark and cell >= 14:
            out.append(
                f'<text x="{x + cell / 2:.2f}" y="{top + 22}" text-anchor="middle" '
                f'font-size="12" font-weight="700" fill="#fff">{esc(mark)}</text>'
            )
    days = [o.ds for o in outcomes]
    real_days = [d for d in days if d]
    for i in thin(n, 8):
        if days[i]:
            label = short_date(days[i], real_days)
            out.append(_small_text("tick", left + cell * (i + 0.5), top + 52, "middle", label))
    legend = [("rect", validation_colour(s), f"{s} ({c})") for s, c in sorted(counts.items())]
    out += [_legend(left, 14, legend), "</svg>"]
    return "".join(out)


# --------------------------------------------------------------------------- chart parts


class _Frame:
    """A chart's size and plot area (margins: 40 above for the legend, 50 below for ticks)."""

    def __init__(self, w: int, h: int, *, left: int, right: int) -> None:
        self.w, self.h, self.left, self.top = w, h, left, 40
        self.width, self.height = w - left - right, h - self.top - 50
        self.bottom = self.top + self.height
        self.top_value = 1.0  # the y axis' top value

    def y(self, v: float) -> float:
        return self.top + self.height * (1 - min(v, self.top_value) / self.top_value)


def _date_scale(days: list[date], frame: _Frame, pad: float) -> Callable[[date], float]:
    first, span = days[0], (days[-1] - days[0]).days

    def x(d: date) -> float:
        if span == 0:
            return frame.left + frame.width / 2
        return frame.left + pad + (frame.width - 2 * pad) * (d - first).days / span

    return x


def _psi_bands(frame: _Frame, warn: float, fail: float | None) -> str:
    """Background bands: stable / moderate shift / large shift."""
    top, left, width = frame.top_value, frame.left, frame.width
    y_warn = frame.y(min(warn, top))
    upper = fail if fail is not None else top
    out = [
        f'<rect class="band band-ok" x="{left}" y="{y_warn:.2f}" width="{width}" '
        f'height="{frame.height - (y_warn - frame.top):.2f}" fill="{C_OK}" fill-opacity="0.05"/>',
        f'<rect class="band band-warn" x="{left}" y="{frame.y(min(upper, top)):.2f}" '
        f'width="{width}" height="{y_warn - frame.y(min(upper, top)):.2f}" fill="{C_WARN}" '
        f'fill-opacity="0.07"/>',
    ]
    if fail is not None:
        out.append(
            f'<rect class="band band-fail" x="{left}" y="{frame.top}" width="{width}" '
            f'height="{frame.y(min(fail, top)) - frame.top:.2f}" fill="{C_FAIL}" '
            f'fill-opacity="0.06"/>'
        )
    return "".join(out)


def _psi_thresholds(frame: _Frame, warn: float, fail: float | None) -> str:
    out = []
    right = frame.left + frame.width
    for value, name, colour in ((warn, "warn", C_WARN), (fail, "fail", C_FAIL)):
        if value is None:
            continue
        y = frame.y(value)
        out.append(
            f'<line class="threshold threshold-{name}" x1="{frame.left}" x2="{right}" '
            f'y1="{y:.2f}" y2="{y:.2f}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="6 4" data-value="{value}"/>'
            f'<text class="threshold-label" x="{right + 6}" y="{y + 4:.2f}" '
            f'fill="{colour}" font-size="12">{name} {esc(num(value))}</text>'
        )
    return "".join(out)


def _psi_point(
    p: PsiPoint, v: float | None, x: float, frame: _Frame, css: str, colour: str, label: str
) -> str:
    if v is None:
        return ""
    tip = f"{ds_text(p.ds)} PSI {label} {v:.4f} · drift {p.drift_status}" + (
        "" if p.published else " · not published"
    )
    return (
        f'<circle class="psi-point {css}{"" if p.published else " refused"}" '
        f'cx="{x:.2f}" cy="{frame.y(v):.2f}" r="4.5" '
        f'fill="{colour if p.published else "#fff"}" stroke="{colour}" '
        f'stroke-width="2" data-ds="{ds_text(p.ds)}" data-value="{v:.6f}">'
        f"<title>{esc(tip)}</title></circle>"
    )


def _partition_bar(part: PartitionRows, cx: float, bar_w: float, frame: _Frame, label: bool) -> str:
    ds, rows, rejected = ds_text(part.ds), part.published_rows, part.rejected_rows
    if rows is None:
        tip = f"{ds}: no successful run (last attempt {part.last_status})"
        return (
            f'<text class="failed-marker" x="{cx:.2f}" y="{frame.bottom - 6:.2f}" '
            f'text-anchor="middle" fill="{C_FAIL}" font-size="16" font-weight="700" '
            f'data-ds="{ds}">✕<title>{esc(tip)}</title></text>'
        )
    tip = f"{ds}: {rows:,} rows published" + (
        f", {rejected:,} rows quarantined" if rejected else ""
    )
    scale = frame.height / frame.top_value
    out = [
        f'<rect class="bar" x="{cx - bar_w / 2:.2f}" y="{frame.y(rows):.2f}" '
        f'width="{bar_w:.2f}" height="{rows * scale:.2f}" fill="{C_ROWS}" '
        f'rx="2" data-ds="{ds}" data-rows="{rows}"><title>{esc(tip)}</title></rect>'
    ]
    if rejected:
        out.append(
            f'<rect class="bar-rejected" x="{cx - bar_w / 2:.2f}" '
            f'y="{frame.y(rows + rejected):.2f}" width="{bar_w:.2f}" '
            f'height="{rejected * scale:.2f}" fill="{C_REJECTED}" '
            f'data-ds="{ds}" data-rows="{rejected}"><title>{esc(tip)}</title></rect>'
        )
    if label:
        out.append(_small_text("value", cx, frame.y(rows + rejected) - 5, "middle", compact(rows)))
    return "".join(out)


def svg_open(svg_id: str, frame: _Frame, label: str) -> str:
    return (
        f'<svg id="{svg_id}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {frame.w} {frame.h}" width="{frame.w}" height="{frame.h}" role="img" '
        f'aria-label="{esc(label)}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">'
        f"<title>{esc(label)}</title>"
    )


def nice_axis(vmax: float, target: int = 4) -> tuple[float, list[float]]:
    """A nice top of the axis above ``vmax`` and its tick values (starting at 0)."""
    if not vmax or vmax <= 0 or not math.isfinite(vmax):
        vmax = 1.0
    raw = vmax / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw - 1e-12)
    count = max(1, math.ceil(vmax / step - 1e-9))
    return step * count, [step * i for i in range(count + 1)]


def _y_grid(ticks: list[float], frame: _Frame, fmt: Callable[[float], str]) -> str:
    out = []
    x0, x1 = frame.left, frame.left + frame.width
    for t in ticks:
        y = frame.y(t)
        out.append(
            f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.2f}" y2="{y:.2f}" '
            f'stroke="{C_GRID}" stroke-width="1"/>'
            + _small_text("tick", x0 - 6, y + 4, "end", fmt(t))
        )
    return "".join(out)


def _x_tick(x: float, y0: float, label: str) -> str:
    return (
        f'<line class="tick-mark" x1="{x:.2f}" x2="{x:.2f}" y1="{y0}" y2="{y0 + 4}" '
        f'stroke="{C_AXIS}"/>' + _small_text("tick", x, y0 + 17, "middle", label)
    )


def _small_text(css: str, x: float, y: float, anchor: str, text: str) -> str:
    """An axis-coloured 11px label (tick labels, bar values), escaped."""
    return (
        f'<text class="{css}" x="{x:.2f}" y="{y:.2f}" text-anchor="{anchor}" font-size="11" '
        f'fill="{C_AXIS}">{esc(text)}</text>'
    )


def _frame_axes(frame: _Frame, x_label: str, y_label: str) -> str:
    """The L-shaped axis line and both axis labels."""
    ml, mt, pw, ph = frame.left, frame.top, frame.width, frame.height
    xl, yl = ml + pw / 2, mt + ph / 2
    return (
        f'<path class="axis" d="M{ml},{mt} V{mt + ph} H{ml + pw}" fill="none" '
        f'stroke="{C_AXIS}" stroke-width="1"/>'
        f'<text class="axis-label axis-label-x" x="{xl:.2f}" y="{frame.h - 8:.2f}" '
        f'text-anchor="middle" font-size="12" fill="#334155">{esc(x_label)}</text>'
        f'<text class="axis-label axis-label-y" x="14.00" y="{yl:.2f}" text-anchor="middle" '
        f'font-size="12" fill="#334155" transform="rotate(-90 14.00 {yl:.2f})">'
        f"{esc(y_label)}</text>"
    )


def _legend(x: float, y: float, items: list[tuple[str, str, str]]) -> str:
    out = ['<g class="legend">']
    cx = x
    for kind, colour, label in items:
        if kind == "rect":
            out.append(
                f'<rect class="legend-swatch" x="{cx:.1f}" y="{y - 9}" width="12" height="12" '
                f'rx="2" fill="{colour}"/>'
            )
        elif kind in ("line", "dash"):
            dash = ' stroke-dasharray="5 3"' if kind == "dash" else ""
            out.append(
                f'<line class="legend-swatch" x1="{cx:.1f}" x2="{cx + 14:.1f}" y1="{y - 3}" '
                f'y2="{y - 3}" stroke="{colour}" stroke-width="2.5"{dash}/>'
            )
        elif kind == "cross":
            out.append(
                f'<text x="{cx + 6:.1f}" y="{y + 2}" text-anchor="middle" fill="{colour}" '
                f'font-size="13" font-weight="700">✕</text>'
            )
        out.append(
            f'<text class="legend-label" x="{cx + 19:.1f}" y="{y + 1}" font-size="12" '
            f'fill="#334155">{esc(label)}</text>'
        )
        cx += 19 + 6.6 * len(label) + 16
    out.append("</g>")
    return "".join(out)


def thin(n: int, most: int) -> list[int]:
    """Indexes of at most ``most`` evenly spread labels out of ``n`` (first and last kept)."""
    if n <= most:
        return list(range(n))
    step = math.ceil((n - 1) / (most - 1))
    picked = list(range(0, n, step))
    if picked[-1] != n - 1:
        if n - 1 - picked[-1] < step / 2:
            picked[-1] = n - 1
        else:
            picked.append(n - 1)
    return picked


# --------------------------------------------------------------------------- text and colour


def esc(value: Any) -> str:
    """HTML-escape (quotes included); ``None`` is empty. The page's templates use the same."""
    return html.escape("" if value is None else str(value), quote=True)


def empty(element_id: str, message: str) -> str:
    return f'<p class="empty" id="{esc(element_id)}">{esc(message)}</p>'


def validation_colour(status: str) -> str:
    return {"ok": C_OK, "bad": C_FAIL, "warn": C_WARN}.get(tone(status), C_MUTED)


def drift_colour(status: str | None) -> str:
    return {"ok": C_OK, "warn": C_WARN, "fail": C_FAIL}.get(status or "", C_MUTED)


def ds_text(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def short_date(d: Any, all_days: list[Any]) -> str:
    years = {x.year for x in all_days if isinstance(x, date)}
    if not isinstance(d, date):
        return str(d)
    return d.strftime("%b %d") if len(years) <= 1 else d.strftime("%Y-%m-%d")


def clip(text: str, most: int) -> str:
    """``text`` cut to at most ``most`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= most else text[: max(most - 1, 1)] + "…"


def num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{round(float(value), 4):g}"


def pct(value: float) -> str:
    return f"{value * 100:.0f}%" if value * 100 >= 1 or value == 0 else f"{value * 100:.1f}%"


def compact(value: float) -> str:
    value = float(value)
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"
