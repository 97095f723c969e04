"""Rollback and right to erasure on real Delta tables (Spark writes, delta-rs checks), a real
MLflow registry and real scoring runs. Each test scores its own variant job, so the shared
``churn`` tables stay as other tests expect them."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakescore.config import GovernanceSpec
from lakescore.errors import BadInputError, PublishConflict
from lakescore.lakehouse import tables
from lakescore.ops.governance import (
    erase,
    rollback_to_model_version,
    rollback_to_version,
    vacuum,
)
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration


def _partition(uri: str, day, version: int | None = None) -> pa.Table:
    """Partition ``day`` as Arrow (delta-rs), sorted by key: comparable value for value."""
    t = tables.read_table(uri, version=version, partition_column="ds", start=day, end=day)
    return t.sort_by("customer_id")


def test_rollback_to_a_table_version_restores_the_partition_byte_for_byte(world, spark):
    name = "gov_rollback"
    world.variant_job(name, lambda t: t)
    job = world.job(name)
    uri = job.output.table
    first = score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    good = _partition(uri, DAYS[0], first.output_version)
    rerun = score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    assert not _partition(uri, DAYS[0]).equals(good)  # the rerun has its own run_id/scored_at
    other_day = _partition(uri, DAYS[1])

    result = rollback_to_version(
        job, DAYS[0], first.output_version, platform=world.platform, reason="bad rerun", spark=spark
    )

    assert result.output_version == rerun.output_version + 1  # one commit
    restored = _partition(uri, DAYS[0])
    assert restored.schema.equals(good.schema)
    assert restored.equals(good)  # every column, every row: scores, run_id, scored_at
    assert set(restored["run_id"].to_pylist()) == {first.run_id}
    assert _partition(uri, DAYS[1]).equals(other_day)
    assert tables.read_table(uri).num_rows == 2 * ROWS_PER_DAY
    meta = tables.history(uri, 1)[0]["lakescore"]
    assert meta["action"] == "rollback" and meta["restored_table_version"] == first.output_version
    assert meta["restored_run_id"] == first.run_id and meta["reason"] == "bad rerun"

    (row,) = lineage_rows(world, job=name, action="rollback")
    assert row["status"] == "succeeded" and row["reason"] == "bad rerun" and row["user"]
    assert row["output_version"] == result.output_version
    assert row["output_rows"] == ROWS_PER_DAY
    details = json.loads(row["details"])
    assert details["from_table_version"] == rerun.output_version
    assert details["to_table_version"] == first.output_version

    # a run that started before the rollback (smaller txnVersion) cannot overwrite it
    with pytest.raises(PublishConflict, match="newer run already published"):
        score_partition(
            job, DAYS[0], platform=world.platform, spark=spark, txn_version=1_000_000_000_000
        )
    assert _partition(uri, DAYS[0]).equals(good)

    # refusals: nothing published, lineage says why
    before = tables.table_version(uri)
    with pytest.raises(BadInputError, match=r"table version 999 does not exist"):
        rollback_to_version(job, DAYS[0], 999, platform=world.platform, reason="x", spark=spark)
    with pytest.raises(BadInputError, match=r"has no partition ds=2026-11-19"):
        rollback_to_version(
            job, DAYS[1], first.output_version, platform=world.platform, reason="x", spark=spark
        )
    with pytest.raises(BadInputError, match="--reason"):
        rollback_to_version(job, DAYS[0], 1, platform=world.platform, reason=" ", spark=spark)
    assert tables.table_version(uri) == before
    failed = lineage_rows(world, job=name, action="rollback", status="failed")
    assert len(failed) == 2 and "999" in failed[0]["error"]


def test_rollback_to_an_earlier_model_version_rescores_with_it(world, spark):
    from lakescore.local.demo import train_and_register

    name = "gov_model_rollback"
    world.variant_job(name, lambda t: t)
    job = world.job(name)
    newer = train_and_register(
        world.platform,
        world.model_name,
        alias="govern_candidate",  # the champion alias stays on v1 for the other tests
        rows=3_000,
        max_iter=5,
        seed=11,
        force_new_version=True,
    )
    assert newer.version != world.model_v1
    bad = score_partition(
        job, DAYS[2], platform=world.platform, spark=spark, model_version=newer.version
    )
    result = rollback_to_model_version(
        job,
        DAYS[2],
        world.model_v1,
        platform=world.platform,
        reason="v2 miscalibrated",
        spark=spark,
    )
    published = _partition(job.output.table, DAYS[2])
    assert set(published["model_version"].to_pylist()) == {world.model_v1}
    assert published.num_rows == ROWS_PER_DAY
    assert result.output_version == bad.output_version + 1
    (row,) = lineage_rows(world, job=name, action="rollback")
    assert row["model_version"] == world.model_v1 and row["reason"] == "v2 miscalibrated"
    assert json.loads(row["details"])["from_table_version"] == bad.output_version


def test_erase_removes_exactly_the_named_entities_from_every_table(world, spark, tmp_path):
    quarantined, plain = "gov_erase_q", "gov_erase_p"
    reject_ids = {5, 7}

    def corrupt(t: pa.Table) -> pa.Table:
        # customers 5 and 7 break a row-level rule on the first two days -> rejects table
        bad = pc.and_(
            pc.is_in(t["customer_id"], pa.array(sorted(reject_ids), t["customer_id"].type)),
            pc.is_in(t["ds"], pa.array(DAYS[:2], t["ds"].type)),
        )
        col = t.schema.get_field_index("tenure_months")
        return t.set_column(
            col, "tenure_months", pc.if_else(bad, pa.scalar(-1.0), t["tenure_months"])
        )

    world.variant_job(
        quarantined,
        corrupt,
        "validation:\n  policy: quarantine\n  max_reject_fraction: 0.01\n"
        "  expectations: [{column: tenure_months, min: 0}]\n",
    )
    world.variant_job(plain, lambda t: t)
    # the plain job also runs a challenger, so it has a shadow table
    from lakescore.local.demo import train_and_register

    train_and_register(
        world.platform,
        world.model_name,
        alias="gov_challenger",
        rows=2_000,
        max_iter=5,
        seed=11,
        force_new_version=True,
    )
    world.write_job(
        plain,
        f"name: {plain}\n"
        f"model: {{name: {world.model_name}, alias: champion, "
        f"challengers: [{{alias: gov_challenger}}]}}\n"
        f"features: {{table: features/{plain}, entity_keys: [customer_id]}}\n"
        f"output: {{table: scores/{plain}}}\n",
    )
    for day in DAYS:
        score_partition(world.job(quarantined), day, platform=world.platform, spark=spark)
    for day in DAYS[:2]:
        score_partition(world.job(plain), day, platform=world.platform, spark=spark)
    targets = {
        "q_pred": world.job(quarantined).output.table,
        "q_rej": world.platform.rejects_table(quarantined),
        "p_pred": world.job(plain).output.table,
        "p_shadow": world.job(plain).shadow_table,
    }
    before = {k: tables.read_table(u) for k, u in targets.items()}
    versions = {k: tables.table_version(u) for k, u in targets.items()}
    assert set(before["q_rej"]["customer_id"].to_pylist()) == reject_ids

    erased = {5, 7, 100, 2999}
    keys = tmp_path / "keys.csv"
    keys.write_text("customer_id\n" + "\n".join(f" {i}" for i in [*erased, 100]) + "\n")

    result = erase(
        world.platform, keys, reason="GDPR request 42", jobs=[quarantined, plain], spark=spark
    )

    def expected(table: pa.Table) -> pa.Table:
        mask = pc.invert(pc.is_in(table["customer_id"], pa.array(sorted(erased), pa.int64())))
        return table.filter(mask).sort_by([("ds", "ascending"), ("customer_id", "ascending")])

    deleted = {}
    for k, uri in targets.items():
        after = tables.read_table(uri).sort_by([("ds", "ascending"), ("customer_id", "ascending")])
        assert after.equals(expected(before[k])), k  # exactly those rows gone, nothing else
        deleted[k] = before[k].num_rows - after.num_rows
        assert tables.table_version(uri) == versions[k] + 1, k  # one commit per table
    # predictions: 5 and 7 only on the day they were valid; 100, 2999 every day
    assert deleted == {"q_pred": 2 + 3 + 3, "q_rej": 4, "p_pred": 4 + 4, "p_shadow": 4 + 4}
    by_table = {(t.job, t.kind): t.rows_deleted for t in result.tables}
    assert by_table == {
        (quarantined, "predictions"): deleted["q_pred"],
        (quarantined, "rejects"): deleted["q_rej"],
        (plain, "predictions"): deleted["p_pred"],
        (plain, "rejects"): 0,  # no rejects table for this job
        (plain, "shadow"): deleted["p_shadow"],
        (quarantined, "shadow"): 0,  # no challengers, no shadow table
    }
    assert result.entities == len(erased)

    rows = {r["job"]: r for r in lineage_rows(world, action="erase", run_id=result.erasure_id)}
    assert set(rows) == {quarantined, plain}
    q = rows[quarantined]
    assert q["status"] == "succeeded" and q["reason"] == "GDPR request 42"
    details = json.loads(q["details"])
    assert details["tables"]["predictions"]["rows_deleted"] == deleted["q_pred"]
    assert details["tables"]["rejects"]["rows_deleted"] == deleted["q_rej"]
    assert details["entities"] == len(erased)
    assert "2999" not in q["details"] and "keys" not in details  # counts, never the keys

    # before VACUUM, time travel still shows the erased rows: that is what VACUUM is for
    old = tables.read_table(targets["q_pred"], version=versions["q_pred"])
    assert pc.sum(pc.is_in(old["customer_id"], pa.array(sorted(erased)))).as_py() == 8
    platform = world.platform.model_copy(
        update={"governance": GovernanceSpec(erasure_retention=timedelta(0))}
    )
    done = vacuum(platform, world.job(quarantined), spark=spark)
    assert {d["kind"] for d in done} == {"predictions", "rejects"}
    assert all(d["files_deleted"] > 0 for d in done)
    for k in ("q_pred", "q_rej"):
        try:
            old = tables.read_table(targets[k], version=versions[k])
        except Exception as exc:  # the pre-erasure files are gone: the old version is unreadable
            assert "not found" in str(exc).lower() or "no such file" in str(exc).lower(), exc
        else:
            hits = pc.is_in(old["customer_id"], pa.array(sorted(erased)))
            assert not pc.any(hits).as_py(), k
    # the current version is intact after VACUUM
    assert tables.read_table(targets["q_pred"]).num_rows == before["q_pred"].num_rows - 8


def test_erase_refuses_a_file_that_does_not_name_a_jobs_keys(world, spark, tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("customer\n1\n")
    with pytest.raises(
        BadInputError, match=r"no job has exactly the entity keys \['customer'\]"
    ) as e:
        erase(world.platform, wrong, reason="x", jobs=None)
    assert str(wrong) in str(e.value)
    bad_value = tmp_path / "bad_value.csv"
    bad_value.write_text("customer_id\n12\nabc\n")
    world.variant_job("gov_erase_bad", lambda t: t)
    score_partition(world.job("gov_erase_bad"), DAYS[0], platform=world.platform, spark=spark)
    before = tables.table_version(world.job("gov_erase_bad").output.table)
    with pytest.raises(BadInputError, match="column 'customer_id': a key does not parse as int64"):
        erase(world.platform, bad_value, reason="x", jobs=["gov_erase_bad"], spark=spark)
    assert tables.table_version(world.job("gov_erase_bad").output.table) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "rollback",
                "--job",
                "gov_rollback",
                "--ds",
                "2026-11-18",
                "--to-version",
                "999",
                "--reason",
                "test",
            ],
            # alone: no prediction table yet; after the rollback test: no such version
            "table version 999 does not exist|no predictions published yet",
        ),
        (
            [
                "rollback",
                "--job",
                "churn",
                "--ds",
                "2026-11-18",
                "--to-version",
                "1",
                "--reason",
                " ",
            ],
            "--reason",
        ),
        (["erase", "--entity-file", "/nonexistent/keys.csv", "--reason", "x"], "not found"),
        (["forecast", "--job", "churn", "--ds", "2026-10-01"], "partition 2026-10-01 has no files"),
    ],
)
def test_cli_refusals_exit_2_with_one_line(world, args, needle):
    import os
    import subprocess
    import sys
    from pathlib import Path

    world.variant_job("gov_rollback", lambda t: t)  # exists without a prediction table here
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lakescore"), "--conf", str(world.conf_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAKESCORE_CONF": str(world.conf_dir)},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(needle, errors[0]), out.stderr


def test_vacuum_purges_deletion_vectors_so_old_versions_lose_the_erased_rows(
    world, spark, tmp_path
):
    """A table someone switched to deletion vectors: the MERGE only marks rows deleted in a
    DV file and keeps the data file, so VACUUM alone would keep the rows readable through
    older versions. lakescore purges (REORG ... APPLY (PURGE)) before VACUUM."""
    name = "gov_erase_dv"
    world.variant_job(name, lambda t: t, "validation: {enabled: false}\n")
    job = world.job(name)
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)
    uri = job.output.table
    spark.sql(
        f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')"
    )
    before_version = tables.table_version(uri)
    keys = tmp_path / "keys.csv"
    keys.write_text("customer_id\n11\n12\n")
    result = erase(world.platform, keys, reason="dv test", jobs=[name], spark=spark)
    assert [t.rows_deleted for t in result.tables if t.kind == "predictions"] == [2]

    def erased_at(version: int | None) -> int:
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(uri).where("customer_id in (11, 12)").count()

    assert erased_at(None) == 0 and erased_at(before_version) == 2  # DV: old file still there
    platform = world.platform.model_copy(
        update={"governance": GovernanceSpec(erasure_retention=timedelta(0))}
    )
    (done,) = [d for d in vacuum(platform, job, spark=spark) if d["kind"] == "predictions"]
    assert done["purged_deletion_vectors"] and done["files_deleted"] > 0
    try:
        left = erased_at(before_version)
    except Exception as exc:  # the pre-erasure data file is gone
        assert "not found" in str(exc).lower() or "not exist" in str(exc).lower(), exc
    else:
        assert left == 0
    assert spark.read.format("delta").load(uri).count() == ROWS_PER_DAY - 2
