"""The S3 suite's shared pieces: one local S3 API server (moto, loopback), one world whose
warehouse and feature table live on ``s3://lake/wh``, and one Spark session with the s3a
filesystem, shared by every test in tests/s3 (session-scoped: started once, stopped after).

The environment is exactly what a user sets (README "Object storage"): AWS_ENDPOINT_URL,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, LAKESCORE_S3_PATH_STYLE and
LAKESCORE_WAREHOUSE-style URIs in conf.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHURN_YAML, DAYS, REPO, ROWS_PER_DAY, World
from tests.support.s3 import S3Server, moto_s3

BUCKET = "lake"

S3_PLATFORM_YAML = """\
warehouse: s3://{bucket}/wh
var_dir: {root}/var
storage:
  s3:
    endpoint: ${{AWS_ENDPOINT_URL:-}}
    region: ${{AWS_REGION:-us-east-1}}
    path_style: ${{LAKESCORE_S3_PATH_STYLE:-false}}
mlflow:
  tracking_uri: sqlite:///{root}/var/mlflow.db
  artifact_root: s3://{bucket}/mlflow-artifacts   # the model's artifacts live on S3 too
  request_timeout_s: 5
  request_max_retries: 0
spark:
  default_profile: local
  jars_dir: {jars}
  profiles:
    local:
      master: local[2]
      conf:
        spark.driver.memory: 2g
        spark.ui.enabled: false
        spark.ui.showConsoleProgress: false
        spark.sql.shuffle.partitions: 2
        spark.databricks.delta.snapshotPartitions: 2
        spark.sql.execution.arrow.maxRecordsPerBatch: 1000
        spark.sql.session.timeZone: UTC
"""


@pytest.fixture(scope="package")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto_server on a free loopback port; its environment set for this test process (and
    the Spark JVM and workers it starts), restored when the S3 suite ends (package scope:
    the tests after it must not see an S3 endpoint in their environment)."""
    workdir = tmp_path_factory.mktemp("moto")
    with moto_s3(workdir) as server, pytest.MonkeyPatch.context() as env:
        for key, value in server.env().items():
            env.setenv(key, value)
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="package")
def s3_world(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Conf, a registered model (alias champion, artifacts on S3) and a 3-day feature table
    on S3."""
    from lakescore.config import load_platform
    from lakescore.local.demo import train_and_register, write_feature_partitions

    root = tmp_path_factory.mktemp("s3world")
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    (conf / "platform.yaml").write_text(
        S3_PLATFORM_YAML.format(bucket=BUCKET, root=root, jars=REPO / "var" / "jars")
    )
    model_name = "churn_s3"
    (conf / "jobs" / "churn.yaml").write_text(CHURN_YAML.format(model=model_name))
    platform = load_platform(conf)
    registered = train_and_register(platform, model_name, rows=6_000, max_iter=15, seed=3)
    world = World(root, conf, platform, model_name, registered.version)
    write_feature_partitions(world.job(), DAYS, ROWS_PER_DAY, row_group_rows=1_000)
    return world


@pytest.fixture(scope="package")
def s3_spark(s3_world: World) -> Iterator[object]:
    """One Spark session with hadoop-aws for the whole S3 suite.

    The s3a jars must be on the driver JVM's classpath from its start (``spark.jars`` of a
    later SparkContext in the same JVM reach the executors only). When earlier tests in this
    process started a JVM without them, that JVM is stopped and the next session launches a
    new one (whichever thread started the old session: a run starts its own in a background
    thread)."""
    from pyspark import SparkContext

    from lakescore.spark import get_spark_session

    _restart_jvm_without_s3a(SparkContext)
    session = get_spark_session(s3_world.platform, app_name="lakescore-s3-tests")
    yield session
    session.stop()


def _restart_jvm_without_s3a(spark_context: Any) -> None:
    gateway = spark_context._gateway
    if gateway is None:
        return
    context = spark_context._active_spark_context
    if context is not None and context.getConf().get("spark.hadoop.fs.s3a.impl") is not None:
        return
    if context is not None:
        from pyspark.sql import SparkSession

        SparkSession.builder.getOrCreate().stop()
    gateway.shutdown()
    proc = getattr(gateway, "proc", None)
    if proc is not None:  # the JVM exits when its standard input closes
        proc.stdin.close()
        proc.wait(timeout=60)
    spark_context._gateway = None
    spark_context._jvm = None


def write_job(world: World, name: str, body: str) -> None:
    (Path(world.conf_dir) / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(body))
