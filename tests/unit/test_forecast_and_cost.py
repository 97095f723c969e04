"""The run-time fit and the cost model, on points with a known answer."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from lakescore.config import CostSpec
from lakescore.ops.cost import run_cost
from lakescore.ops.forecast import Forecast, WindowCheck, fit


def test_linear_fit_recovers_fixed_and_per_row_cost_and_its_band_covers_new_runs():
    rng = random.Random(4)
    truth = lambda rows: 12.0 + rows / 50_000  # noqa: E731  12 s start-up, 50k rows/s
    points = [(r, truth(r) + rng.gauss(0, 0.5)) for r in range(100_000, 2_100_000, 100_000)]
    model = fit(points)
    assert model.kind == "linear" and model.runs == 20
    assert model.intercept == pytest.approx(12.0, abs=1.0)
    assert 1 / model.slope == pytest.approx(50_000, rel=0.05)
    new = model.predict(1_500_000, confidence=0.9)
    assert new.low < truth(1_500_000) < new.high
    assert new.high - new.low < 4.0  # about +-1.7 sigma of 0.5 s
    # the band widens away from the data
    far = model.predict(20_000_000)
    assert far.high - far.low > new.high - new.low


def test_same_sized_partitions_scale_the_whole_duration():
    points = [(3_000, 10.0), (3_000, 12.0), (3_000, 11.0)]
    model = fit(points)
    assert model.kind == "proportional"
    seven_x = model.predict(21_000)
    assert seven_x.seconds == pytest.approx(77.0)
    assert seven_x.low < 77.0 < seven_x.high


def test_fewer_than_three_runs_give_no_band_and_no_runs_no_forecast():
    two = fit([(1_000, 5.0), (2_000, 9.0)]).predict(4_000)
    assert two.seconds is not None and two.low is None and two.high is None
    assert "at least 3 needed" in two.describe()
    none = fit([]).predict(4_000)
    assert none.seconds is None and "no succeeded score runs" in none.describe()


def test_window_check_flags_a_forecast_over_the_window():
    model = fit([(3_000, 10.0), (3_000, 12.0), (3_000, 11.0)])
    window = timedelta(minutes=1)
    small = WindowCheck("j", model.predict(3_000), window)
    big = WindowCheck("j", model.predict(21_000), window)
    assert not small.exceeds and big.exceeds
    assert "EXCEEDS the batch window of 60.0s" in big.message()
    assert WindowCheck("j", Forecast(5, None, None, None, model, 0.9), window).exceeds is False


def test_cost_of_a_run():
    spec = CostSpec(executor_core_hour=0.10, spot_discount=0.6)
    priced = run_cost(7_200.0, 400_000, spec)
    assert priced.cost == pytest.approx(2 * 0.10 * 0.4)
    assert priced.cost_per_1k == pytest.approx(0.08 / 400)
    assert run_cost(7_200.0, 0, spec).cost_per_1k is None
    assert run_cost(None, 10, spec) is None and run_cost(10.0, 10, None) is None
