"""Unit tests for the pieces of lakescore.quality.guards that need no Spark: reading what Spark and
MLflow say when something is broken, and the staging probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakescore.config import local_path
from lakescore.errors import BadInputError, ScoringFailure
from lakescore.quality.guards import explain_failure, prepare_staging

SPARK_CORRUPT = (
    "An error occurred while calling o123.save.\n: org.apache.spark.SparkException: "
    "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file "
    "file:/w/features/churn/ds=2026-11-18/part-0.snappy.parquet.  SQLSTATE: KD001\n"
    "\tat org.apache.spark...\nCaused by: java.lang.RuntimeException: "
    "file:/w/features/churn/ds=2026-11-18/part-0.snappy.parquet is not a Parquet file. "
    "Expected magic number at tail, but found [1, 2, 3, 4]\n"
)


def test_a_corrupt_data_file_is_bad_input_naming_the_file():
    err = explain_failure(RuntimeError(SPARK_CORRUPT), table="/w/features/churn")

    assert isinstance(err, BadInputError)
    assert err.file == "/w/features/churn/ds=2026-11-18/part-0.snappy.parquet"
    assert "is not a Parquet file" in str(err)
    assert "\n" not in str(err)


def test_a_staging_write_failure_names_the_staging_path():
    text = "java.io.IOException: Mkdirs failed to create file:/w/_staging/churn/x (exists=false)"
    err = explain_failure(text, staging_dir=Path("/w/_staging/churn/x"))

    assert isinstance(err, ScoringFailure) and not isinstance(err, BadInputError)
    assert err.file == "/w/_staging/churn/x"


def test_other_failures_are_left_alone():
    assert explain_failure(ValueError("division by zero"), staging_dir=Path("/s")) is None


def test_local_path():
    assert local_path("file:///a/b%20c") == "/a/b c"
    assert local_path("file:/a/b") == "/a/b"
    assert local_path("s3://x/y") == "s3://x/y"


def test_prepare_staging_refuses_a_file_in_the_way(tmp_path: Path):
    (tmp_path / "job").write_text("in the way")
    staging = tmp_path / "job" / "2026-11-20" / "run"

    with pytest.raises(ScoringFailure) as info:
        prepare_staging(staging, job="churn")

    assert info.value.file == str(staging)
    assert "job 'churn'" in str(info.value)


def test_prepare_staging_leaves_no_probe_behind(tmp_path: Path):
    staging = tmp_path / "job" / "2026-11-20" / "run"
    prepare_staging(staging)

    assert staging.parent.is_dir()
    assert list(staging.parent.iterdir()) == []
