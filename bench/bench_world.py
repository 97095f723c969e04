"""The throwaway world of the cost benchmarks (``validation_cost.py``, ``shadow_cost.py``): a
temp dir holding a conf dir (the shipped ``platform.yaml`` pointed at the temp dir, the demo
``churn`` job), its MLflow registry with the champion registered, and its warehouse. Deleted
on exit. Heavy imports (lakescore, Spark, MLflow) happen on entry, not at import."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Environment that would point a benchmark's child process at another world than its own.
FOREIGN_ENV = (
    "LAKESCORE_CONF",
    "LAKESCORE_WAREHOUSE",
    "LAKESCORE_VAR",
    "LAKESCORE_MLFLOW_ARTIFACTS",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "LAKESCORE_SPARK_PROFILE",
    "LAKESCORE_SPARK_MASTER",
)


@dataclass
class BenchWorld:
    root: Path
    conf: Path
    platform: Any  # lakescore.config.PlatformConfig
    job: Any  # lakescore.config.ScoringJob "churn", as shipped

    @property
    def job_file(self) -> Path:
        return self.conf / "jobs" / "churn.yaml"


def write_conf(root: Path) -> Path:
    """``root/conf``: the shipped platform.yaml with every path under ``root``, and the shipped
    churn job."""
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    platform_yaml = (REPO / "conf" / "platform.yaml").read_text()
    (conf / "platform.yaml").write_text(
        platform_yaml.replace("${LAKESCORE_WAREHOUSE:-var/warehouse}", str(root / "warehouse"))
        .replace("${LAKESCORE_VAR:-var}", str(root / "var"))
        .replace("sqlite:///var/mlflow/mlflow.db", f"sqlite:///{root}/var/mlflow.db")
        .replace("var/mlflow/artifacts", str(root / "var" / "artifacts"))
        .replace("jars_dir: var/jars", f"jars_dir: {REPO / 'var' / 'jars'}")
    )
    shutil.copy(REPO / "conf" / "jobs" / "churn.yaml", conf / "jobs" / "churn.yaml")
    return conf


@contextlib.contextmanager
def bench_world(prefix: str) -> Iterator[BenchWorld]:
    """A fresh world under a temp dir named ``prefix*``, with the champion of the churn job's
    model registered; removed afterwards."""
    from lakescore.config import load_job, load_platform
    from lakescore.local.demo import train_and_register

    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        conf = write_conf(root)
        platform = load_platform(conf)
        job = load_job("churn", platform=platform)
        train_and_register(platform, job.model.name)
        yield BenchWorld(root, conf, platform, job)
    finally:
        shutil.rmtree(root, ignore_errors=True)
