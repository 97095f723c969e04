"""The reader/writer/publish policy of a run (lakescore.run.score_path.decide), branch by
branch: which facts send a run to which path."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lakescore.run.score_path import PathFacts, ScorePath, decide, files_readable

FAST = PathFacts(
    workers_local=True,
    features_local=True,
    validation_cached=False,
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


@pytest.mark.parametrize(
    "change",
    [
        {"workers_local": False},  # a cluster: workers do not see the driver's files
        {"features_local": False},  # a remote feature table
        {"validation_cached": True},  # validation already holds the partition in Spark
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
    assert not files_readable(replace(FAST, validation_cached=True))
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
    assert decide(replace(with_shadow, validation_cached=True)) == ScorePath("spark", "staging")
    # without challengers, the shadow table's protocol is irrelevant
    assert decide(replace(FAST, shadow_commits_with_delta_rs=False)).publish == "commit"
