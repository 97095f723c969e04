"""The reader/writer/publish policy of a run (lakescore.run.score_path.decide), branch by
branch: which facts send a run to which path."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lakescore.run.score_path import PathFacts, ScorePath, decide, files_readable

FAST = PathFacts(
    workers_local=True,
    features_local=True,
    validation="none",
    file_plan_ready=True,
    output_commits_with_delta_rs=True,
    challengers_active=False,
    shadow_commits_with_delta_rs=False,
    earlier_attempt_committed=False,
)


def test_local_table_local_workers_no_cache_reads_files_and_tasks_write_the_commit() -> None:
    path = decide(FAST)
    assert path == ScorePath("files", "commit")
    assert path.writer == "python"


@pytest.mark.parametrize(("validation", "cache"), [("none", False), ("reads", True)])
def test_the_default_job_validated_or_not_scores_through_the_files(validation, cache) -> None:
    """Policies fail and warn: Great Expectations reads the partition cached (its queries
    are faster on cached rows than re-planning the Delta read), the scoring pass reads the
    files with pyarrow; nothing is cached when validation does not read here."""
    path = decide(replace(FAST, validation=validation))
    assert (path.reader, path.cache) == ("files", cache)


def test_quarantine_scores_spark_rows_from_the_partition_validation_cached() -> None:
    path = decide(replace(FAST, validation="filters"))
    assert (path.reader, path.cache) == ("spark", True)
    assert not files_readable(replace(FAST, validation="filters"))


@pytest.mark.parametrize(
    ("change", "cache"),
    [
        ({"workers_local": False, "validation": "reads"}, True),  # scores the cached rows
        ({"file_plan_ready": False, "validation": "reads"}, True),
        ({"workers_local": False, "validation": "none"}, False),  # nothing read before scoring
    ],
)
def test_the_spark_reader_keeps_the_rows_validation_read(change: dict, cache: bool) -> None:
    path = decide(replace(FAST, **change))
    assert (path.reader, path.cache) == ("spark", cache)


@pytest.mark.parametrize(
    "change",
    [
        {"workers_local": False},  # a cluster: workers do not see the driver's files
        {"features_local": False},  # a remote feature table
        {"validation": "filters"},  # quarantine scores the rows Spark's predicates pass
        {"file_plan_ready": False},  # deletion vectors, column mapping, empty partition
    ],
)
def test_anything_the_file_reader_lacks_sends_the_read_through_spark(change: dict) -> None:
    path = decide(replace(FAST, **change))
    assert path.reader == "spark"
    # the publish path does not depend on the reader without challengers
    assert path.publish == "commit" and path.writer == "spark"


def test_the_file_reader_is_not_even_planned_when_the_session_or_cache_rules_it_out() -> None:
    assert files_readable(FAST)
    assert not files_readable(replace(FAST, validation="filters"))
    assert not files_readable(replace(FAST, workers_local=False))


@pytest.mark.parametrize(
    "change",
    [
        {"output_commits_with_delta_rs": False},  # remote, new, or a protocol delta-rs lacks
        {"earlier_attempt_committed": True},  # a retry whose earlier attempt committed
    ],
)
def test_tables_delta_rs_cannot_commit_to_stage_and_publish_by_rewrite(change: dict) -> None:
    path = decide(replace(FAST, **change))
    assert path == ScorePath("files", "staging")
    assert path.writer == "spark"


def test_challengers_need_the_file_reader_and_a_delta_rs_shadow_table_to_commit() -> None:
    with_shadow = replace(FAST, challengers_active=True, shadow_commits_with_delta_rs=True)
    assert decide(with_shadow) == ScorePath("files", "commit")
    assert decide(replace(with_shadow, shadow_commits_with_delta_rs=False)).publish == "staging"
    assert decide(replace(with_shadow, validation="filters")) == ScorePath(
        "spark", "staging", cache=True
    )
    # without challengers, the shadow table's protocol is irrelevant
    assert decide(replace(FAST, shadow_commits_with_delta_rs=False)).publish == "commit"
