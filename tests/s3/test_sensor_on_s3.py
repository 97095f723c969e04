"""The Airflow side on S3: the feature-partition sensor reads the Delta log on the object store
(delta-rs, no JVM) and says whether partition ds exists."""

from __future__ import annotations

from datetime import date

import pytest

from tests.conftest import DAYS

pytestmark = pytest.mark.integration


def test_feature_partition_sensor_pokes_the_log_on_s3(s3_world):
    from lakescore_airflow.operators import FeaturePartitionSensor

    def poke(day: date) -> bool:
        sensor = FeaturePartitionSensor(
            task_id=f"wait_{day:%Y%m%d}",
            job_name="churn",
            ds=day.isoformat(),
            conf_dir=str(s3_world.conf_dir),
        )
        return sensor.poke({})

    assert s3_world.job().features.table.startswith("s3://")
    assert poke(DAYS[0]) is True
    assert poke(date(2026, 11, 1)) is False  # not written yet: keep waiting
