"""A job's report: one self-contained HTML page a person would rather look at than read.

Everything on it comes from two Delta tables, read with delta-rs (no JVM, no MLflow server):

* the **lineage table** (one row per run attempt): the runs table, rows scored per partition,
  validation outcomes;
* the **metrics table** (one row per scored partition): the score histogram of the latest
  published run against the model's training baseline, and PSI over time against the job's
  ``monitoring.psi_warn`` / ``psi_fail`` thresholds.

This module is the public surface (the CLI and the Airflow plugin call it). The work is in
three parts: :mod:`lakescore.reporting.data` gathers and derives the values (pure functions of
table rows), :mod:`lakescore.reporting.charts` draws them as inline SVG, and
:mod:`lakescore.reporting.page` fills the Jinja2 templates in ``reporting/templates/``.

The page has no external assets and no JavaScript: inline CSS and inline SVG. Every chart
element has a stable id / class (``svg#score-histogram rect.bar``,
``svg#psi-over-time circle.psi-point``, ``table#runs tr.run`` ...) so tests and scrapers can
find them. All text from the tables and the config is HTML-escaped.

``lakescore report --job churn`` writes it to ``<reports_root>/<job>/index.html``; the Airflow
plugin ``lakescore_airflow/report_plugin.py`` serves the same page behind Airflow's login.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lakescore.errors import BadInputError
from lakescore.reporting.data import ReportData, load_report_data

if TYPE_CHECKING:
    from lakescore.config import PlatformConfig

__all__ = [
    "ReportData",
    "default_artifact_href",
    "default_report_path",
    "load_report_data",
    "render_index",
    "render_job_report",
    "write_job_report",
]

ArtifactHref = Callable[[str], "str | None"]


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
    from lakescore.reporting.page import job_page

    job = load_job(job_name, platform=platform)
    return job_page(
        job,
        load_report_data(platform, job.name, limit_runs=limit_runs),
        platform=platform,
        limit_runs=limit_runs,
        artifact_href=artifact_href or default_artifact_href,
        index_href=index_href,
        now=now or datetime.now(UTC),
    )


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
    from lakescore.reporting.page import index_page

    return index_page(platform, job_names, job_href=job_href, now=now or datetime.now(UTC))
