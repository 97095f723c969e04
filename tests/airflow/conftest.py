"""Fixtures of the Airflow tests."""

from __future__ import annotations

import pytest

from lakescore.local.airflow_local import airflow_env, prepare
from tests.support.processes import free_port


@pytest.fixture(scope="module")
def af_env(world, tmp_path_factory):
    """A fresh AIRFLOW_HOME (SQLite, the world's conf) per test module, for `airflow dags test`.

    No warm driver answers at ``LAKESCORE_DRIVER_URL`` (a free port): the scoring tasks fall
    back to spark-submit, whatever else runs on this machine."""
    env = airflow_env(
        tmp_path_factory.mktemp("airflow_home"),
        conf_dir=world.conf_dir,
        extra={
            "LAKESCORE_DEADLINES": "off",  # apache/airflow#73428, see factory.py
            "LAKESCORE_DRIVER_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    prepare(env)
    return env
