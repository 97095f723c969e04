"""Safe concurrent commits on S3, proven with separate processes against a real S3 API.

Every writer of a lakescore table on S3 commits through delta-rs, whose log entry
``_delta_log/N.json`` is a conditional PUT (``If-None-Match: *``): of two writers racing for
version N one wins, the other re-reads the table and retries (lakescore's publish) or rebases
(delta-rs's append). Each process here is its own delta-rs client; they start their commit at
the same instant (a barrier). The publishes are lakescore's own publish commit
(:func:`lakescore.lakehouse.tables.commit_partition_files`) over data files written to the
run's folder on S3 (what Spark writes in a real run).
"""

from __future__ import annotations

import multiprocessing
from datetime import date

import pyarrow as pa
import pytest

from lakescore.lakehouse import tables
from lakescore.lakehouse.lineage import append_lineage, find_lineage
from tests.s3.conftest import BUCKET

pytestmark = pytest.mark.integration

ROWS = 500
SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("run_id", pa.string()),
        pa.field("ds", pa.date32()),
    ]
)


def _publish(conf_dir: str, uri: str, ds: date, run: int, barrier) -> str:
    """One run: its data file into its run folder on S3, then lakescore's publish commit."""
    import pyarrow.parquet as pq

    from lakescore.config import load_platform
    from lakescore.errors import PublishConflict
    from lakescore.lakehouse import tables
    from lakescore.storage import filesystem_and_path

    load_platform(conf_dir)  # activates the S3 storage settings in this process
    run_id = f"run{run}"
    folder = tables.run_folder(uri, "ds", ds, run_id)
    fs, path = filesystem_and_path(folder)
    rows = pa.table(
        {
            "customer_id": pa.array(range(ROWS), pa.int64()),
            "score": pa.array([run / 10] * ROWS, pa.float64()),
            "run_id": pa.array([run_id] * ROWS),
        }
    )
    pq.write_table(rows, f"{path}/part-0.parquet", filesystem=fs)
    commit = tables.CommitInfo(run_id, "race", ds, "m", 1, "features", 0, ROWS)
    barrier.wait(timeout=60)
    try:
        version = tables.commit_partition_files(uri, "ds", ds, folder, commit, 1_000 + run)
    except PublishConflict as exc:
        return f"conflict: {exc}"
    return f"version {version}"


def _append_lineage(conf_dir: str, uri: str, worker: int, count: int, barrier) -> int:
    from lakescore.config import load_platform
    from lakescore.lakehouse.lineage import LineageRecord, append_lineage, utcnow

    load_platform(conf_dir)
    barrier.wait(timeout=60)
    for i in range(count):
        now = utcnow()
        record = LineageRecord(
            attempt_id=f"a{worker}-{i}",
            run_id=f"w{worker}-{i}",
            action="score",
            job="race",
            ds=date(2026, 11, 18),
            status="succeeded",
            started_at=now,
            finished_at=now,
        )
        append_lineage(uri, [record])
    return count


def _run_parallel(target, argsets: list[tuple]) -> list:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(len(argsets))
    with ctx.Pool(len(argsets)) as pool:
        pending = [pool.apply_async(target, (*args, barrier)) for args in argsets]
        return [p.get(timeout=240) for p in pending]


def _fresh_table(name: str) -> str:
    uri = f"s3://{BUCKET}/wh/race/{name}"
    tables.ensure_table(None, uri, SCHEMA, "ds", "concurrency test table")  # type: ignore[arg-type]
    return uri


def test_concurrent_publishes_to_one_partition_never_mix(s3_world):
    uri = _fresh_table("same_partition")
    ds = date(2026, 11, 18)
    outcomes = _run_parallel(_publish, [(str(s3_world.conf_dir), uri, ds, run) for run in range(4)])

    published = [o for o in outcomes if o.startswith("version")]
    assert published, outcomes  # at least one run published
    # every version of the table holds exactly one run's rows in the partition, all of them
    for version in range(1, tables.table_version(uri) + 1):
        rows = tables.read_table(uri, version=version)
        assert rows.num_rows == ROWS, (version, rows.num_rows)
        assert len(set(rows["run_id"].to_pylist())) == 1, version
    # a run is refused, never lost silently: those that did not publish say so
    assert all(o.startswith(("version", "conflict")) for o in outcomes)
    assert len(published) + sum(o.startswith("conflict") for o in outcomes) == 4
    # the final partition is one run's, and its commit metadata names that run
    final = tables.read_table(uri)
    (latest,) = tables.history(uri, 1)
    assert set(final["run_id"].to_pylist()) == {latest["lakescore"]["lakescore_run_id"]}


def test_concurrent_publishes_to_different_partitions_all_land(s3_world):
    uri = _fresh_table("many_partitions")
    days = [date(2026, 11, d) for d in (16, 17, 18, 19)]
    outcomes = _run_parallel(
        _publish, [(str(s3_world.conf_dir), uri, day, run) for run, day in enumerate(days)]
    )
    assert all(o.startswith("version") for o in outcomes), outcomes
    final = tables.read_table(uri)
    assert final.num_rows == ROWS * len(days)
    for day in days:
        info = tables.partition_info(uri, "ds", day)
        assert info.rows == ROWS, (day, info)
    assert sorted(set(final["run_id"].to_pylist())) == [f"run{r}" for r in range(len(days))]
    # four publishes, four versions after the creation: nobody overwrote anybody's commit
    assert tables.table_version(uri) == len(days)


def test_parallel_lineage_appends_are_all_kept(s3_world):
    uri = f"s3://{BUCKET}/wh/race/lineage"
    append_lineage(uri, [])  # the table exists before the race (first use creates it)
    workers, each = 4, 5
    counts = _run_parallel(
        _append_lineage, [(str(s3_world.conf_dir), uri, w, each) for w in range(workers)]
    )
    assert counts == [each] * workers
    rows = find_lineage(uri, job="race")
    assert sorted(r["run_id"] for r in rows) == sorted(
        f"w{w}-{i}" for w in range(workers) for i in range(each)
    )
    assert tables.table_version(uri) == workers * each


def test_the_store_refuses_a_second_commit_of_the_same_version(s3_world, s3_server):
    """The mechanism itself, deterministically: two writers holding the same snapshot both
    commit version N; the object store's conditional PUT lets exactly one land."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import CommitProperties

    from lakescore.storage import delta_options

    uri = f"s3://{BUCKET}/wh/race/same_version"
    rows = pa.table({"x": pa.array([1], pa.int64())})
    write_deltalake(uri, rows, storage_options=delta_options(uri))
    first, second = tables._delta_table(uri), tables._delta_table(uri)  # both at version 0
    no_retry = CommitProperties(max_commit_retries=0)
    write_deltalake(first, rows, mode="append", commit_properties=no_retry)
    with pytest.raises(CommitFailedError):
        write_deltalake(second, rows, mode="append", commit_properties=no_retry)
    assert tables.table_version(uri) == 1
    log = [
        k for k in s3_server.keys(BUCKET, "wh/race/same_version/_delta_log/") if k.endswith(".json")
    ]
    assert [k.rsplit("/", 1)[-1] for k in log] == [
        "00000000000000000000.json",
        "00000000000000000001.json",
    ]
