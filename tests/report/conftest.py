"""Helpers for the report tests: a small conf tree of their own (no MLflow, no Spark), lineage
and metrics rows written through lakescore's own writers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import PLATFORM_YAML, REPO


def make_conf(root: Path, *, description: str = "", model: str = "churn_report") -> Path:
    """``<root>/conf`` with the test platform (warehouse under ``root``) and job ``churn``."""
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True, exist_ok=True)
    (conf / "platform.yaml").write_text(PLATFORM_YAML.format(root=root, jars=REPO / "var" / "jars"))
    job = {
        "name": "churn",
        "description": description,
        "model": {"name": model, "alias": "champion", "positive_class": 1},
        "features": {
            "table": "features/churn",
            "partition_column": "ds",
            "entity_keys": ["customer_id"],
        },
        "output": {"table": "scores/churn"},
        "monitoring": {"bins": 10, "psi_warn": 0.1, "psi_fail": 0.25},
    }
    (conf / "jobs" / "churn.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return conf


def lineage_record(job: str, ds: date, status: str, started: datetime, **fields: Any) -> Any:
    import uuid

    from lakescore.lakehouse.lineage import LineageRecord

    return LineageRecord(
        attempt_id=uuid.uuid4().hex,
        run_id=fields.pop("run_id", f"{job}-{ds}-{uuid.uuid4().hex[:8]}"),
        action="score",
        job=job,
        ds=ds,
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=fields.pop("seconds", 42.0)),
        **fields,
    )


def metrics_for(
    run_id: str,
    job: str,
    ds: date,
    counts: list[int],
    *,
    baseline: list[int] | None,
    psi_previous: float | None,
    psi_baseline: float | None,
    status: str = "ok",
    published: bool = True,
    computed_at: datetime,
    model_version: int = 1,
) -> dict[str, Any]:
    from lakescore.quality.monitoring import DriftReport, ScoreDistribution, bin_edges, metrics_row

    distribution = ScoreDistribution(
        rows=sum(counts),
        mean=0.3,
        std=0.1,
        min=0.0,
        max=1.0,
        quantiles={"0.5": 0.3},
        bin_edges=bin_edges(0.0, 1.0, len(counts)),
        bin_counts=counts,
    )
    report = DriftReport(
        distribution,
        previous_ds=ds - timedelta(days=1) if psi_previous is not None else None,
        psi_previous=psi_previous,
        baseline_bin_counts=baseline,
        psi_baseline=psi_baseline,
        status=status,
    )
    return metrics_row(
        report,
        run_id=run_id,
        job=job,
        ds=ds,
        model_name="churn_report",
        model_version=model_version,
        computed_at=computed_at,
        published=published,
    )


BASELINE = [300, 260, 180, 110, 70, 40, 20, 12, 6, 2]
DAY_COUNTS = [
    [310, 250, 175, 115, 72, 38, 22, 10, 6, 2],
    [280, 255, 190, 120, 75, 42, 20, 10, 6, 2],
    [240, 240, 200, 140, 85, 50, 25, 12, 6, 2],
]


def seed_history(platform: Any, job: str = "churn") -> dict[str, Any]:
    """Three published days (lineage + metrics) and one failed attempt after them."""
    from lakescore.lakehouse.lineage import append_lineage
    from lakescore.quality.monitoring import append_metrics

    days = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    t0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    records, metrics = [], []
    psi = [(None, 0.004), (0.006, 0.008), (0.03, 0.05)]
    for i, (day, counts) in enumerate(zip(days, DAY_COUNTS, strict=True)):
        started = t0 + timedelta(minutes=10 * i)
        record = lineage_record(
            job,
            day,
            "succeeded",
            started,
            input_table="features/churn",
            input_version=4,
            input_rows=sum(counts),
            output_table="scores/churn",
            output_version=i + 1,
            output_rows=sum(counts),
            model_name="churn_report",
            model_version=1,
            model_alias="champion",
            validation_status="passed",
            validation_evaluated=9,
            validation_failed=0,
        )
        records.append(record)
        metrics.append(
            metrics_for(
                record.run_id,
                job,
                day,
                counts,
                baseline=BASELINE,
                psi_previous=psi[i][0],
                psi_baseline=psi[i][1],
                computed_at=started + timedelta(seconds=30),
            )
        )
    # the first run's validation report, where the run puts them (<reports_root>/<job>/<ds>/<run>/)
    first = records[0]
    report = (
        Path(platform.reports_root) / job / days[0].isoformat() / first.run_id / "validation.json"
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text('{"success": true, "seeded": "by the report tests"}')
    first.validation_report = str(report)
    failed = lineage_record(
        job,
        days[-1],
        "failed",
        t0 + timedelta(hours=1),
        error_class="BadInputError",
        error="job 'churn', ds '2026-11-20': partition ds=2026-11-20 not found",
        validation_status="failed",
        validation_evaluated=9,
        validation_failed=2,
    )
    records.append(failed)
    append_lineage(platform.lineage_table, records)
    append_metrics(platform.metrics_table, metrics)
    return {"days": days, "records": records, "metrics": metrics}
