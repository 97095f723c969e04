"""The score stage on S3 vs a local disk, on the same partition, side by side in one run.

    .venv/bin/python bench/object_storage.py [--rows 200000] [--repeats 3]

Starts a local S3 API server (moto, loopback), writes the same feature partition (same
generator, same seed) to a local warehouse and to ``s3://bench/wh``, registers one model, and
scores the partition ``--repeats`` times on each (reruns: every run after the first commits in
place), in one Spark session with the s3a jars, validation off (so both take the files reader).
Prints one JSON object: per warehouse the ``score`` and ``publish`` stage seconds and the whole
run's seconds of every repeat (from the lineage rows), and the S3 / local ratio of the medians.
moto is a single Python process: figures against a real store differ; the ratio shows what the
object-store path costs on top of the same work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY = date(2026, 11, 18)
JOB = """\
name: churn
model: {{name: bench_churn, alias: champion}}
features: {{table: features/churn, entity_keys: [customer_id]}}
output: {{table: scores/churn}}
validation: {{enabled: false}}
"""
PLATFORM = """\
warehouse: {warehouse}
var_dir: {root}/var
storage:
  s3: {{endpoint: "{endpoint}", region: us-east-1, path_style: true}}
mlflow: {{tracking_uri: "sqlite:///{root}/var/mlflow.db", artifact_root: {root}/var/artifacts}}
spark:
  default_profile: local
  jars_dir: {jars}
  profiles:
    local:
      master: local[2]
      conf:
        spark.driver.memory: 3g
        spark.ui.enabled: false
        spark.ui.showConsoleProgress: false
        spark.sql.shuffle.partitions: 4
        spark.sql.session.timeZone: UTC
"""


def _world(root: Path, warehouse: str, endpoint: str) -> Path:
    conf = root / "conf"
    (conf / "jobs").mkdir(parents=True)
    text = PLATFORM.format(
        warehouse=warehouse, root=root, endpoint=endpoint, jars=REPO / "var" / "jars"
    )
    (conf / "platform.yaml").write_text(text)
    (conf / "jobs" / "churn.yaml").write_text(JOB.format())
    return conf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import os

    from lakescore import storage
    from lakescore.config import load_job, load_platform
    from lakescore.lakehouse import tables
    from lakescore.local.demo import train_and_register, write_feature_partitions
    from lakescore.run import score_partition
    from lakescore.spark import get_spark_session
    from tests.support.s3 import moto_s3

    with tempfile.TemporaryDirectory(prefix="lakescore-bench-s3-") as tmp, moto_s3(Path(tmp)) as s3:
        os.environ.update(s3.env())
        s3.create_bucket("bench")
        local_conf = _world(Path(tmp) / "local", str(Path(tmp) / "local" / "wh"), s3.endpoint)
        s3_conf = _world(Path(tmp) / "s3", "s3://bench/wh", s3.endpoint)
        local, remote = load_platform(local_conf), load_platform(s3_conf)
        train_and_register(local, "bench_churn", rows=20_000, max_iter=30, seed=3)
        train_and_register(remote, "bench_churn", rows=20_000, max_iter=30, seed=3)
        spark = get_spark_session(remote, app_name="lakescore-bench-s3")
        figures: dict[str, dict[str, list[float]]] = {}
        for name, platform in (("local", local), ("s3", remote)):
            storage.activate(remote.storage)  # s3:// URIs always reach the bench's server
            job = load_job("churn", platform=platform)
            write_feature_partitions(job, [DAY], args.rows, row_group_rows=50_000)
            runs: dict[str, list] = {"score": [], "publish": [], "run": [], "stages": []}
            for _ in range(args.repeats):
                result = score_partition(job, DAY, platform=platform, spark=spark)
                (row,) = tables.select_rows(
                    platform.lineage_table, sort_by="started_at", run_id=result.run_id
                )
                stages = dict(row["stage_seconds"] or [])  # a Delta map: (key, value) pairs
                runs["score"].append(round(float(stages.get("score", 0.0)), 2))
                runs["publish"].append(round(float(stages.get("publish", 0.0)), 2))
                runs["run"].append(round(result.seconds, 2))
                runs["stages"].append({k: round(v, 2) for k, v in stages.items()})
            figures[name] = runs
        spark.stop()
    ratio = {
        k: round(statistics.median(figures["s3"][k]) / statistics.median(figures["local"][k]), 2)
        for k in ("score", "publish", "run")
    }
    print(json.dumps({"rows": args.rows, "seconds": figures, "s3_over_local": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
