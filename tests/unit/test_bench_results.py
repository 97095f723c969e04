"""Unit tests for the scoring benchmark's pure helpers (bench/bench_results.py): the
results.json rows, the computed cases and the target ratios. No Spark, no benchmark run."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_results as br


def test_case_row_has_min_median_and_rate_at_the_min() -> None:
    row = br.case("pandas_script", "hgb", 2_000_000, [4.0, 3.0, 5.0], 900.0)
    assert row["seconds_min"] == 3.0
    assert row["seconds_median"] == 4.0
    assert row["rows_per_s"] == pytest.approx(2_000_000 / 3.0, rel=1e-6)
    assert row["peak_rss_mb"] == 900.0
    assert row["repetitions"] == 3
    json.dumps(row)  # results.json must be able to hold it


def test_a_case_that_did_not_run_keeps_its_slot_with_null_figures() -> None:
    row = br.case("lakescore_multi", None, 100, None, None, status="not wired")
    assert row["seconds_min"] is None and row["rows_per_s"] is None
    assert row["status"] == "not wired"


def test_cpu_floor_spreads_single_thread_work_over_the_cores() -> None:
    assert br.cpu_floor(6.5, 1.5, 2) == pytest.approx(4.0)


def test_steady_state_is_the_part_that_grows_with_rows() -> None:
    # 10 s fixed + 2 s per million rows.
    steady, fixed = br.steady_from_two_sizes(250_000, 10.5, 2_000_000, 14.0)
    assert steady == pytest.approx(4.0)
    assert fixed == pytest.approx(10.0)
    with pytest.raises(ValueError):
        br.steady_from_two_sizes(2_000_000, 14.0, 250_000, 10.5)


def test_linear_fit_recovers_a_line_and_flags_a_curve() -> None:
    points = [(n, 1.0 + 3e-6 * n) for n in (250_000, 1_000_000, 4_000_000, 8_000_000)]
    intercept, slope, r2 = br.linear_fit(points)
    assert intercept == pytest.approx(1.0)
    assert slope == pytest.approx(3e-6)
    assert r2 == pytest.approx(1.0)
    curved = [(n, (n / 1e6) ** 3) for n in (250_000, 1_000_000, 4_000_000, 8_000_000)]
    assert br.linear_fit(curved)[2] < 0.95


def _results(steady_hgb: float, steady_logreg: float) -> dict:
    cases = [
        br.computed_case("cpu_floor", "hgb", 1, 4.0),
        br.computed_case("cpu_floor", "logreg", 1, 0.9),
        br.case("pandas_script", "hgb", 1, [3.8]),
        br.case("spark_udf", "hgb", 1, [9.0]),
        br.case("spark_udf", "logreg", 1, [5.1]),
        br.computed_case("lakescore_steady", "hgb", 1, steady_hgb),
        br.computed_case("lakescore_steady", "logreg", 1, steady_logreg),
        # A scaling row of the same name must not be taken for the main case.
        br.case("pandas_script", "hgb", 8, [100.0], scaling=True),
    ]
    return {"cases": cases, "memory": {"lakescore": {"ratio": 1.1}}}


def test_target_checks_compute_each_ratio_and_its_verdict() -> None:
    checks = {c["target"]: c for c in br.target_checks(_results(4.4, 1.2))}
    floor = checks["hgb: cpu_floor / lakescore_steady"]
    assert floor["value"] == pytest.approx(4.0 / 4.4, abs=1e-3)
    assert floor["met"] is True
    assert checks["hgb: lakescore_steady / pandas_script"]["value"] == pytest.approx(
        4.4 / 3.8, abs=1e-3
    )
    assert checks["hgb: spark_udf / lakescore_steady"]["met"] is True
    assert checks["logreg: cpu_floor / lakescore_steady"]["met"] is True  # 0.75 >= 0.6
    assert checks["lakescore peak RSS largest / 1/8 size partition"]["met"] is True
    assert checks["multi: lakescore_multi / multi_reference"]["met"] is None


def test_target_checks_fail_when_lakescore_is_slow() -> None:
    checks = {c["target"]: c for c in br.target_checks(_results(8.0, 4.0))}
    assert checks["hgb: cpu_floor / lakescore_steady"]["met"] is False
    assert checks["hgb: lakescore_steady / pandas_script"]["met"] is False
    assert checks["logreg: spark_udf / lakescore_steady"]["met"] is False


def test_scaling_svg_is_well_formed_and_has_one_line_per_series() -> None:
    svg = br.scaling_svg(
        {"lakescore": [(1, 2.0), (8, 9.0)], "pandas <script>": [(1, 1.0), (8, 8.0)]}, "t & t"
    )
    root = ET.fromstring(svg)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2


def test_a_negative_steady_state_from_noise_gives_no_verdict() -> None:
    checks = {c["target"]: c for c in br.target_checks(_results(-3.0, 1.2))}
    assert checks["hgb: cpu_floor / lakescore_steady"]["value"] is None
    assert checks["hgb: cpu_floor / lakescore_steady"]["met"] is None
