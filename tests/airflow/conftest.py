"""Fixtures of the Airflow tests."""

from __future__ import annotations

import pytest

from lakescore.local.airflow_local import airflow_env, prepare


@pytest.fixture(scope="module")
def af_env(world, tmp_path_factory):
    """A fresh AIRFLOW_HOME (SQLite, the world's conf) per test module, for `airflow dags test`."""
    env = airflow_env(
        tmp_path_factory.mktemp("airflow_home"),
        conf_dir=world.conf_dir,
        extra={"LAKESCORE_DEADLINES": "off"},  # apache/airflow#73428, see factory.py
    )
    prepare(env)
    return env
