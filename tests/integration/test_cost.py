"""Cost per run and per 1,000 predictions: from a real run's executor-seconds into its
lineage row and the job report."""

from __future__ import annotations

import re

import pytest

from lakescore.config import CostSpec
from lakescore.reporting.report import render_job_report
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, lineage_rows

pytestmark = pytest.mark.integration


def test_a_run_records_its_cost_and_the_report_shows_it(world, spark):
    name = "gov_cost"
    world.variant_job(name, lambda t: t, "validation: {enabled: false}\n")
    platform = world.platform.model_copy(
        update={"cost": CostSpec(executor_core_hour=0.2, spot_discount=0.7, currency="EUR")}
    )
    result = score_partition(world.job(name), DAYS[0], platform=platform, spark=spark)
    (row,) = lineage_rows(world, run_id=result.run_id)
    assert row["executor_seconds"] > 0 and row["rows_per_s"] > 0
    expected = row["executor_seconds"] / 3600 * 0.2 * 0.3
    assert row["cost"] == pytest.approx(expected)
    assert row["cost_per_1k"] == pytest.approx(expected / ROWS_PER_DAY * 1000)

    page = render_job_report(platform, name)
    cell = re.search(rf'data-run-id="{result.run_id}".*?<td class="cost num">(.*?)</td>', page)
    assert cell and f"{expected:.4f} EUR" in cell.group(1)
    assert 'id="card-cost"' in page
    # without a cost model nothing is priced
    plain = score_partition(world.job(name), DAYS[1], platform=world.platform, spark=spark)
    (row,) = lineage_rows(world, run_id=plain.run_id)
    assert row["cost"] is None and row["executor_seconds"] > 0
