"""Great Expectations validation of the feature partition (fail / warn / quarantine) and
score drift (PSI) with its thresholds. Real Spark, registry and Delta tables; outputs checked
with delta-rs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakescore.errors import BadInputError, DriftFailure
from lakescore.lakehouse import tables
from lakescore.quality.validation import ValidationFailed
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, World, lineage_rows

pytestmark = pytest.mark.integration


def _set(table: pa.Table, column: str, values, type_: pa.DataType | None = None) -> pa.Table:
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, pa.array(values, type_ or table.schema.field(column).type))


def _on_day(table: pa.Table, day: date, column: str, change) -> pa.Table:
    """Apply ``change(value, row_index_within_day)`` to ``column`` on partition ``day`` only."""
    values = table[column].to_pylist()
    days = table["ds"].to_pylist()
    seen = 0
    for i, d in enumerate(days):
        if d == day:
            values[i] = change(values[i], seen)
            seen += 1
    return _set(table, column, values)


def _output_version(world: World, job: str) -> int | None:
    return tables.table_version(world.job(job).output.table)


def test_clean_partition_passes_and_keeps_json_and_data_docs(world, spark):
    result = score_partition(world.job(), DAYS[0], platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["validation_status"] == "passed"
    assert row["validation_failed"] == 0
    features = len(
        [
            c
            for c in tables.table_columns(world.job().features.table)
            if c not in ("customer_id", "ds")
        ]
    )
    # exist + type per feature, key not null + unique (+ row count band when there is a previous day)
    assert row["validation_evaluated"] >= 2 * features + 2
    docs = Path(row["validation_report"])
    assert docs.name == "index.html" and docs.is_file()
    assert str(world.root / "warehouse" / "_reports" / "churn") in str(docs)
    result_json = json.loads((docs.parent.parent / "validation.json").read_text())
    assert result_json["success"] is True
    details = json.loads(row["details"])
    assert details["validation"]["spark_jobs"] > 0


@pytest.mark.parametrize(
    ("name", "transform", "extra", "expectation"),
    [
        (
            "v_nullkey",
            lambda t: _on_day(t, DAYS[1], "customer_id", lambda v, i: None if i < 5 else v),
            "",
            "expect_column_values_to_not_be_null(customer_id)",
        ),
        (
            "v_dupkey",
            lambda t: _on_day(t, DAYS[1], "customer_id", lambda v, i: 1 if i < 3 else v),
            "",
            "expect_column_values_to_be_unique(customer_id)",
        ),
        (
            "v_range",
            lambda t: _on_day(t, DAYS[1], "tenure_months", lambda v, i: -5.0 if i < 4 else v),
            "validation: {expectations: [{column: tenure_months, min: 0, max: 600}]}\n",
            "expect_column_values_to_be_between(tenure_months)",
        ),
        (
            "v_collapse",
            lambda t: t.filter(
                pc.or_(pc.not_equal(t["ds"], pa.scalar(DAYS[1])), pc.less(t["customer_id"], 101))
            ),
            "",
            "expect_table_row_count_to_be_between",
        ),
    ],
)
def test_each_failure_mode_names_the_expectation_and_publishes_nothing(
    world, spark, name, transform, extra, expectation
):
    world.variant_job(name, transform, extra)
    job = world.job(name)
    score_partition(job, DAYS[0], platform=world.platform, spark=spark)  # a clean previous day
    before = _output_version(world, name)
    with pytest.raises(ValidationFailed) as err:
        score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    assert expectation in str(err.value)
    assert f"job '{name}'" in str(err.value) and "nothing published" in str(err.value)
    assert err.value.exit_code == 2
    assert _output_version(world, name) == before
    (failed,) = [r for r in lineage_rows(world, job=name, ds=DAYS[1])]
    assert failed["status"] == "failed" and failed["validation_status"] == "failed"
    assert failed["validation_failed"] >= 1 and expectation in failed["error"]


@pytest.mark.parametrize(
    ("transform", "expectation"),
    [
        (lambda t: t.drop_columns(["nps_score"]), "expect_column_to_exist"),
        (
            lambda t: _set(
                t, "logins_30d", [str(v) for v in t["logins_30d"].to_pylist()], pa.string()
            ),
            "expect_column_values_to_be_in_type_list",
        ),
    ],
)
def test_missing_or_mistyped_column_names_the_expectation(world, spark, transform, expectation):
    name = "v_schema"
    world.variant_job(name, transform)
    with pytest.raises(BadInputError) as err:
        score_partition(world.job(name), DAYS[0], platform=world.platform, spark=spark)
    assert expectation in str(err.value)
    assert not tables.table_exists(world.job(name).output.table)


def test_warn_policy_publishes_and_records_the_failures(world, spark):
    name = "v_warn"
    world.variant_job(
        name,
        lambda t: _on_day(t, DAYS[1], "tenure_months", lambda v, i: -5.0 if i < 4 else v),
        "validation: {policy: warn, expectations: [{column: tenure_months, min: 0}]}\n",
    )
    result = score_partition(world.job(name), DAYS[1], platform=world.platform, spark=spark)
    assert result.rows == ROWS_PER_DAY
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["status"] == "succeeded" and row["validation_status"] == "warned"
    assert row["validation_failed"] == 1
    failures = json.loads(row["details"])["validation"]["failures"]
    assert failures[0]["expectation"] == "expect_column_values_to_be_between(tenure_months)"
    assert failures[0]["unexpected_count"] == 4


def test_quarantine_publishes_valid_rows_and_rejects_exactly_the_bad_ones(world, spark):
    name = "v_quarantine"
    bad_ids = {}

    def corrupt(t: pa.Table) -> pa.Table:
        t = _on_day(t, DAYS[1], "tenure_months", lambda v, i: -1.0 if i in (3, 10, 20) else v)
        t = _on_day(t, DAYS[1], "nps_score", lambda v, i: 42.0 if i in (10, 30) else v)
        ids = [
            c
            for c, d in zip(t["customer_id"].to_pylist(), t["ds"].to_pylist(), strict=True)
            if d == DAYS[1]
        ]
        bad_ids.update(
            {ids[3]: {"tenure"}, ids[10]: {"tenure", "nps"}, ids[20]: {"tenure"}, ids[30]: {"nps"}}
        )
        return t

    world.variant_job(
        name,
        corrupt,
        "validation:\n  policy: quarantine\n  max_reject_fraction: 0.01\n"
        "  expectations: [{column: tenure_months, min: 0}, {column: nps_score, values: "
        "[0,1,2,3,4,5,6,7,8,9,10]}]\n",
    )
    job = world.job(name)
    result = score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    assert result.rows == ROWS_PER_DAY - len(bad_ids)
    published = tables.read_table(
        job.output.table, partition_column="ds", start=DAYS[1], end=DAYS[1]
    )
    assert not set(published["customer_id"].to_pylist()) & set(bad_ids)
    rejects = tables.read_table(world.platform.rejects_table(name)).to_pylist()
    assert {r["customer_id"] for r in rejects} == set(bad_ids)
    names = {
        "tenure": "expect_column_values_to_be_between(tenure_months)",
        "nps": "expect_column_values_to_be_in_set(nps_score)",
    }
    for r in rejects:
        assert set(r["failed_expectations"]) == {names[k] for k in bad_ids[r["customer_id"]]}
        assert r["run_id"] == result.run_id and r["ds"] == DAYS[1]
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["validation_status"] == "quarantined" and row["rejected_rows"] == len(bad_ids)

    # above the reject threshold: nothing published, earlier partition kept
    world.variant_job(
        name + "_strict",
        corrupt,
        "validation:\n  policy: quarantine\n  max_reject_fraction: 0.0001\n"
        "  expectations: [{column: tenure_months, min: 0}]\n",
    )
    with pytest.raises(ValidationFailed, match="above max_reject_fraction"):
        score_partition(world.job(name + "_strict"), DAYS[1], platform=world.platform, spark=spark)
    assert not tables.table_exists(world.job(name + "_strict").output.table)


def _shift(t: pa.Table) -> pa.Table:
    """Make the customers of the last day much riskier: their scores move up."""
    t = _on_day(t, DAYS[2], "support_calls_90d", lambda v, i: v + 6.0)
    return _on_day(t, DAYS[2], "late_payments_12m", lambda v, i: v + 4.0)


def test_shifted_features_raise_psi_above_fail_and_refuse_the_publish(world, spark):
    name = "v_drift"
    world.variant_job(name, _shift, "monitoring: {psi_warn: 0.1, psi_fail: 0.25}\n")
    job = world.job(name)
    first = score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    (ok,) = lineage_rows(world, run_id=first.run_id)
    assert ok["drift_status"] == "ok" and ok["psi_baseline"] is not None
    before = _output_version(world, name)
    with pytest.raises(DriftFailure) as err:
        score_partition(job, DAYS[2], platform=world.platform, spark=spark)
    assert "PSI vs previous partition" in str(err.value) and "nothing published" in str(err.value)
    assert _output_version(world, name) == before
    assert (
        tables.read_table(
            job.output.table, partition_column="ds", start=DAYS[2], end=DAYS[2]
        ).num_rows
        == 0
    )
    metrics = tables.select_rows(world.platform.metrics_table, sort_by="computed_at", job=name)
    refused = [m for m in metrics if m["ds"] == DAYS[2]]
    assert refused and refused[-1]["published"] is False and refused[-1]["drift_status"] == "fail"
    assert refused[-1]["psi_previous"] > 0.25 and refused[-1]["previous_ds"] == DAYS[1]
    assert sum(refused[-1]["bin_counts"]) == ROWS_PER_DAY


def test_shift_above_warn_only_publishes_and_marks_lineage(world, spark):
    name = "v_drift_warn"
    world.variant_job(name, _shift, "monitoring: {psi_warn: 0.1, psi_fail: null}\n")
    job = world.job(name)
    score_partition(job, DAYS[1], platform=world.platform, spark=spark)
    result = score_partition(job, DAYS[2], platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["status"] == "succeeded" and row["drift_status"] == "warn"
    assert row["psi_previous"] > 0.1
    metrics = tables.select_rows(
        world.platform.metrics_table, sort_by="computed_at", run_id=result.run_id
    )
    assert metrics[-1]["published"] is True and metrics[-1]["drift_status"] == "warn"
