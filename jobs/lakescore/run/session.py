"""Stage ``spark_start``: the Spark session a run scores in, and the models shipped to it.

The JVM is launched in a background thread (:class:`BackgroundSession`) once the partition
checks passed, so its start-up (seconds) overlaps the models' resolution, download and load;
a missing partition never starts a JVM.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.config import PlatformConfig, ScoringJob
from lakescore.lakehouse import tables
from lakescore.ml import shadow as shadow_scoring
from lakescore.ml.models import ModelScorer, ResolvedModel, shippable_estimator
from lakescore.ml.scoring import warm_python_workers
from lakescore.run.context import RunContext
from lakescore.run.resolve import RunModels

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class BackgroundSession:
    """Builds the Spark session in a thread, then warms the Python workers (and the output
    table's Delta snapshot when delta-spark will publish): the JVM launch and those first-use
    costs (seconds) overlap the driver's model resolution, download and load."""

    def __init__(self, platform: PlatformConfig, job: ScoringJob) -> None:
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._start, args=(platform, job), name="lakescore-spark-start", daemon=True
        )
        self._thread.start()

    def _start(self, platform: PlatformConfig, job: ScoringJob) -> None:
        from lakescore.spark import get_spark_session

        try:
            self._session = get_spark_session(
                platform, job.spark_profile, app_name=f"lakescore-{job.name}"
            )
        except BaseException as exc:  # handed to the caller by session()
            self._error = exc
            return
        # Best effort: a real problem is reported by the step that meets it.
        with contextlib.suppress(Exception):
            warm_python_workers(self._session)
        with contextlib.suppress(Exception):
            if tables.table_exists(job.output.table) and not tables.commits_with_delta_rs(
                job.output.table
            ):  # only delta-spark's publish path reads the table's snapshot in the JVM
                tables.warm_delta_snapshots(self._session, [job.output.table])

    def settle(self) -> None:
        """Wait for the start to finish (its output then comes before the run's error)."""
        self._thread.join()

    def session(self) -> SparkSession:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session


@dataclass(frozen=True)
class ShippedModel:
    """How the Python workers get the champion: a zip added to the Spark application
    (``archive``) or a broadcast of the estimator the driver loaded (``estimator``)."""

    archive: str | None
    estimator: Any


def attach_session(
    ctx: RunContext,
    starting: BackgroundSession | None,
    spark: SparkSession | None,
    models: RunModels,
) -> tuple[SparkSession, ShippedModel]:
    """The session to score in (the caller's, or the one started in the background), tagged
    with the run's job group, with the champion and challengers shipped to its workers."""
    with ctx.stages("spark_start"):
        if starting is not None:
            spark = starting.session()
        assert spark is not None and models.model_dir is not None and models.scorer is not None
        sc = spark.sparkContext
        ctx.record.spark_app_id = sc.applicationId
        ctx.record.spark_master = sc.master
        sc.setJobGroup(ctx.run_id, f"lakescore {ctx.job.name} {ctx.day}", interruptOnCancel=True)
        shadow_scoring.keep_scan_locations(spark)
        archive, estimator = ship_model(spark, models.model_dir, models.model, models.scorer)
        shadow_scoring.ship_challengers(models.challengers, partial(ship_model, spark))
    return spark, ShippedModel(archive, estimator)


_ESTIMATOR_BROADCASTS: dict[tuple[str, str], Any] = {}


def ship_model(
    spark: SparkSession, model_dir: Path, model: ResolvedModel, scorer: ModelScorer
) -> tuple[str | None, Any]:
    """(shipped archive name, estimator broadcast): how the Python workers get the model.

    A scikit-learn, XGBoost or LightGBM model goes as a Spark broadcast of the estimator the
    driver has loaded (and checked): the workers unpickle it with that library alone, without importing MLflow
    (seconds per worker), in local mode and on a cluster alike; one broadcast per model
    version and Spark application. Other models go to executors on other hosts as a zip
    through ``SparkContext.addArchive`` (Spark unpacks it; ``SparkFiles.get(name)`` is the
    folder); local mode reads the driver's copy directly."""
    sc = spark.sparkContext
    if scorer.native_estimator is not None:
        key = (sc.applicationId, str(model_dir))
        if key not in _ESTIMATOR_BROADCASTS:
            _ESTIMATOR_BROADCASTS[key] = sc.broadcast(
                shippable_estimator(model_dir, scorer.native_estimator)
            )
        return None, _ESTIMATOR_BROADCASTS[key]
    return _ship_model_archive(spark, model_dir, model), None


def _ship_model_archive(spark: SparkSession, model_dir: Path, model: ResolvedModel) -> str | None:
    """``addFile(dir, recursive=True)`` is refused for local folders on a cluster: a zip."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return None
    archive = model_dir.parent / f"lakescore-model-{model.name}-v{model.version}.zip"
    if not archive.exists():
        partial_zip = shutil.make_archive(
            str(archive.with_suffix("")) + ".partial", "zip", root_dir=model_dir
        )
        os.replace(partial_zip, archive)
    try:
        sc.addArchive(str(archive))
    except Exception as exc:  # the same archive added earlier in this session
        if "already" not in str(exc).lower():
            raise
    return archive.name
