"""The delta-rs publish commit (lakescore.lakehouse.tables.commit_partition_files): the files a run
wrote into the table's folder become the whole of one partition in one commit, checked
first, idempotent per run, never replacing a newer run's publish, and safe against a
commit that lands in between (a real concurrent delta-rs commit in the race window)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lakescore.errors import PublishConflict, ScoringFailure
from lakescore.lakehouse import tables

DAY, OTHER_DAY = date(2026, 11, 20), date(2026, 11, 21)
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ds", pa.date32(), nullable=False),
    ]
)


def commit_info(run_id: str, rows: int) -> tables.CommitInfo:
    return tables.CommitInfo(
        run_id=run_id,
        job="churn",
        ds=DAY,
        model_name="m",
        model_version=1,
        input_table="features",
        input_version=3,
        rows=rows,
    )


@pytest.fixture
def table(tmp_path: Path) -> str:
    uri = str(tmp_path / "scores")
    rows = [
        {"id": i, "score": 0.5, "run_id": "old", "ds": day}
        for day in (DAY, OTHER_DAY)
        for i in range(4)
    ]
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=SCHEMA), partition_by=["ds"])
    return uri


def write_run_files(uri: str, run_id: str, ids: list[int], *, files: int = 2) -> str:
    """What Spark leaves in a run's folder: Parquet parts (no partition column) + side files."""
    folder = tables.run_folder(uri, "ds", DAY, run_id)
    os.makedirs(folder)
    file_schema = pa.schema([f for f in SCHEMA if f.name != "ds"])
    for part in range(files):
        mine = ids[part::files]
        data = pa.table(
            {"id": mine, "score": [i / 100 for i in mine], "run_id": [run_id] * len(mine)},
            schema=file_schema,
        )
        pq.write_table(data, f"{folder}/part-{part:05d}.snappy.parquet", row_group_size=2)
    Path(folder, "_SUCCESS").touch()
    Path(folder, ".part-00000.snappy.parquet.crc").touch()
    return folder


def partition(uri: str, day: date) -> pa.Table:
    return tables.read_table(uri, partition_column="ds", start=day, end=day).sort_by("id")


def test_the_files_become_the_whole_partition_and_other_days_stay(table: str) -> None:
    folder = write_run_files(table, "run-1", list(range(10)))
    before = DeltaTable(table).version()

    version = tables.commit_partition_files(
        table, "ds", DAY, folder, commit_info("run-1", 10), 100, expected_rows=10
    )

    assert version == before + 1
    day = partition(table, DAY)
    assert day["id"].to_pylist() == list(range(10))
    assert set(day["run_id"].to_pylist()) == {"run-1"}
    assert set(partition(table, OTHER_DAY)["run_id"].to_pylist()) == {"old"}
    assert sorted(os.listdir(folder)) == ["part-00000.snappy.parquet", "part-00001.snappy.parquet"]
    entry = tables.history(table, 1)[0]
    assert entry["lakescore"]["replaced"] == "`ds` = DATE '2026-11-20'"
    assert DeltaTable(table).transaction_version(tables.publish_app_id("churn", DAY)) == 100
    # the old version stays readable (time travel)
    assert set(tables.read_table(table, version=before)["run_id"].to_pylist()) == {"old"}


def test_each_file_carries_stats_that_let_readers_skip_it(table: str) -> None:
    folder = write_run_files(table, "run-1", list(range(10)))
    tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 10), 100)

    actions = pa.table(DeltaTable(table).get_add_actions(flatten=True)).to_pylist()
    mine = sorted(
        (a for a in actions if a["path"].startswith("ds=2026-11-20/lakescore-run-1/")),
        key=lambda a: a["path"],
    )
    assert [a["num_records"] for a in mine] == [5, 5]
    assert (mine[0]["min.id"], mine[0]["max.id"]) == (0, 8)  # even ids in part 0
    assert (mine[1]["min.id"], mine[1]["max.id"]) == (1, 9)
    assert mine[0]["null_count.score"] == 0


def test_a_retry_of_the_same_run_does_not_commit_twice(table: str) -> None:
    folder = write_run_files(table, "run-1", list(range(10)))
    first = tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 10), 100)
    again = tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 10), 100)
    assert again == first == DeltaTable(table).version()


