"""Chaos fixtures: a real standalone cluster on loopback, a conf dir whose platform has the
shipped ``standalone`` profile and ``spot`` overlay, a feature table with one day big enough
that its scoring stage runs for several seconds, and helpers that run the scoring job as a
separate process (the driver), the way Airflow's spark-submit does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chaos.cluster import StandaloneCluster
from tests.conftest import REPO, World
from tests.support.processes import kill_group

BIG_DAY = date(2026, 11, 21)
BIG_ROWS = int(os.environ.get("LAKESCORE_CHAOS_ROWS", "200000"))
RUN_TIMEOUT_S = 420.0


@dataclass
class ChaosWorld:
    world: World
    conf_dir: Path

    @property
    def platform(self) -> Any:
        from lakescore.config import load_platform

        return load_platform(self.conf_dir)

    def job(self, name: str) -> Any:
        from lakescore.config import load_job

        return load_job(name, platform=self.platform)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("LAKESCORE_FAULT", None)
        env.update(
            LAKESCORE_CONF=str(self.conf_dir),
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
            PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        )
        env.update(extra)
        return env

    def score_command(self, job: str, ds: date, *, spark_submit: bool = False) -> list[str]:
        args = ["--job", job, "--ds", ds.isoformat(), "--json"]
        if not spark_submit:
            return [str(Path(sys.executable).parent / "lakescore"), "score", *args]
        from lakescore.spark import spark_conf

        conf = spark_conf(self.platform, os.environ.get("LAKESCORE_SPARK_PROFILE"))
        master, jars = conf.pop("spark.master"), conf.pop("spark.jars")
        pairs = [item for k, v in conf.items() for item in ("--conf", f"{k}={v}")]
        return [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master", master,
            "--jars", jars,
            *pairs,
            str(REPO / "jobs" / "score.py"),
            *args,
        ]  # fmt: skip

    def start_score(
        self, job: str, ds: date, *, spark_submit: bool = False, **env: str
    ) -> subprocess.Popen[str]:
        """The scoring job as its own process group (the driver and its JVM)."""
        log = self.world.root / "logs" / f"{job}-{ds}-{time.monotonic_ns()}.log"
        log.parent.mkdir(exist_ok=True)
        process = subprocess.Popen(
            self.score_command(job, ds, spark_submit=spark_submit),
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=self.env(**env),
            cwd=REPO,
            start_new_session=True,
        )
        process.log = log  # type: ignore[attr-defined]
        return process

    def score(self, job: str, ds: date, **env: str) -> dict[str, Any]:
        process = self.start_score(job, ds, **env)
        return finish(process)


def finish(process: subprocess.Popen[str], *, expect_ok: bool = True) -> dict[str, Any]:
    """Wait for a scoring process; its JSON result (or {} when it failed and that was expected)."""
    try:
        out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise
    finally:
        kill_group(process)
    log = Path(process.log).read_text()  # type: ignore[attr-defined]
    if expect_ok:
        assert process.returncode == 0, f"exit {process.returncode}: {log[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])
    return {"returncode": process.returncode, "stderr": log}


@pytest.fixture(scope="session")
def chaos_world(world: World) -> ChaosWorld:
    """The shared world plus: the shipped standalone/spot profiles in its platform.yaml, and
    job ``chaos`` (validation off, to keep runs short) over a feature table with BIG_DAY."""
    from lakescore.config import load_job
    from lakescore.local.demo import write_feature_partitions

    conf = world.root / "chaos_conf"
    (conf / "jobs").mkdir(parents=True, exist_ok=True)
    platform = yaml.safe_load((world.conf_dir / "platform.yaml").read_text())
    shipped = yaml.safe_load((REPO / "conf" / "platform.yaml").read_text())
    platform["spark"]["default_profile"] = "${LAKESCORE_SPARK_PROFILE:-local}"
    for name in ("standalone", "spot"):
        platform["spark"]["profiles"][name] = shipped["spark"]["profiles"][name]
    # the shipped standalone's driver/executor sizes, but keep the tests' small batches
    (conf / "platform.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    for name in ("churn",):
        (conf / "jobs" / f"{name}.yaml").write_text(
            (world.conf_dir / "jobs" / f"{name}.yaml").read_text()
        )
    # chaos: its own feature table with BIG_DAY; crash, race: the world's 3 small days
    for name, features in (("chaos", "chaos"), ("crash", "churn"), ("race", "churn")):
        (conf / "jobs" / f"{name}.yaml").write_text(
            f"name: {name}\n"
            f"model: {{name: {world.model_name}, alias: champion}}\n"
            f"features: {{table: features/{features}, entity_keys: [customer_id]}}\n"
            f"output: {{table: scores/{name}}}\n"
            "validation: {enabled: false}\n"
            "monitoring: {psi_fail: null}\n"
        )
    cw = ChaosWorld(world, conf)
    write_feature_partitions(
        load_job("chaos", conf_dir=conf), [BIG_DAY], BIG_ROWS, row_group_rows=10_000
    )
    return cw


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """Master + 2 workers (1 core, 1 GiB each) on 127.0.0.1; always stopped, and no JVM of
    it may survive."""
    spark_cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield spark_cluster.start()
    finally:
        survivors = spark_cluster.stop()
        assert not survivors, f"processes of {survivors} survived the cluster's stop"
