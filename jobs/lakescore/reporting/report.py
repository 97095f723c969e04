"""A job's report: one self-contained HTML page a person would rather look at than read.

Everything on it comes from two Delta tables, read with delta-rs (no JVM, no MLflow server):

* the **lineage table** (one row per run attempt): the runs table, rows scored per partition,
  validation outcomes;
* the **metrics table** (one row per scored partition): the score histogram of the latest
  published run against the model's training baseline, and PSI over time against the job's
  ``monitoring.psi_warn`` / ``psi_fail`` thresholds.

The page has no external assets and no JavaScript: inline CSS, and charts drawn here as inline
SVG. Every chart element has a stable id / class (``svg#score-histogram rect.bar``,
``svg#psi-over-time circle.psi-point``, ``table#runs tr.run`` ...) so tests and scrapers can
find them. All text from the tables and the config is HTML-escaped.

``lakescore report --job churn`` writes it to ``<reports_root>/<job>/index.html``; the Airflow
plugin ``lakescore_airflow/report_plugin.py`` serves the same page behind Airflow's login.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lakescore.errors import BadInputError
from lakescore.lakehouse import tables

if TYPE_CHECKING:
    from lakescore.config import PlatformConfig, ScoringJob

ArtifactHref = Callable[[str], "str | None"]

# series colours (also used by the legend swatches)
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


# --------------------------------------------------------------------------- data


@dataclass
class ReportData:
    """What the page shows, read once from the lineage and metrics tables."""

    runs: list[dict[str, Any]]  # attempts of the job, newest first, at most limit_runs
    total_runs: int  # attempts of the job in the lineage table
    all_runs: list[dict[str, Any]]  # every attempt of the job, oldest first
    metrics: list[dict[str, Any]]  # champion metrics rows of the job, oldest first
    lineage_version: int | None
    metrics_version: int | None
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # challenger rows, oldest first

    def latest_published_metrics(self) -> dict[str, Any] | None:
        published = [m for m in self.metrics if m.get("published")]
        return published[-1] if published else None

    def metrics_for_run(self, run_id: str) -> dict[str, Any] | None:
        mine = [m for m in self.metrics if m.get("run_id") == run_id]
        return mine[-1] if mine else None


def load_report_data(
    platform: PlatformConfig, job_name: str, *, limit_runs: int = 30
) -> ReportData:
    """Lineage and metrics rows of ``job_name`` (delta-rs; empty lists if a table is missing)."""
    lineage_uri, metrics_uri = platform.lineage_table, platform.metrics_table
    runs = tables.select_rows(lineage_uri, sort_by="started_at", job=job_name)
    all_metrics = tables.select_rows(metrics_uri, sort_by="computed_at", job=job_name)
    metrics = [m for m in all_metrics if (m.get("role") or "champion") == "champion"]
    comparisons = [m for m in all_metrics if m.get("role") == "challenger"]
    return ReportData(
        runs=list(reversed(runs))[: max(limit_runs, 0)],
        total_runs=len(runs),
        all_runs=runs,
        metrics=metrics,
        lineage_version=tables.table_version(lineage_uri),
        metrics_version=tables.table_version(metrics_uri),
        comparisons=comparisons,
    )


# --------------------------------------------------------------------------- public API


def render_job_report(
    platform: PlatformConfig,
    job_name: str,
    *,
    limit_runs: int = 30,
    artifact_href: ArtifactHref | None = None,
    index_href: str | None = None,
    now: datetime | None = None,
) -> str:
    """The job's report as one complete HTML page (a string).

    ``artifact_href`` turns a local report path (lineage ``validation_report``) into a link
    (default: http(s) URLs as they are, local paths as ``file://`` URIs); ``index_href`` adds
    a link back to a list of jobs. Raises :class:`BadInputError` for an unknown job and
    :class:`ConfigError` for a broken job file, like every other command.
    """
    from lakescore.config import load_job

    job = load_job(job_name, platform=platform)
    data = load_report_data(platform, job.name, limit_runs=limit_runs)
    page = _JobPage(
        job,
        data,
        platform=platform,
        limit_runs=limit_runs,
        artifact_href=artifact_href or default_artifact_href,
        index_href=index_href,
        now=now or datetime.now(UTC),
    )
    return page.render()


def default_report_path(platform: PlatformConfig, job_name: str) -> Path:
    """``<platform.reports_root>/<job>/index.html`` (the reports root must be a local path)."""
    from lakescore.config import check_job_name

    root = platform.reports_root
    if "://" in root and not root.startswith("file://"):
        raise BadInputError(
            f"the reports root {root} is not a local folder: pass an output path (--out)",
            job=job_name,
        )
    return Path(root.removeprefix("file://")) / check_job_name(job_name) / "index.html"


def write_job_report(
    platform: PlatformConfig, job_name: str, out_path: str | Path | None = None
) -> Path:
    """Render the job's report and write it (default :func:`default_report_path`); return the
    path written. Links to validation reports are relative to the page, so the folder can be
    copied or served as it is."""
    path = Path(out_path) if out_path else default_report_path(platform, job_name)
    path = path.expanduser().resolve()
    folder = path.parent

    def relative_href(target: str) -> str | None:
        href = default_artifact_href(target)
        if href is None or not href.startswith("file://"):
            return href
        local = Path(target)
        try:
            return Path(os.path.relpath(local, folder)).as_posix()
        except ValueError:  # another drive (Windows)
            return href

    page = render_job_report(platform, job_name, artifact_href=relative_href)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(page, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        raise BadInputError(
            f"cannot write the report: {exc.strerror or exc}", job=job_name, file=str(path)
        ) from None
    return path


def default_artifact_href(target: str) -> str | None:
    """http(s) URLs as they are, absolute local paths as ``file://`` URIs, anything else (other
    schemes, relative paths) is shown as text only."""
    if not target:
        return None
    scheme = urlsplit(target).scheme.lower()
    if scheme in ("http", "https"):
        return target
    if scheme == "file":
        return target
    if not scheme and os.path.isabs(target):
        return Path(target).as_uri()
    return None


def render_index(
    platform: PlatformConfig,
    job_names: Iterable[str],
    *,
    job_href: Callable[[str], str],
    now: datetime | None = None,
) -> str:
    """A small page listing jobs, each with its model, last run and a link to its report."""
    from lakescore.config import load_job
    from lakescore.errors import LakescoreError

    runs = tables.select_rows(platform.lineage_table, sort_by="started_at")
    last: dict[str, dict[str, Any]] = {}
    for run in runs:
        last[run.get("job")] = run
    rows = []
    for name in job_names:
        try:
            job = load_job(name, platform=platform)
        except LakescoreError as exc:
            rows.append(
                f'<tr class="job broken" data-job="{_e(name)}"><td>{_e(name)}</td>'
                f'<td colspan="4" class="error-text">{_e(exc)}</td></tr>'
            )
            continue
        run = last.get(job.name)
        status = _status_pill(run.get("status")) if run else '<span class="muted">no runs</span>'
        rows.append(
            f'<tr class="job" data-job="{_e(job.name)}">'
            f'<td><a href="{_e(job_href(job.name))}">{_e(job.name)}</a></td>'
            f"<td>{_e(job.model.reference)}</td>"
            f"<td>{status}</td>"
            f"<td>{_e(_ds(run.get('ds')) if run else '')}</td>"
            f"<td>{_e(_ts(run.get('started_at')) if run else '')}</td></tr>"
        )
    body = (
        '<table id="jobs"><thead><tr><th>job</th><th>model</th><th>last run</th><th>ds</th>'
        "<th>started (UTC)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        if rows
        else _empty("jobs-empty", "No jobs configured (conf/jobs/*.yaml).")
    )
    generated = _ts(now or datetime.now(UTC))
    return _document(
        "lakescore reports",
        f'<header><div class="wrap"><h1>lakescore reports</h1>'
        f'<p class="sub">Scoring jobs · generated {_e(generated)} UTC</p></div></header>'
        f'<main class="wrap"><section><h2>Jobs</h2>{body}</section></main>',
    )


# --------------------------------------------------------------------------- page


class _JobPage:
    def __init__(
        self,
        job: ScoringJob,
        data: ReportData,
        *,
        platform: PlatformConfig,
        limit_runs: int,
        artifact_href: ArtifactHref,
        index_href: str | None,
        now: datetime,
    ) -> None:
        self.job = job
        self.data = data
        self.platform = platform
        self.limit_runs = limit_runs
        self.artifact_href = artifact_href
        self.index_href = index_href
        self.now = now

    def render(self) -> str:
        sections = [
            self._cards(),
            '<div class="charts">',
            self._figure(
                "Score distribution",
                self._histogram_caption(),
                self._histogram(),
                "histogram",
            ),
            self._figure(
                "Score drift (PSI) over time",
                _e(
                    f"Population stability index per partition; warn above "
                    f"{_num(self.job.monitoring.psi_warn)}"
                    + (
                        f", fail above {_num(self.job.monitoring.psi_fail)}"
                        if self.job.monitoring.psi_fail is not None
                        else ""
                    )
                    + "."
                ),
                self._psi_chart(),
                "psi",
            ),
            self._figure(
                "Rows scored per partition",
                _e("Rows published by the latest successful run of each partition."),
                self._rows_chart(),
                "rows",
            ),
            self._figure(
                "Validation per run",
                _e(
                    "Great Expectations outcome of each run, oldest to newest "
                    "(number = failed expectations)."
                ),
                self._validation_chart(),
                "validation",
            ),
            "</div>",
            self._comparison_table(),
            self._runs_table(),
            self._footer(),
        ]
        return _document(f"lakescore · {self.job.name}", self._header() + _main(sections))

    # ------------------------------------------------------------------ header and cards

    def _header(self) -> str:
        job = self.job
        back = (
            f'<a class="back" href="{_e(self.index_href)}">← all jobs</a>'
            if self.index_href
            else ""
        )
        description = (
            f'<p class="description">{_e(job.description)}</p>' if job.description.strip() else ""
        )
        facts = [
            ("model", job.model.reference),
            ("feature table", job.features.table),
            ("output table", job.output.table),
            ("schedule", job.schedule.cron or "none"),
            ("owner", job.owner),
            ("generated", f"{_ts(self.now)} UTC"),
        ]
        items = "".join(
            f'<div class="fact" data-fact="{_e(k)}"><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>'
            for k, v in facts
        )
        return (
            f'<header><div class="wrap">{back}'
            f'<h1><span class="muted-h">lakescore job</span> <span id="job-name">'
            f"{_e(job.name)}</span></h1>{description}"
            f'<dl class="facts">{items}</dl></div></header>'
        )

    def _cards(self) -> str:
        runs = self.data.runs
        cards = []
        if runs:
            last = runs[0]
            cards.append(
                _card(
                    "last run",
                    _status_pill(last.get("status")),
                    f"{_ds(last.get('ds'))} · {_ts(last.get('started_at'))} UTC",
                    "last-run",
                )
            )
        else:
            cards.append(_card("last run", '<span class="muted">none yet</span>', "", "last-run"))
        published = [r for r in self.data.all_runs if _published(r)]
        if published:
            newest_ds = max(r["ds"] for r in published if r.get("ds"))
            of_ds = [r for r in published if r.get("ds") == newest_ds]
            run = of_ds[-1]
            cards.append(
                _card(
                    "latest partition published",
                    _e(_ds(newest_ds)),
                    f"{_int(run.get('output_rows'))} rows · table version "
                    f"{_e(run.get('output_version'))}",
                    "latest-partition",
                )
            )
        else:
            cards.append(
                _card(
                    "latest partition published",
                    '<span class="muted">none</span>',
                    "",
                    "latest-partition",
                )
            )
        if runs:
            ok = sum(1 for r in runs if r.get("status") == "succeeded")
            rate = ok / len(runs)
            colour = C_OK if rate >= 0.95 else (C_WARN if rate >= 0.7 else C_FAIL)
            cards.append(
                _card(
                    "success rate",
                    f'<span style="color:{colour}">{rate:.0%}</span>',
                    f"{ok} of the last {len(runs)} attempts",
                    "success-rate",
                )
            )
        priced = [r for r in runs if r.get("cost") is not None]
        if priced:
            total = sum(r["cost"] for r in priced)
            per_1k = [r["cost_per_1k"] for r in priced if r.get("cost_per_1k") is not None]
            currency = self.platform.cost.currency if self.platform.cost else ""
            cards.append(
                _card(
                    "cost",
                    _e(f"{total:.2f} {currency}".rstrip()),
                    f"{len(priced)} priced runs"
                    + (
                        f" · {sum(per_1k) / len(per_1k):.5f} per 1,000 predictions"
                        if per_1k
                        else ""
                    ),
                    "cost",
                )
            )
        metrics = self.data.latest_published_metrics()
        if metrics:
            worst = max(
                (
                    v
                    for v in (metrics.get("psi_previous"), metrics.get("psi_baseline"))
                    if v is not None
                ),
                default=None,
            )
            cards.append(
                _card(
                    "score drift",
                    _drift_pill(metrics.get("drift_status")),
                    f"max PSI {_num(worst)} · {_ds(metrics.get('ds'))}",
                    "drift",
                )
            )
        else:
            cards.append(
                _card("score drift", '<span class="muted">no metrics yet</span>', "", "drift")
            )
        return '<section class="cards">' + "".join(cards) + "</section>"

    def _figure(self, title: str, caption_html: str, body: str, key: str) -> str:
        return (
            f'<figure class="chart" id="chart-{_e(key)}"><h2>{_e(title)}</h2>'
            f'<p class="caption">{caption_html}</p>'
            f"{body}</figure>"
        )

    # ------------------------------------------------------------------ histogram

    def _histogram_caption(self) -> str:
        m = self.data.latest_published_metrics()
        if m is None:
            return _e("The latest published run against the model's training baseline.")
        return (
            f"Latest published run: partition {_e(_ds(m.get('ds')))}, "
            f"{_e(m.get('model_name'))} v{_e(m.get('model_version'))}, "
            f"{_int(m.get('rows'))} rows, PSI vs baseline {_e(_num(m.get('psi_baseline')))}, "
            f"vs previous partition {_e(_num(m.get('psi_previous')))}."
        )

    def _histogram(self) -> str:
        m = self.data.latest_published_metrics()
        if m is None:
            return _empty(
                "score-histogram-empty",
                "No score metrics yet: the histogram appears after the first published run.",
            )
        edges = [float(x) for x in (m.get("bin_edges") or [])]
        counts = [int(x or 0) for x in (m.get("bin_counts") or [])]
        if not counts or len(edges) != len(counts) + 1:
            return _empty("score-histogram-empty", "The latest metrics row has no histogram.")
        total = sum(counts)
        if total == 0:
            return _empty(
                "score-histogram-empty",
                f"Partition {_ds(m.get('ds'))} was published empty (0 rows): nothing to plot.",
            )
        base_counts = [int(x or 0) for x in (m.get("baseline_bin_counts") or [])]
        base_total = sum(base_counts)
        has_baseline = len(base_counts) == len(counts) and base_total > 0
        current = [c / total for c in counts]
        baseline = [b / base_total for b in base_counts] if has_baseline else []

        w, h, ml, mr, mt, mb = 560, 320, 58, 16, 40, 50
        pw, ph = w - ml - mr, h - mt - mb
        n = len(counts)
        top, ticks = _axis(max(current + baseline))

        def x(i: float) -> float:
            return ml + pw * i / n

        def y(v: float) -> float:
            return mt + ph * (1 - v / top)

        out = [_svg_open("score-histogram", w, h, "Score histogram against the training baseline")]
        out.append(_y_grid(ticks, y, ml, w - mr, _pct))
        slot = pw / n
        for i, (count, share) in enumerate(zip(counts, current, strict=True)):
            label = f"{_num(edges[i])} to {_num(edges[i + 1])}: {count:,} rows ({share:.1%})"
            if has_baseline:
                label += f"; training baseline {baseline[i]:.1%}"
            height = ph * share / top
            out.append(
                f'<rect class="bar" x="{x(i) + 1:.2f}" y="{y(share):.2f}" '
                f'width="{max(slot - 2, 1):.2f}" height="{height:.2f}" fill="{C_SCORES}" '
                f'fill-opacity="0.85" data-bin="{i}" data-count="{count}" '
                f'data-share="{share:.6f}"><title>{_e(label)}</title></rect>'
            )
        if has_baseline:
            d = [f"M{x(0):.2f},{y(baseline[0]):.2f}"]
            for i, share in enumerate(baseline):
                if i:
                    d.append(f"V{y(share):.2f}")
                d.append(f"H{x(i + 1):.2f}")
            out.append(
                f'<path class="baseline" d="{" ".join(d)}" fill="none" stroke="{C_BASELINE}" '
                f'stroke-width="2.5" stroke-linejoin="round" data-bins="{len(baseline)}">'
                f"<title>training baseline (re-binned to the same bins)</title></path>"
            )
        # x axis: bin edges, thinned to at most ~11 labels
        step = max(1, math.ceil((n + 1) / 11))
        for i in range(0, n + 1, step):
            out.append(_x_tick(x(i), mt + ph, _num(edges[i])))
        out.append(_axes(ml, mt, pw, ph))
        out.append(_axis_label_x(ml + pw / 2, h - 8, "score"))
        out.append(_axis_label_y(14, mt + ph / 2, "share of rows"))
        legend = [("rect", C_SCORES, f"partition {_ds(m.get('ds'))} ({total:,} rows)")]
        legend.append(
            ("line", C_BASELINE, "training baseline")
            if has_baseline
            else ("none", C_MUTED, "no training baseline recorded")
        )
        out.append(_legend(ml, 14, legend))
        out.append("</svg>")
        return "".join(out)

    # ------------------------------------------------------------------ PSI over time

    def _psi_points(self) -> list[dict[str, Any]]:
        by_ds: dict[date, dict[str, Any]] = {}
        for m in self.data.metrics:  # oldest first: a later row of the same ds wins,
            ds = m.get("ds")  # but a published row wins over a refused one
            if ds is None:
                continue
            held = by_ds.get(ds)
            if held is None or m.get("published") or not held.get("published"):
                by_ds[ds] = m
        days = sorted(by_ds)[-max(self.limit_runs, 1) :]
        return [by_ds[d] for d in days]

    def _psi_chart(self) -> str:
        points = self._psi_points()
        if not points:
            return _empty(
                "psi-over-time-empty",
                "No drift metrics yet: PSI appears once partitions have been scored.",
            )
        series = [
            ("psi_previous", "psi-previous", C_PREVIOUS, "vs previous partition"),
            ("psi_baseline", "psi-baseline", C_BASELINE, "vs training baseline"),
        ]
        values = [p.get(key) for p in points for key, *_ in series if p.get(key) is not None]
        if not values:
            return _empty(
                "psi-over-time-empty",
                "No PSI yet: it needs a previous published partition or a training baseline.",
            )
        warn, fail = self.job.monitoring.psi_warn, self.job.monitoring.psi_fail
        w, h, ml, mr, mt, mb = 560, 320, 58, 70, 40, 50
        pw, ph = w - ml - mr, h - mt - mb
        top, ticks = _axis(max([*values, warn, fail or 0.0]) * 1.1)
        days = [p["ds"] for p in points]
        first, span = days[0], (days[-1] - days[0]).days
        pad = 18.0

        def x(d: date) -> float:
            if span == 0:
                return ml + pw / 2
            return ml + pad + (pw - 2 * pad) * (d - first).days / span

        def y(v: float) -> float:
            return mt + ph * (1 - min(v, top) / top)

        out = [_svg_open("psi-over-time", w, h, "PSI per partition over time")]
        # background bands: stable / moderate shift / large shift
        out.append(
            f'<rect class="band band-ok" x="{ml}" y="{y(min(warn, top)):.2f}" width="{pw}" '
            f'height="{ph - (y(min(warn, top)) - mt):.2f}" fill="{C_OK}" fill-opacity="0.05"/>'
        )
        upper = fail if fail is not None else top
        out.append(
            f'<rect class="band band-warn" x="{ml}" y="{y(min(upper, top)):.2f}" width="{pw}" '
            f'height="{y(min(warn, top)) - y(min(upper, top)):.2f}" fill="{C_WARN}" '
            f'fill-opacity="0.07"/>'
        )
        if fail is not None:
            out.append(
                f'<rect class="band band-fail" x="{ml}" y="{mt}" width="{pw}" '
                f'height="{y(min(fail, top)) - mt:.2f}" fill="{C_FAIL}" fill-opacity="0.06"/>'
            )
        out.append(_y_grid(ticks, y, ml, ml + pw, lambda v: f"{v:.2f}"))
        for value, name, colour in ((warn, "warn", C_WARN), (fail, "fail", C_FAIL)):
            if value is None:
                continue
            out.append(
                f'<line class="threshold threshold-{name}" x1="{ml}" x2="{ml + pw}" '
                f'y1="{y(value):.2f}" y2="{y(value):.2f}" stroke="{colour}" stroke-width="1.5" '
                f'stroke-dasharray="6 4" data-value="{value}"/>'
                f'<text class="threshold-label" x="{ml + pw + 6}" y="{y(value) + 4:.2f}" '
                f'fill="{colour}" font-size="12">{name} {_e(_num(value))}</text>'
            )
        for key, css, colour, label in series:
            d, pen_down = [], False
            for p in points:
                v = p.get(key)
                if v is None:
                    pen_down = False
                    continue
                d.append(f"{'L' if pen_down else 'M'}{x(p['ds']):.2f},{y(v):.2f}")
                pen_down = True
            if d:
                out.append(
                    f'<path class="psi-line {css}" d="{" ".join(d)}" fill="none" '
                    f'stroke="{colour}" stroke-width="2.2" stroke-linejoin="round">'
                    f"<title>{_e(label)}</title></path>"
                )
        for key, css, colour, label in series:
            for p in points:
                v = p.get(key)
                if v is None:
                    continue
                published = bool(p.get("published"))
                tip = f"{_ds(p['ds'])} PSI {label} {v:.4f} · drift {p.get('drift_status')}" + (
                    "" if published else " · not published"
                )
                out.append(
                    f'<circle class="psi-point {css}{"" if published else " refused"}" '
                    f'cx="{x(p["ds"]):.2f}" cy="{y(v):.2f}" r="4.5" '
                    f'fill="{colour if published else "#fff"}" stroke="{colour}" '
                    f'stroke-width="2" data-ds="{_ds(p["ds"])}" data-value="{v:.6f}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
        for i in _thin(len(days), 7):
            out.append(_x_tick(x(days[i]), mt + ph, _short_date(days[i], days)))
        out.append(_axes(ml, mt, pw, ph))
        out.append(_axis_label_x(ml + pw / 2, h - 8, "partition (ds)"))
        out.append(_axis_label_y(14, mt + ph / 2, "PSI"))
        out.append(
            _legend(
                ml,
                14,
                [
                    ("line", C_PREVIOUS, "vs previous partition"),
                    ("line", C_BASELINE, "vs training baseline"),
                    ("dash", C_AXIS, "thresholds"),
                ],
            )
        )
        out.append("</svg>")
        return "".join(out)

    # ------------------------------------------------------------------ rows per ds

    def _rows_chart(self) -> str:
        by_ds: dict[date, dict[str, Any]] = {}
        for run in self.data.all_runs:  # oldest first
            ds = run.get("ds")
            if ds is None or (run.get("action") or "score") != "score":
                continue
            slot = by_ds.setdefault(ds, {"ok": None, "last": None})
            slot["last"] = run
            if _published(run):
                slot["ok"] = run
        if not by_ds:
            return _empty("rows-per-ds-empty", "No runs yet: nothing has been scored.")
        days = sorted(by_ds)[-max(self.limit_runs, 1) :]
        rows = [
            (
                int(by_ds[d]["ok"].get("output_rows") or 0) if by_ds[d]["ok"] else None,
                int(by_ds[d]["ok"].get("rejected_rows") or 0) if by_ds[d]["ok"] else 0,
            )
            for d in days
        ]
        w, h, ml, mr, mt, mb = 560, 300, 64, 16, 40, 50
        pw, ph = w - ml - mr, h - mt - mb
        top, ticks = _axis(max([(r or 0) + rej for r, rej in rows] + [1]))
        n = len(days)
        slot = pw / n
        bar_w = min(56.0, slot * 0.7)

        def y(v: float) -> float:
            return mt + ph * (1 - v / top)

        out = [_svg_open("rows-per-ds", w, h, "Rows scored per partition")]
        out.append(_y_grid(ticks, y, ml, ml + pw, _compact))
        for i, (d, (published, rejected)) in enumerate(zip(days, rows, strict=True)):
            cx = ml + slot * (i + 0.5)
            last = by_ds[d]["last"]
            if published is None:
                tip = f"{_ds(d)}: no successful run (last attempt {last.get('status')})"
                out.append(
                    f'<text class="failed-marker" x="{cx:.2f}" y="{mt + ph - 6:.2f}" '
                    f'text-anchor="middle" fill="{C_FAIL}" font-size="16" font-weight="700" '
                    f'data-ds="{_ds(d)}">✕<title>{_e(tip)}</title></text>'
                )
            else:
                tip = f"{_ds(d)}: {published:,} rows published"
                if rejected:
                    tip += f", {rejected:,} rows quarantined"
                out.append(
                    f'<rect class="bar" x="{cx - bar_w / 2:.2f}" y="{y(published):.2f}" '
                    f'width="{bar_w:.2f}" height="{ph * published / top:.2f}" fill="{C_ROWS}" '
                    f'rx="2" data-ds="{_ds(d)}" data-rows="{published}"><title>{_e(tip)}</title>'
                    f"</rect>"
                )
                if rejected:
                    out.append(
                        f'<rect class="bar-rejected" x="{cx - bar_w / 2:.2f}" '
                        f'y="{y(published + rejected):.2f}" width="{bar_w:.2f}" '
                        f'height="{ph * rejected / top:.2f}" fill="{C_REJECTED}" '
                        f'data-ds="{_ds(d)}" data-rows="{rejected}"><title>{_e(tip)}</title></rect>'
                    )
                if n <= 16:
                    out.append(
                        f'<text class="value" x="{cx:.2f}" y="{y(published + rejected) - 5:.2f}" '
                        f'text-anchor="middle" font-size="11" fill="{C_AXIS}">'
                        f"{_e(_compact(published))}</text>"
                    )
        for i in _thin(n, 8):
            out.append(_x_tick(ml + slot * (i + 0.5), mt + ph, _short_date(days[i], days)))
        out.append(_axes(ml, mt, pw, ph))
        out.append(_axis_label_x(ml + pw / 2, h - 8, "partition (ds)"))
        out.append(_axis_label_y(14, mt + ph / 2, "rows"))
        legend = [("rect", C_ROWS, "rows published")]
        if any(rej for _, rej in rows):
            legend.append(("rect", C_REJECTED, "rows quarantined"))
        if any(r is None for r, _ in rows):
            legend.append(("cross", C_FAIL, "no successful run"))
        out.append(_legend(ml, 14, legend))
        out.append("</svg>")
        return "".join(out)

    # ------------------------------------------------------------------ validation

    def _validation_chart(self) -> str:
        runs = list(reversed(self.data.runs))  # oldest first
        if not runs:
            return _empty("validation-outcomes-empty", "No runs yet.")
        if not any(r.get("validation_status") for r in runs):
            return _empty(
                "validation-outcomes-empty",
                "No validation results recorded for these runs.",
            )
        n = len(runs)
        w, ml, mr = 560, 16, 16
        cell = min(44.0, (w - ml - mr) / n)
        h, mt = 128, 44
        out = [_svg_open("validation-outcomes", w, h, "Validation outcome per run")]
        counts: dict[str, int] = {}
        for i, run in enumerate(runs):
            status = run.get("validation_status") or "not run"
            counts[status] = counts.get(status, 0) + 1
            colour = _validation_colour(status)
            failed = run.get("validation_failed")
            evaluated = run.get("validation_evaluated")
            x = ml + i * cell
            tip = f"{_ds(run.get('ds'))} · run {run.get('run_id')} · validation {status}" + (
                f" · {failed} of {evaluated} expectations failed" if evaluated else ""
            )
            out.append(
                f'<rect class="validation-cell" x="{x + 1:.2f}" y="{mt}" '
                f'width="{max(cell - 2, 1):.2f}" height="34" rx="4" fill="{colour}" '
                f'data-status="{_e(status)}" data-run-id="{_e(run.get("run_id"))}">'
                f"<title>{_e(tip)}</title></rect>"
            )
            mark = str(failed) if failed else ("✓" if _tone(status) == "ok" else "")
            if mark and cell >= 14:
                out.append(
                    f'<text x="{x + cell / 2:.2f}" y="{mt + 22}" text-anchor="middle" '
                    f'font-size="12" font-weight="700" fill="#fff">{_e(mark)}</text>'
                )
        days = [r.get("ds") for r in runs]
        real_days = [d for d in days if d]
        for i in _thin(n, 8):
            if days[i]:
                out.append(
                    f'<text class="tick" x="{ml + cell * (i + 0.5):.2f}" y="{mt + 52}" '
                    f'text-anchor="middle" font-size="11" fill="{C_AXIS}">'
                    f"{_e(_short_date(days[i], real_days))}</text>"
                )
        legend = [("rect", _validation_colour(s), f"{s} ({c})") for s, c in sorted(counts.items())]
        out.append(_legend(ml, 14, legend))
        out.append("</svg>")
        return "".join(out)

    # ------------------------------------------------------------------ challengers

    def _comparison_table(self, limit: int = 20) -> str:
        """Champion vs challenger per scored partition (``role = challenger`` metrics rows)."""
        rows = list(reversed(self.data.comparisons))[:limit]
        if not rows:
            return ""
        head = (
            "<tr><th>ds</th><th>challenger</th><th>vs champion</th><th>status</th>"
            '<th class="num">rows</th><th class="num">correlation</th>'
            '<th class="num">mean diff</th><th class="num">PSI vs champion</th>'
            '<th class="num">decision flips</th><th>error</th></tr>'
        )
        body = []
        for m in rows:
            status = m.get("challenger_status") or "unknown"
            flips = m.get("decision_flip_share")
            threshold = m.get("decision_threshold")
            cells = [
                f'<td class="ds">{_e(_ds(m.get("ds")))}</td>',
                f'<td class="challenger">{_e(m.get("model_reference"))}</td>',
                f'<td class="versions">v{_e(_opt(m.get("model_version")))} vs '
                f"v{_e(_opt(m.get('champion_version')))}</td>",
                f'<td class="challenger-status"><span class="pill status-'
                f'{"ok" if status == "ok" else "bad"}">{_e(status)}</span></td>',
                f'<td class="rows num">{_int(m.get("rows"))}</td>',
                f'<td class="correlation num">{_e(_num(m.get("score_correlation")))}</td>',
                f'<td class="mean-difference num">{_e(_num(m.get("mean_difference")))}</td>',
                f'<td class="psi-champion num">{_e(_num(m.get("psi_champion")))}</td>',
                '<td class="flip-share num">'
                + (
                    f"{_e(_pct(flips))} at {_e(_num(threshold))}"
                    if flips is not None and threshold is not None
                    else "—"
                )
                + "</td>",
                f'<td class="error">{_e(m.get("challenger_error") or "")}</td>',
            ]
            body.append(
                f'<tr class="comparison" data-run-id="{_e(m.get("run_id"))}" '
                f'data-model-version="{_e(m.get("model_version"))}" data-status="{_e(status)}">'
                + "".join(cells)
                + "</tr>"
            )
        return (
            '<section id="challengers-section"><h2>Champion vs challengers '
            '<span class="muted-h">(shadow scoring, latest partitions)</span></h2>'
            '<div class="scroll"><table id="challengers"><thead>'
            f"{head}</thead><tbody>" + "".join(body) + "</tbody></table></div>"
            '<p class="muted">Promote a challenger with <code>lakescore promote --job '
            f"{_e(self.job.name)} --version N</code>.</p></section>"
        )

    # ------------------------------------------------------------------ runs table

    def _runs_table(self) -> str:
        runs = self.data.runs
        shown = (
            f"latest {len(runs)} of {self.data.total_runs} attempts"
            if self.data.total_runs > len(runs)
            else f"{len(runs)} attempt{'s' if len(runs) != 1 else ''}"
        )
        if not runs:
            body = _empty(
                "runs-empty",
                f"No runs yet. Score a partition with `lakescore score --job {self.job.name} "
                "--ds YYYY-MM-DD` or trigger the DAG.",
            )
            return f'<section id="runs-section"><h2>Recent runs</h2>{body}</section>'
        head = (
            "<tr><th>status</th><th>ds</th><th>started (UTC)</th><th>duration</th>"
            '<th class="num">rows</th><th>model</th><th class="num">input v.</th>'
            '<th class="num">output v.</th><th>drift</th><th>validation</th>'
            '<th class="num">cost</th><th>error</th></tr>'
        )
        rows = [self._run_row(run) for run in runs]
        return (
            f'<section id="runs-section"><h2>Recent runs <span class="muted-h">({_e(shown)})'
            f'</span></h2><div class="scroll"><table id="runs"><thead>{head}</thead><tbody>'
            + "".join(rows)
            + "</tbody></table></div></section>"
        )

    def _run_row(self, run: dict[str, Any]) -> str:
        status = run.get("status") or "unknown"
        action = run.get("action") or "score"
        rows = run.get("output_rows")
        if rows is None:
            rows = run.get("input_rows")
        model = ""
        if run.get("model_name"):
            model = f"{run['model_name']} v{run.get('model_version')}"
            if run.get("model_alias"):
                model += f" @{run['model_alias']}"
        drift_status = run.get("drift_status")
        psi_values = (run.get("psi_previous"), run.get("psi_baseline"))
        if drift_status is None and run.get("run_id"):
            metrics = self.data.metrics_for_run(run["run_id"])
            if metrics:
                drift_status = metrics.get("drift_status")
                psi_values = (metrics.get("psi_previous"), metrics.get("psi_baseline"))
        drift = ""
        if drift_status:
            worst = max((v for v in psi_values if v is not None), default=None)
            drift = _drift_pill(drift_status) + (
                f' <span class="muted">PSI {_e(_num(worst))}</span>' if worst is not None else ""
            )
        action_note = f' <span class="muted">({_e(action)})</span>' if action != "score" else ""
        error_class = run.get("error_class") or ("error" if run.get("error") else "")
        cells = [
            f'<td class="status">{_status_pill(status)}{action_note}</td>',
            f'<td class="ds">{_e(_ds(run.get("ds")))}</td>',
            f'<td class="started">{_e(_ts(run.get("started_at")))}</td>',
            f'<td class="duration num">{_e(_duration(run.get("duration_s")))}</td>',
            f'<td class="rows num">{_int(rows)}</td>',
            f'<td class="model" data-model-version="{_e(run.get("model_version"))}">'
            f"{_e(model)}</td>",
            f'<td class="input-version num">{_e(_opt(run.get("input_version")))}</td>',
            f'<td class="output-version num">{_e(_opt(run.get("output_version")))}</td>',
            f'<td class="drift">{drift}</td>',
            f'<td class="validation">{self._validation_cell(run)}</td>',
            f'<td class="cost num">{self._cost_cell(run)}</td>',
            f'<td class="error">{_e(error_class)}</td>',
        ]
        row = (
            f'<tr class="run {_tone(status)}" data-run-id="{_e(run.get("run_id"))}" '
            f'data-attempt-id="{_e(run.get("attempt_id"))}" data-status="{_e(status)}">'
            + "".join(cells)
            + "</tr>"
        )
        if run.get("error"):  # the message gets the table's full width, under its run
            row += (
                f'<tr class="run-error" data-run-id="{_e(run.get("run_id"))}" '
                f'data-attempt-id="{_e(run.get("attempt_id"))}"><td colspan="{len(cells)}">'
                f"{_error_cell(run)}</td></tr>"
            )
        return row

    def _cost_cell(self, run: dict[str, Any]) -> str:
        """Cost of the run and per 1,000 predictions (lineage ``cost``/``cost_per_1k``, set
        when the platform has a ``cost`` model)."""
        cost = run.get("cost")
        if cost is None:
            return '<span class="muted">—</span>'
        currency = self.platform.cost.currency if self.platform.cost else ""
        text = f"{cost:.4f} {currency}".rstrip()
        if run.get("cost_per_1k") is not None:
            text += f' <span class="muted">({run["cost_per_1k"]:.5f} / 1k)</span>'
        return f'<span data-cost="{cost!r}">{text}</span>' if text else ""

    def _validation_cell(self, run: dict[str, Any]) -> str:
        status = run.get("validation_status")
        if not status:
            return '<span class="muted">—</span>'
        parts = [
            f'<span class="pill" style="background:{_validation_colour(status)}">'
            f"{_e(status)}</span>"
        ]
        failed, evaluated = run.get("validation_failed"), run.get("validation_evaluated")
        if evaluated is not None:
            parts.append(
                f' <span class="failed-count">{_e(failed or 0)}</span>'
                f'<span class="muted">/{_e(evaluated)} failed</span>'
            )
        report = run.get("validation_report")
        if report:
            href = self.artifact_href(report)
            if href:
                parts.append(
                    f' <a class="report-link" href="{_e(href)}" title="{_e(report)}">report</a>'
                )
            else:
                parts.append(
                    f' <span class="muted" title="{_e(report)}">report: {_e(report)}</span>'
                )
        return "".join(parts)

    def _footer(self) -> str:
        return (
            '<footer><p class="muted">Sources (read with delta-rs): lineage table '
            f"<code>{_e(self.platform.lineage_table)}</code> version "
            f"{_e(_opt(self.data.lineage_version))}, metrics table "
            f"<code>{_e(self.platform.metrics_table)}</code> version "
            f"{_e(_opt(self.data.metrics_version))}. Job config "
            f"<code>{_e(self.job.source_file)}</code>.</p></footer>"
        )


# --------------------------------------------------------------------------- SVG helpers


def _svg_open(svg_id: str, w: int, h: int, label: str) -> str:
    return (
        f'<svg id="{svg_id}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{_e(label)}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">'
        f"<title>{_e(label)}</title>"
    )


def _axis(vmax: float, target: int = 4) -> tuple[float, list[float]]:
    """A nice top of the axis above ``vmax`` and its tick values (starting at 0)."""
    if not vmax or vmax <= 0 or not math.isfinite(vmax):
        vmax = 1.0
    raw = vmax / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw - 1e-12)
    count = max(1, math.ceil(vmax / step - 1e-9))
    return step * count, [step * i for i in range(count + 1)]


def _y_grid(
    ticks: list[float], y: Callable[[float], float], x0: float, x1: float, fmt: Callable
) -> str:
    out = []
    for t in ticks:
        out.append(
            f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y(t):.2f}" y2="{y(t):.2f}" '
            f'stroke="{C_GRID}" stroke-width="1"/>'
            f'<text class="tick" x="{x0 - 6}" y="{y(t) + 4:.2f}" text-anchor="end" '
            f'font-size="11" fill="{C_AXIS}">{_e(fmt(t))}</text>'
        )
    return "".join(out)


def _x_tick(x: float, y0: float, label: str) -> str:
    return (
        f'<line class="tick-mark" x1="{x:.2f}" x2="{x:.2f}" y1="{y0}" y2="{y0 + 4}" '
        f'stroke="{C_AXIS}"/>'
        f'<text class="tick" x="{x:.2f}" y="{y0 + 17}" text-anchor="middle" font-size="11" '
        f'fill="{C_AXIS}">{_e(label)}</text>'
    )


def _axes(ml: float, mt: float, pw: float, ph: float) -> str:
    return (
        f'<path class="axis" d="M{ml},{mt} V{mt + ph} H{ml + pw}" fill="none" '
        f'stroke="{C_AXIS}" stroke-width="1"/>'
    )


def _axis_label_x(x: float, y: float, text: str) -> str:
    return (
        f'<text class="axis-label axis-label-x" x="{x:.2f}" y="{y:.2f}" text-anchor="middle" '
        f'font-size="12" fill="#334155">{_e(text)}</text>'
    )


def _axis_label_y(x: float, y: float, text: str) -> str:
    return (
        f'<text class="axis-label axis-label-y" x="{x:.2f}" y="{y:.2f}" text-anchor="middle" '
        f'font-size="12" fill="#334155" transform="rotate(-90 {x:.2f} {y:.2f})">{_e(text)}</text>'
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
            f'fill="#334155">{_e(label)}</text>'
        )
        cx += 19 + 6.6 * len(label) + 16
    out.append("</g>")
    return "".join(out)


def _thin(n: int, most: int) -> list[int]:
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


# --------------------------------------------------------------------------- HTML helpers


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _main(sections: list[str]) -> str:
    return '<main class="wrap">' + "".join(sections) + "</main>"


def _empty(element_id: str, message: str) -> str:
    return f'<p class="empty" id="{_e(element_id)}">{_e(message)}</p>'


def _card(title: str, value_html: str, note: str, key: str) -> str:
    return (
        f'<div class="card" id="card-{_e(key)}"><div class="card-title">{_e(title)}</div>'
        f'<div class="card-value">{value_html}</div><div class="card-note">{_e(note)}</div></div>'
    )


def _tone(status: str | None) -> str:
    s = (status or "").lower()
    if s in ("succeeded", "success", "passed", "ok"):
        return "ok"
    if s in ("failed", "fail", "error", "deadline_missed"):
        return "bad"
    if s in ("warn", "warned", "quarantined", "running", "skipped"):
        return "warn"
    return "other"


def _status_pill(status: str | None) -> str:
    s = status or "unknown"
    return f'<span class="pill status-{_e(_tone(s))}" data-status="{_e(s)}">{_e(s)}</span>'


def _drift_pill(status: str | None) -> str:
    s = status or "unknown"
    colour = {"ok": C_OK, "warn": C_WARN, "fail": C_FAIL}.get(s, C_MUTED)
    return f'<span class="pill drift-{_e(s)}" style="background:{colour}">{_e(s)}</span>'


def _validation_colour(status: str) -> str:
    return {"ok": C_OK, "bad": C_FAIL, "warn": C_WARN}.get(_tone(status), C_MUTED)


def _error_cell(run: dict[str, Any]) -> str:
    """The error's first line; the whole text (tracebacks, long messages) folds out."""
    error = str(run.get("error") or "").strip()
    if not error:
        return ""
    first = error.splitlines()[0]
    short = first if len(first) <= 300 else first[:299] + "…"
    if short == error:
        return f'<div class="error-text">{_e(short)}</div>'
    return (
        f'<details class="error-text"><summary>{_e(short)}</summary>'
        f"<pre>{_e(error)}</pre></details>"
    )


