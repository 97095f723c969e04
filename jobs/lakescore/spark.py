"""The one Spark session builder, and the Spark conf it is made of.

:func:`spark_conf` is what both launch paths use: :func:`get_spark_session` (the CLI, tests,
an in-process run) and the Airflow side's spark-submit (``--conf`` pairs, ``--jars``), so a job
runs with the same settings however it was started. pyspark is imported lazily: the Airflow
side imports this module at DAG-parse time only to build the submit command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakescore import storage
from lakescore.config import PlatformConfig
from lakescore.errors import ScoringFailure

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Settings lakescore relies on whatever the profile says.
REQUIRED_CONF = {
    # Partition values come from the Delta log / the table schema, never from directory names.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    # Tables stay readable by every Delta reader (delta-rs, DuckDB, Trino): no deletion
    # vectors unless a job asks for them on purpose.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}


# The s3a filesystem's jars (hadoop-aws, the AWS SDK bundle: 690 MB, 1.5 s of session start):
# on the classpath only when the platform uses object storage.
_S3A_JARS = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-")


def uses_object_store(platform: PlatformConfig) -> bool:
    """The warehouse is on object storage, or an S3 endpoint is configured (feature tables
    or model artifacts there)."""
    return storage.is_object_store(platform.warehouse) or platform.storage.s3.endpoint is not None


def delta_jars(platform: PlatformConfig) -> list[str]:
    """The jars fetched by ``make jars``; a clear error when they are missing."""
    jars_dir = Path(platform.spark.jars_dir)
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if uses_object_store(platform):
        if not any(Path(j).name.startswith("hadoop-aws-") for j in jars):
            raise ScoringFailure(
                f"no hadoop-aws jar in {jars_dir} (needed for s3:// tables): run `make jars`",
                file=str(jars_dir),
            )
    else:
        jars = [j for j in jars if not Path(j).name.startswith(_S3A_JARS)]
    if not any(Path(j).name.startswith("delta-spark_") for j in jars):
        raise ScoringFailure(
            f"no delta-spark jar in {jars_dir}: run `make jars` (fetches them from Maven "
            "Central at install time; nothing is downloaded at run time)",
            file=str(jars_dir),
        )
    return jars


def spark_conf(platform: PlatformConfig, profile: str | None = None) -> dict[str, str]:
    """Every Spark setting of a profile, with the Delta extension, jars and interpreter."""
    resolved = platform.spark.resolved_profile(profile or platform.spark.default_profile)
    conf = {
        **DELTA_SESSION_CONF,
        "spark.jars": ",".join(delta_jars(platform)),
        "spark.pyspark.python": sys.executable,
        **(storage.spark_s3a_conf(platform.storage) if uses_object_store(platform) else {}),
        **resolved.conf,
        **REQUIRED_CONF,
    }
    for key, value in openlineage_conf(platform, conf["spark.jars"]).items():
        conf[key] = _join_java_options(conf.get(key), value) if key == _DRIVER_OPTIONS else value
    archive = class_archive(platform)
    if archive.exists():
        conf[_DRIVER_OPTIONS] = _join_java_options(
            conf.get(_DRIVER_OPTIONS), f"-XX:SharedArchiveFile={archive}"
        )
    conf["spark.master"] = resolved.master or "local[2]"
    return conf


_DRIVER_OPTIONS = "spark.driver.extraJavaOptions"


def class_archive(platform: PlatformConfig) -> Path:
    """The driver JVM's class-data-sharing archive built by ``make install``
    (``jobs/jvm/build_class_archive.py``): used when present, a start-up optimisation only."""
    return Path(platform.spark.jars_dir) / "classes.jsa"


def _join_java_options(existing: str | None, extra: str) -> str:
    return f"{existing} {extra}" if existing and extra not in existing else existing or extra


def openlineage_conf(platform: PlatformConfig, jars: str) -> dict[str, str]:
    """The openlineage-spark listener's settings, when enabled and its jar was fetched.

    Under Airflow, the Spark provider adds the parent job (the Airflow task run) so Spark's
    events join the Airflow run.
    """
    spec = platform.openlineage
    if not spec.spark_listener or "openlineage-spark" not in jars:
        return {}
    conf = {
        # The listener looks for connector extensions through java.security.SecureClassLoader;
        # Java 17 refuses that reflective access unless the module is opened (else a warning
        # with a stack trace on every Spark job).
        "spark.driver.extraJavaOptions": "--add-opens=java.base/java.security=ALL-UNNAMED",
        "spark.extraListeners": "io.openlineage.spark.agent.OpenLineageSparkListener",
        "spark.openlineage.namespace": spec.namespace,
        "spark.openlineage.transport.type": spec.transport,
    }
    if spec.transport == "file":
        Path(spec.file).parent.mkdir(parents=True, exist_ok=True)
        conf["spark.openlineage.transport.location"] = spec.file
    elif spec.transport == "http" and spec.url:
        conf["spark.openlineage.transport.url"] = spec.url
    return conf


def get_spark_session(
    platform: PlatformConfig,
    profile: str | None = None,
    app_name: str = "lakescore",
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the active session or build one from the profile.

    Under spark-submit the JVM already exists and ``--conf`` set the same values
    (:func:`spark_conf`); here ``getOrCreate`` then simply returns that session.
    """
    import warnings

    from pyspark.sql import SparkSession

    # pyspark 4.2 warns that pandas 3 is "not yet fully supported"; lakescore exchanges data
    # with Python workers through Arrow (mapInArrow), not pandas.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = SparkSession.getActiveSession()
    if session is None:
        builder = SparkSession.builder.appName(app_name)
        for key, value in {**spark_conf(platform, profile), **(extra_conf or {})}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
    _quiet_openlineage(session)
    _quiet_task_failures(session)
    return session


# A failed task's Python exception reaches the driver, where lakescore turns it into one
# line naming the job, partition and model (lakescore.run.score.worker_failure; `-v` prints
# it whole). These loggers would print it again, as Java stack traces, on stderr.
TASK_FAILURE_LOGGERS = (
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
    "org.apache.spark.util.Utils",
    "org.apache.spark.sql.execution.datasources.FileFormatWriter",
)


def _quiet_task_failures(session: SparkSession) -> None:
    """Task failures' stack traces stay off stderr unless ``LAKESCORE_VERBOSE`` is set (the
    CLI's ``-v``)."""
    if os.environ.get("LAKESCORE_VERBOSE"):
        return
    try:
        jvm = session.sparkContext._jvm  # type: ignore[attr-defined]
        level = jvm.org.apache.logging.log4j.Level.getLevel("FATAL")
        for name in TASK_FAILURE_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)
    except Exception:  # a log4j change must never stop a run
        pass


def _quiet_openlineage(session: SparkSession) -> None:
    """The openlineage-spark listener logs an ERROR for every Spark job it cannot attach to a
    SQL execution (harmless, and many per run). Lineage is best effort: keep it quiet."""
    try:
        jvm = session.sparkContext._jvm  # type: ignore[attr-defined]
        level = jvm.org.apache.logging.log4j.Level.getLevel("FATAL")
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel("io.openlineage", level)
    except Exception:  # a log4j change must never stop a run
        pass
