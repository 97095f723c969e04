"""Shared fixtures: one Spark session and one small "world" (registry, feature table, config)
per test session. Everything real: Spark with the Delta jars, an MLflow SQLite registry,
Delta tables on a temp folder."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# py4j logs "Closing down clientserver connection" at INFO when the interpreter exits, into
# a stream pytest has already closed ("--- Logging error ---" after the summary).
logging.getLogger("py4j").setLevel(logging.WARNING)

DAYS = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
ROWS_PER_DAY = 3_000


@dataclass
class World:
    root: Path
    conf_dir: Path
    platform: object  # lakescore.config.PlatformConfig
    model_name: str
    model_v1: int

    def job(self, name: str = "churn"):
        from lakescore.config import load_job

        return load_job(name, platform=self.platform)

    def write_job(self, name: str, body: str) -> None:
        (self.conf_dir / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(body))

    def variant_job(self, name: str, transform, extra_yaml: str = "") -> None:
        """A copy of the churn feature table changed by ``transform`` (pyarrow Table ->
        Table), registered as job ``name`` with its own prediction table."""
        from deltalake import write_deltalake

        from lakescore.lakehouse import tables

        source = tables.read_table(self.job().features.table)
        write_deltalake(
            str(self.root / "warehouse" / "features" / name),
            transform(source),
            partition_by=["ds"],
            mode="overwrite",
            schema_mode="overwrite",
        )
        self.write_job(
            name,
            f"name: {name}\n"
            f"model: {{name: {self.model_name}, alias: champion}}\n"
            f"features: {{table: features/{name}, entity_keys: [customer_id]}}\n"
            f"output: {{table: scores/{name}}}\n" + textwrap.dedent(extra_yaml),
        )


PLATFORM_YAML = """\
warehouse: {root}/warehouse
var_dir: {root}/var
mlflow:
  tracking_uri: sqlite:///{root}/var/mlflow.db
  artifact_root: {root}/var/artifacts
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

CHURN_YAML = """\
name: churn
model:
  name: {model}
  alias: champion
  positive_class: 1
features:
  table: features/churn
  partition_column: ds
  entity_keys: [customer_id]
output:
  table: scores/churn
airflow:
  retries: 0   # a failure in `airflow dags test` shows at once instead of after a retry delay
"""


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A conf dir, a registered model (alias champion) and a 3-day feature table."""
    from lakescore.config import load_platform
    from lakescore.local.demo import train_and_register, write_feature_partitions

    root = tmp_path_factory.mktemp("world")
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    (conf / "platform.yaml").write_text(PLATFORM_YAML.format(root=root, jars=REPO / "var" / "jars"))
    model_name = "churn_test"
    (conf / "jobs" / "churn.yaml").write_text(CHURN_YAML.format(model=model_name))
    platform = load_platform(conf)
    registered = train_and_register(platform, model_name, rows=6_000, max_iter=15, seed=3)
    w = World(root, conf, platform, model_name, registered.version)
    write_feature_partitions(w.job(), DAYS, ROWS_PER_DAY, row_group_rows=1_000)
    return w


@pytest.fixture(scope="session")
def spark(world: World) -> Iterator[object]:
    from pyspark import SparkContext

    from lakescore.spark import get_spark_session

    session = get_spark_session(world.platform, app_name="lakescore-tests")
    jvm = SparkContext._gateway
    yield session
    if SparkContext._gateway is jvm:  # the S3 suite replaces a JVM started without s3a jars
        session.stop()


@pytest.fixture(scope="session")
def warm_driver(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real ``lakescore driver`` (its own JVM) on a free loopback port serving the world's
    conf, with a bearer token; stopped at the end of the session."""
    import os
    import uuid

    from lakescore.driver.process import start_driver
    from tests.support.processes import free_port

    env = {**os.environ, "LAKESCORE_DRIVER_TOKEN": f"test-{uuid.uuid4().hex}"}
    log_file = tmp_path_factory.mktemp("driver") / "driver.log"
    driver = start_driver(world.conf_dir, port=free_port(), env=env, log_file=log_file)
    yield driver
    driver.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium through Debian's chromedriver, with a fresh profile."""
    from tests.support.browser import chromium

    with chromium() as driver:
        yield driver


def lineage_rows(world: World, **where: object) -> list[dict]:
    """Lineage rows (delta-rs) matching ``where``, oldest first."""
    from lakescore.lakehouse import tables

    if not tables.table_exists(world.platform.lineage_table):
        return []
    rows = tables.read_table(world.platform.lineage_table).to_pylist()
    rows = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return sorted(rows, key=lambda r: r["started_at"])


def commit_empty_partition(uri: str, partition_column: str, day: date, schema) -> None:
    """Add a 0-row Parquet file as partition ``day`` (what some writers leave for a day with
    no data): the partition exists in the log but holds no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

    table = DeltaTable(uri)
    data_schema = pa.schema([f for f in pa.schema(schema) if f.name != partition_column])
    rel = f"{partition_column}={day.isoformat()}/part-empty-{day.isoformat()}.parquet"
    path = Path(uri) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data_schema.empty_table(), path)
    stats = json.dumps({"numRecords": 0, "minValues": {}, "maxValues": {}, "nullCount": {}})
    table.create_write_transaction(
        [
            AddAction(
                rel,
                path.stat().st_size,
                {partition_column: day.isoformat()},
                int(path.stat().st_mtime * 1000),
                True,
                stats,
            )
        ],
        mode="append",
        schema=table.schema(),
        partition_by=[partition_column],
    )


def copy_table(src: str, dst: str) -> None:
    shutil.copytree(src, dst)