def test_an_older_run_never_replaces_a_newer_publish(table: str) -> None:
    newer = write_run_files(table, "newer", list(range(3)))
    tables.commit_partition_files(table, "ds", DAY, newer, commit_info("newer", 3), 200)
    older = write_run_files(table, "older", list(range(10)))
    with pytest.raises(PublishConflict, match="a newer run already published"):
        tables.commit_partition_files(table, "ds", DAY, older, commit_info("older", 10), 100)
    assert set(partition(table, DAY)["run_id"].to_pylist()) == {"newer"}


def test_files_that_do_not_hold_the_audited_rows_are_not_committed(table: str) -> None:
    folder = write_run_files(table, "run-1", list(range(10)))
    before = DeltaTable(table).version()
    with pytest.raises(ScoringFailure, match="hold 10 rows, the audit passed 11"):
        tables.commit_partition_files(
            table, "ds", DAY, folder, commit_info("run-1", 11), 100, expected_rows=11
        )
    assert DeltaTable(table).version() == before


def test_a_file_of_the_wrong_type_or_with_nulls_is_named_and_not_committed(table: str) -> None:
    folder = Path(tables.run_folder(table, "ds", DAY, "bad"))
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"id": ["a"], "score": [0.1], "run_id": ["bad"]}), folder / "part-0.parquet"
    )
    with pytest.raises(ScoringFailure) as wrong_type:
        tables.commit_partition_files(table, "ds", DAY, str(folder), commit_info("bad", 1), 100)
    assert wrong_type.value.column == "id" and "part-0.parquet" in str(wrong_type.value.file)

    pq.write_table(
        pa.table(
            {"id": pa.array([1, 2]), "score": pa.array([0.1, None]), "run_id": ["bad", "bad"]}
        ),
        folder / "part-0.parquet",
    )
    with pytest.raises(ScoringFailure, match="1 null values in a non-nullable column") as nulls:
        tables.commit_partition_files(table, "ds", DAY, str(folder), commit_info("bad", 2), 100)
    assert nulls.value.column == "score"
    assert set(partition(table, DAY)["run_id"].to_pylist()) == {"old"}


def _commit_first(monkeypatch: pytest.MonkeyPatch, table: str, run_id: str, txn: int) -> None:
    """Make another run's real commit land inside our commit's race window, once: after our
    snapshot is loaded and checked, before our commit is written."""
    real = DeltaTable.create_write_transaction
    other = write_run_files(table, run_id, [100, 101], files=1)
    raced = []

    def racing(self: DeltaTable, *args: object, **kwargs: object) -> None:
        if not raced:
            raced.append(True)
            tables.commit_partition_files(table, "ds", DAY, other, commit_info(run_id, 2), txn)
        real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", racing)


def test_an_older_run_committing_in_between_is_replaced_after_a_retry(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit_first(monkeypatch, table, "older", txn=50)
    folder = write_run_files(table, "run-1", list(range(10)))
    version = tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 10), 100)
    assert tables.find_commit(table, "older") == version - 1
    day = partition(table, DAY)
    assert set(day["run_id"].to_pylist()) == {"run-1"} and day.num_rows == 10  # never mixed


def test_a_newer_run_committing_in_between_wins(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit_first(monkeypatch, table, "newer", txn=500)
    folder = write_run_files(table, "run-1", list(range(10)))
    with pytest.raises(PublishConflict, match="a newer run already published"):
        tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 10), 100)
    day = partition(table, DAY)
    assert set(day["run_id"].to_pylist()) == {"newer"} and day.num_rows == 2


def test_uncommitted_run_files_are_removed_committed_ones_kept(table: str) -> None:
    committed = write_run_files(table, "kept", list(range(4)))
    tables.commit_partition_files(table, "ds", DAY, committed, commit_info("kept", 4), 100)
    stray = write_run_files(table, "died", list(range(4)))

    assert tables.remove_uncommitted_run_folder(table, "ds", DAY, "died") == stray
    assert not os.path.exists(stray)
    assert tables.remove_uncommitted_run_folder(table, "ds", DAY, "kept") is None
    assert os.path.exists(committed)
    assert partition(table, DAY).num_rows == 4


def test_commit_metadata_is_the_runs(table: str) -> None:
    folder = write_run_files(table, "run-1", [1])
    tables.commit_partition_files(table, "ds", DAY, folder, commit_info("run-1", 1), 100)
    meta = json.loads(DeltaTable(table).history(1)[0]["userMetadata"])
    assert meta["lakescore_run_id"] == "run-1" and meta["input_version"] == 3
