"""ScoreSummary, the audit's and the histogram's partial sums that scoring tasks return when
they write their own files, and the split of the read units over those tasks. Merged over
any split of the rows, the sums equal one pass over all of them, and they count what the
audit refuses (null keys, non-finite and out-of-range scores, refused feature values)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from lakescore.ml.scoring import ScoreSummary


def batch_of(scores: list[float | None], keys: list[int | None], flags=None):
    return (
        [pa.array(keys, pa.int64())],
        pa.array(scores, pa.float64()),
        None if flags is None else pa.array(flags, pa.string()),
    )


def test_counts_what_the_audit_refuses() -> None:
    summary = ScoreSummary(0.0, 1.0, 4)
    summary.add(
        *batch_of(
            [0.1, None, math.nan, math.inf, 1.5, -0.2, 0.9, 1.0],
            [1, 2, None, 4, 5, None, 7, 8],
            [None, "a:inf,b:nan", "a:inf", None, None, None, None, None],
        )
    )
    metrics = summary.metrics()
    assert metrics["audit_rows"] == 8
    assert metrics["audit_null_keys"] == 2
    assert metrics["audit_non_finite"] == 3  # null, NaN, inf
    assert metrics["audit_oor"] == 2  # 1.5 and -0.2
    assert metrics["audit_bad_values"] == 2
    assert summary.bad_values == {"a:inf": 2, "b:nan": 1}
    assert (metrics["audit_smin"], metrics["audit_smax"]) == (-0.2, 1.5)
    # histogram over [0, 1] in 4 bins: below the range goes to the first bin, above to the
    # last, and the top edge belongs to the last bin (as in distribution_expressions)
    assert [metrics[f"dist_b{i}"] for i in range(4)] == [2, 0, 0, 3]


def test_merged_parts_equal_one_pass_over_all_rows() -> None:
    rng = np.random.default_rng(7)
    scores = rng.beta(2, 5, 10_001)
    scores[::97] = np.nan
    keys = np.arange(len(scores))
    whole = ScoreSummary(0.0, 1.0, 10)
    whole.add([pa.array(keys)], pa.array(scores))
    merged = ScoreSummary(0.0, 1.0, 10)
    for part in np.array_split(np.arange(len(scores)), 7):
        task = ScoreSummary(0.0, 1.0, 10)
        for rows in np.array_split(part, 3):  # batches within a task
            task.add([pa.array(keys[rows])], pa.array(scores[rows]))
        merged.merge(ScoreSummary.from_json(task.to_json()))  # as the driver receives them

    got, want = merged.metrics(), whole.metrics()
    finite = scores[np.isfinite(scores)]
    assert got["dist_mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert got["dist_std"] == pytest.approx(finite.std(), rel=1e-12)
    assert got["dist_rows"] == len(finite)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-12), name


def _proven(key_batches_per_task: list[list[list]], key_type: pa.DataType | None = None):
    """The merged summary's proven distinct-key count over tasks of key batches (as the driver
    merges them, through JSON and in reverse order: the proof must not rely on the order)."""
    merged = ScoreSummary(0.0, 1.0, 2)
    for task_batches in reversed(key_batches_per_task):
        task = ScoreSummary(0.0, 1.0, 2)
        for keys in task_batches:
            task.add([pa.array(keys, key_type or pa.int64())], pa.array([0.5] * len(keys)))
        merged.merge(ScoreSummary.from_json(task.to_json()))
    return merged.proven_distinct_keys()


def test_keys_in_increasing_order_prove_themselves_distinct_and_anything_else_is_counted() -> None:
    sorted_keys = list(range(0, 3000, 3))
    tasks = [[sorted_keys[:200], sorted_keys[200:500]], [sorted_keys[500:], []]]
    assert _proven(tasks) == 1000
    # null keys are not keys: the proof covers the others, the audit counts the nulls
    assert _proven([[[1, None, 2]], [[None, 7, 9]]]) == 4
    assert _proven([[["a", "b"]], [["c", "d"]]], pa.string()) == 4
    assert _proven([[[]], [[None]]]) == 0

    # a duplicate across batches, across tasks, inside a batch, or keys out of order:
    # nothing is proven, and the audit counts the distinct keys exactly
    assert _proven([[[1, 2, 5], [5, 6]], [[10]]]) is None
    assert _proven([[[1, 2, 3]], [[3, 4]]]) is None
    assert _proven([[[1, 2, 2, 3]]]) is None
    assert _proven([[[1, 3, 2]]]) is None
    assert _proven([[[1, 2]], [[5, 6]], [[0, 9]]]) is None  # ranges overlap, keys distinct
    # several key columns, or a key type without a cheap order proof: counted
    composite = ScoreSummary(0.0, 1.0, 2)
    composite.add([pa.array([1, 2]), pa.array([1, 2])], pa.array([0.1, 0.2]))
    assert composite.proven_distinct_keys() is None
    floats = ScoreSummary(0.0, 1.0, 2)
    floats.add([pa.array([1.0, 2.0])], pa.array([0.1, 0.2]))
    assert floats.proven_distinct_keys() is None


def test_an_empty_summary_has_no_mean_and_summaries_of_other_ranges_do_not_merge() -> None:
    empty = ScoreSummary(0.0, 1.0, 5)
    assert empty.metrics()["dist_mean"] is None
    assert empty.metrics()["dist_std"] is None
    with pytest.raises(ValueError, match="different histogram ranges"):
        empty.merge(ScoreSummary(0.0, 2.0, 5))


def test_units_are_balanced_over_tasks_by_rows() -> None:
    from lakescore.ml.file_scoring import ReadUnit, balance_units

    sizes = [216, 216, 216, 55, 216, 216, 100, 100]
    units = [ReadUnit(f"f{i}", rows=n) for i, n in enumerate(sizes)]
    groups = balance_units(units, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(units)))  # each unit once
    loads = [sum(sizes[i] for i in g) for g in groups]
    assert max(loads) - min(loads) <= 55  # alternating them would differ by 161
    assert balance_units(units[:1], 4) == ((0,),)  # never more groups than units
    unknown = balance_units([ReadUnit("a"), ReadUnit("b"), ReadUnit("c", rows=10)], 2)
    assert sorted(len(g) for g in unknown) == [1, 2]


def test_a_comparison_merged_over_tasks_equals_numpy_over_the_good_rows() -> None:
    from lakescore.ml.scoring import ComparisonSummary

    rng = np.random.default_rng(11)
    champion = rng.beta(2, 3, 5_000)
    challenger = np.clip(champion + rng.normal(0, 0.1, 5_000), -0.05, 1.05)  # some outside
    challenger[::250] = np.nan
    merged = ComparisonSummary(0.0, 1.0, 10, 0.5)
    for rows in np.array_split(np.arange(5_000), 6):
        task = ComparisonSummary(0.0, 1.0, 10, 0.5)
        task.add(pa.array(champion[rows]), pa.array(challenger[rows]))
        merged.merge(ComparisonSummary.from_json(task.to_json()))

    good = np.isfinite(challenger) & (challenger >= 0) & (challenger <= 1)
    c, x = champion[good], challenger[good]
    assert merged.rows == 5_000
    assert merged.scored == 5_000  # NaN is a score, and a bad one
    assert merged.bad == 5_000 - good.sum() > 20
    assert merged.good == good.sum()
    assert merged.correlation == pytest.approx(np.corrcoef(c, x)[0, 1], rel=1e-10)
    assert merged.mean_difference == pytest.approx(float((x - c).mean()), abs=1e-12)
    assert merged.flip_share == pytest.approx(float(((c >= 0.5) != (x >= 0.5)).mean()))
    assert merged.std == pytest.approx(float(x.std()), rel=1e-10)
    assert merged.bin_counts == np.histogram(x, np.linspace(0, 1, 11))[0].tolist()
    # the champion's scores of the same rows on the same bins: what psi_champion compares with
    assert merged.champion_bin_counts == np.histogram(c, np.linspace(0, 1, 11))[0].tolist()
    assert (merged.score_min, merged.score_max) == (x.min(), x.max())


def test_a_challenger_without_scores_has_no_comparison_figures() -> None:
    from lakescore.ml.scoring import ComparisonSummary

    summary = ComparisonSummary(0.0, 1.0, 10, 0.5)
    summary.add(pa.array([0.2, 0.7]), pa.nulls(2, pa.float64()))
    assert (summary.rows, summary.scored, summary.bad) == (2, 0, 0)
    assert summary.correlation is None and summary.mean_difference is None
    assert summary.flip_share is None and summary.std is None


def test_units_are_cut_into_tasks_of_equal_rows_covering_each_row_once(tmp_path) -> None:
    import pyarrow.parquet as pq

    from lakescore.ml.file_scoring import ReadUnit, _read_unit_batches, split_units

    # two files of 3 row groups; units as plan_partition_read makes them (whole groups)
    units = []
    for f in range(2):
        path = str(tmp_path / f"f{f}.parquet")
        ids = list(range(f * 70_000, (f + 1) * 70_000))
        pq.write_table(pa.table({"id": ids}), path, row_group_size=25_000)  # 25k, 25k, 20k
        units += [ReadUnit(path, (0, 1), 50_000), ReadUnit(path, (2,), 20_000)]

    pieces, groups = split_units(units, 3)

    read = [
        [
            row
            for i in group
            for b in _read_unit_batches(pieces[i], ["id"], 10_000)
            for row in b["id"].to_pylist()
        ]
        for group in groups
    ]
    assert sorted(row for rows in read for row in rows) == list(range(140_000))
    assert [len(rows) for rows in read] == [46_667, 46_666, 46_667]
    assert len(pieces) <= len(units) + 3 - 1  # cut at most once per task boundary


def test_no_sliver_is_cut_and_units_of_unknown_size_are_whole() -> None:
    from lakescore.ml.file_scoring import ReadUnit, split_units

    # the boundary falls 5,000 rows into the second unit: no 5,000-row piece is cut
    pieces, groups = split_units([ReadUnit("a", rows=95_000), ReadUnit("b", rows=105_000)], 2)
    assert all(p.limit is None and p.skip == 0 for p in pieces)
    assert groups == ((0,), (1,))
    unknown = [ReadUnit("a"), ReadUnit("b", rows=10)]
    pieces, groups = split_units(unknown, 2)
    assert pieces == tuple(unknown) and sorted(i for g in groups for i in g) == [0, 1]


def test_audit_bounds_apart_from_the_histogram_range_and_label_shares() -> None:
    """A regression model's histogram over its baseline's range [0, 10] while the audit
    allows [-100, 100]; a multiclass model's rows per predicted class, merged over tasks."""
    summary = ScoreSummary(0.0, 10.0, 5, audit_low=-100.0, audit_high=100.0)
    summary.add([pa.array([1, 2, 3, 4])], pa.array([-5.0, 3.0, 50.0, 500.0]))
    metrics = summary.metrics()
    assert metrics["audit_oor"] == 1  # 500 only
    assert [metrics[f"dist_b{i}"] for i in range(5)] == [1, 1, 0, 0, 2]  # edges take the rest

    merged = ScoreSummary(0.0, 1.0, 2, classes=["a", "b", "c"])
    for labels in (["a", "b", None], ["c", "a"]):
        task = ScoreSummary(0.0, 1.0, 2, classes=["a", "b", "c"])
        scores = pa.array([0.5] * len(labels))
        task.add([pa.array(range(len(labels)))], scores, None, pa.array(labels, pa.string()))
        merged.merge(ScoreSummary.from_json(task.to_json()))
    assert merged.label_counts == [2, 1, 1]
    assert [merged.metrics()[f"dist_l{i}"] for i in range(3)] == [2, 1, 1]
    with pytest.raises(ValueError, match="classes"):
        merged.merge(ScoreSummary(0.0, 1.0, 2, classes=["a", "b"]))
