"""The public surface an orchestrator uses: everything ``plugins/lakescore_airflow`` needs
from the core, and nothing else.

The Airflow side (DAG factory, operators, callbacks, report plugin) imports only this module
(and the core never imports the Airflow side), so what Airflow depends on is one list,
below. Names resolve on first use (PEP 562): importing this module at DAG-parse time costs
nothing, and a name's own module is imported only when the task that needs it runs.

Example::

    from lakescore.orchestration import load_job, load_platform, partition_info

    platform = load_platform()
    job = load_job("churn", platform=platform)
    partition_info(job.features.table, job.features.partition_column, day)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and editors (EXPORTS resolves them)
    from lakescore.config import (  # noqa: F401
        JOB_NAME_PATTERN,
        PlatformConfig,
        ScoringJob,
        list_job_names,
        load_job,
        load_platform,
    )
    from lakescore.driver.client import (  # noqa: F401
        DriverClient,
        DriverLost,
        DriverUnavailable,
        describe_event,
    )
    from lakescore.driver.protocol import RunBody, TaskIds  # noqa: F401
    from lakescore.errors import BadInputError, ConfigError, LakescoreError  # noqa: F401
    from lakescore.lakehouse.lineage import (  # noqa: F401
        AirflowIds,
        LineageRecord,
        append_lineage,
        find_lineage,
        utcnow,
    )
    from lakescore.lakehouse.tables import (  # noqa: F401
        MAX_FUTURE_DAYS,
        parse_partition_date,
        partition_info,
        table_columns,
        table_exists,
    )
    from lakescore.ml.models import check_signature, resolve_model_version  # noqa: F401
    from lakescore.ops.forecast import check_window, record_window_warning  # noqa: F401
    from lakescore.reporting.report import (  # noqa: F401
        default_artifact_href,
        render_index,
        render_job_report,
    )
    from lakescore.run.range import chunk_days, range_days  # noqa: F401
    from lakescore.spark import spark_conf  # noqa: F401

#: Each public name and the module that owns it.
EXPORTS: dict[str, str] = {
    # configuration: the one loader (cheap; the DAG factory calls it at parse time)
    "JOB_NAME_PATTERN": "lakescore.config",
    "PlatformConfig": "lakescore.config",
    "ScoringJob": "lakescore.config",
    "list_job_names": "lakescore.config",
    "load_job": "lakescore.config",
    "load_platform": "lakescore.config",
    # errors: bad input (no retry) vs failure
    "BadInputError": "lakescore.errors",
    "ConfigError": "lakescore.errors",
    "LakescoreError": "lakescore.errors",
    # feature partitions, JVM-free (the sensor)
    "MAX_FUTURE_DAYS": "lakescore.lakehouse.tables",
    "parse_partition_date": "lakescore.lakehouse.tables",
    "partition_info": "lakescore.lakehouse.tables",
    "table_columns": "lakescore.lakehouse.tables",
    "table_exists": "lakescore.lakehouse.tables",
    # the model version a DAG run pins
    "check_signature": "lakescore.ml.models",
    "resolve_model_version": "lakescore.ml.models",
    # lineage rows (failure callbacks, outcome reuse)
    "AirflowIds": "lakescore.lakehouse.lineage",
    "LineageRecord": "lakescore.lakehouse.lineage",
    "append_lineage": "lakescore.lakehouse.lineage",
    "find_lineage": "lakescore.lakehouse.lineage",
    "utcnow": "lakescore.lakehouse.lineage",
    # the batch window
    "check_window": "lakescore.ops.forecast",
    "record_window_warning": "lakescore.ops.forecast",
    # backfills: the days of a range and their chunks
    "chunk_days": "lakescore.run.range",
    "range_days": "lakescore.run.range",
    # the warm driver (lakescore driver): run on it when it answers, else spark-submit
    "DriverClient": "lakescore.driver.client",
    "DriverLost": "lakescore.driver.client",
    "DriverUnavailable": "lakescore.driver.client",
    "describe_event": "lakescore.driver.client",
    "RunBody": "lakescore.driver.protocol",
    "TaskIds": "lakescore.driver.protocol",
    # spark-submit: the same Spark conf the CLI's session uses
    "spark_conf": "lakescore.spark",
    # the report pages the UI plugin serves
    "default_artifact_href": "lakescore.reporting.report",
    "render_index": "lakescore.reporting.report",
    "render_job_report": "lakescore.reporting.report",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(EXPORTS[name]), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return __all__
