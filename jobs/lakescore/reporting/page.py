"""The report's HTML: the Jinja2 templates in ``reporting/templates/`` filled with the values of
:mod:`lakescore.reporting.data` and the charts of :mod:`lakescore.reporting.charts`.

Escaping: every ``{{ value }}`` is HTML-escaped by the same rule as the charts
(:func:`lakescore.reporting.charts.esc`, quotes included); charts and macros arrive as markup.
Templates are written indented, one element a line; when a template is loaded, a newline and
the indentation next to a tag are dropped (:class:`_CompactLoader`), so the page stays as
compact as hand-built HTML and a table row stays on one line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from lakescore.reporting import charts, data

if TYPE_CHECKING:
    from lakescore.config import PlatformConfig, ScoringJob

TEMPLATES = Path(__file__).with_name("templates")
_NEXT_TO_TAG = re.compile(r"(?<=>)\n\s*|\n\s*(?=<)")


class _CompactLoader(FileSystemLoader):
    """Loads templates without the line breaks (and their indentation) next to tags."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = super().get_source(environment, template)
        return _NEXT_TO_TAG.sub("", source), filename, uptodate


def _finalize(value: Any) -> Any:
    """Every printed value: markup as it is, ``None`` as nothing, the rest escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(charts.esc(value))


def ts(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def error_summary(error: Any) -> tuple[str, bool]:
    """The error's first line (at most 300 characters) and whether there is more to fold out
    (tracebacks, long messages)."""
    text = str(error or "").strip()
    if not text:
        return "", False
    first = text.splitlines()[0]
    short = first if len(first) <= 300 else first[:299] + "…"
    return short, short != text


def rate_colour(rate: float) -> str:
    return charts.C_OK if rate >= 0.95 else (charts.C_WARN if rate >= 0.7 else charts.C_FAIL)


@functools.cache
def environment() -> Environment:
    """The one template environment (templates are compiled once per process)."""
    env = Environment(
        loader=_CompactLoader(TEMPLATES),
        autoescape=True,
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ds=charts.ds_text,
        ts=ts,
        duration=duration,
        int=lambda v: "" if v is None else f"{int(v):,}",
        opt=lambda v: "" if v is None else str(v),
        num=charts.num,
        pct=charts.pct,
        repr=repr,
        tone=data.tone,
        drift_colour=charts.drift_colour,
        validation_colour=charts.validation_colour,
        rate_colour=rate_colour,
        error_summary=error_summary,
    )
    return env


def job_page(
    job: ScoringJob,
    report: data.ReportData,
    *,
    platform: PlatformConfig,
    limit_runs: int,
    artifact_href: Callable[[str], str | None],
    index_href: str | None,
    now: datetime,
) -> str:
    """A job's report page from its data."""
    monitoring = job.monitoring
    histogram = data.score_histogram(report)
    shown = (
        f"latest {len(report.runs)} of {report.total_runs} attempts"
        if report.total_runs > len(report.runs)
        else f"{len(report.runs)} attempt{'s' if len(report.runs) != 1 else ''}"
    )
    svg = {
        "histogram": charts.score_histogram(histogram),
        "psi": charts.psi_over_time(
            data.psi_points(report.metrics, limit_runs), monitoring.psi_warn, monitoring.psi_fail
        ),
        "rows": charts.rows_per_partition(data.rows_per_partition(report.all_runs, limit_runs)),
        "validation": charts.validation_per_run(
            data.validation_outcomes(report.runs), any_runs=bool(report.runs)
        ),
    }
    facts = [
        ("model", job.model.reference),
        ("feature table", job.features.table),
        ("output table", job.output.table),
        ("schedule", job.schedule.cron or "none"),
        ("owner", job.owner),
        ("generated", f"{ts(now)} UTC"),
    ]
    return (
        environment()
        .get_template("job.html")
        .render(
            title=f"lakescore · {job.name}",
            job=job,
            platform=platform,
            data=report,
            facts=facts,
            summary=data.job_summary(report),
            histogram=histogram,
            charts={key: Markup(value) for key, value in svg.items()},
            comparisons=data.latest_comparisons(report),
            lines=data.run_lines(report),
            shown=shown,
            currency=platform.cost.currency if platform.cost else "",
            artifact_href=artifact_href,
            index_href=index_href,
        )
    )


@dataclass(frozen=True)
class IndexEntry:
    name: str
    model: str = ""
    run: dict[str, Any] | None = None
    error: str | None = None  # a broken job file


def index_page(
    platform: PlatformConfig,
    job_names: Iterable[str],
    *,
    job_href: Callable[[str], str],
    now: datetime,
) -> str:
    """The list of jobs with their model and last run, a broken job file with its error."""
    from lakescore.config import load_job
    from lakescore.errors import LakescoreError

    last = data.last_run_per_job(platform)
    entries = []
    for name in job_names:
        try:
            job = load_job(name, platform=platform)
        except LakescoreError as exc:
            entries.append(IndexEntry(name, error=str(exc)))
            continue
        entries.append(IndexEntry(job.name, job.model.reference, last.get(job.name)))
    return (
        environment()
        .get_template("index.html")
        .render(title="lakescore reports", entries=entries, job_href=job_href, generated=now)
    )