def _published(run: dict[str, Any]) -> bool:
    return run.get("status") == "succeeded" and run.get("output_version") is not None


def _ds(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def _short_date(d: date, all_days: list[date]) -> str:
    years = {x.year for x in all_days if isinstance(x, date)}
    if not isinstance(d, date):
        return str(d)
    return d.strftime("%b %d") if len(years) <= 1 else d.strftime("%Y-%m-%d")


def _ts(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _int(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _opt(value: Any) -> str:
    return "" if value is None else str(value)


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{round(float(value), 4):g}"


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%" if value * 100 >= 1 or value == 0 else f"{value * 100:.1f}%"


def _compact(value: float) -> str:
    value = float(value)
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


CSS = """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f1f5f9;--card:#fff;
--ok:#16a34a;--bad:#dc2626;--warn:#d97706;--other:#64748b;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg)}
.wrap{max-width:1240px;margin:0 auto;padding:0 28px}
header{background:#0f172a;color:#f8fafc;padding:22px 0 18px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650}
header .muted-h{color:#94a3b8;font-weight:400;font-size:18px}
header .description{margin:4px 0 12px;color:#cbd5e1;white-space:pre-line;max-width:900px}
header a.back{color:#93c5fd;text-decoration:none;font-size:13px}
.sub{color:#cbd5e1;margin:0}
dl.facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:10px 0 0}
.fact dt{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#94a3b8}
.fact dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;
word-break:break-all}
main{padding-top:20px;padding-bottom:32px}
h2{font-size:16px;margin:0 0 4px}
.muted-h{color:var(--muted);font-weight:400}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:14px;margin-bottom:18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;
box-shadow:0 1px 2px rgba(15,23,42,.04)}
.card-title{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card-value{font-size:22px;font-weight:650;margin:4px 0 2px}
.card-value .pill{font-size:14px;padding:3px 12px}
.card-note{color:var(--muted);font-size:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;margin-bottom:18px;
align-items:start}
figure.chart{margin:0;background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:16px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
.caption{color:var(--muted);font-size:12.5px;margin:0 0 8px}
.chart-svg{width:100%;height:auto;display:block}
.chart-svg rect.bar:hover,.chart-svg circle:hover{opacity:.75}
.empty{color:var(--muted);font-style:italic;padding:28px 16px;text-align:center;
border:1px dashed #cbd5e1;border-radius:10px;margin:8px 0;background:#f8fafc}
section#runs-section{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:16px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}
th{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);font-weight:600;
text-align:left;border-bottom:2px solid var(--line);padding:6px 10px;white-space:nowrap}
td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
th.num,td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.run.bad td:first-child{box-shadow:inset 3px 0 0 var(--bad)}
tr.run.ok td:first-child{box-shadow:inset 3px 0 0 var(--ok)}
tr.run.warn td:first-child{box-shadow:inset 3px 0 0 var(--warn)}
tbody tr:hover{background:#f8fafc}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
color:#fff;background:var(--other)}
.pill.status-ok{background:var(--ok)}.pill.status-bad{background:var(--bad)}
.pill.status-warn{background:var(--warn)}
td.error{color:#b91c1c;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
tr.run:has(+ tr.run-error) td{border-bottom:none}
tr.run-error td{white-space:normal;padding:0 10px 9px 22px;box-shadow:inset 3px 0 0 var(--bad)}
td.model,td.validation{white-space:normal;min-width:120px}
details.error-text summary{cursor:pointer;color:#b91c1c}
details.error-text pre{white-space:pre-wrap;word-break:break-word;background:#fef2f2;
border:1px solid #fecaca;border-radius:6px;padding:8px;font-size:12px;max-height:280px;overflow:auto}
.error-text{color:#b91c1c;white-space:normal}
a{color:var(--accent)}
a.report-link{font-weight:600}
footer{margin-top:18px;font-size:12px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
#jobs{background:var(--card)}
@media print{body{background:#fff}.charts{grid-template-columns:1fr}}
"""


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="lakescore report">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
