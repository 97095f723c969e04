"""The local Airflow's environment points at this project's DAG and plugin folders (a module
move once left them pointing at ``jobs/dags`` and ``jobs/plugins``: no DAGs, no report plugin)."""

from __future__ import annotations

from pathlib import Path

from lakescore.local.airflow_local import airflow_env
from tests.conftest import REPO


def test_airflow_env_points_at_the_projects_dags_and_plugins(tmp_path: Path) -> None:
    env = airflow_env(tmp_path / "home")
    dags, plugins = (
        Path(env["AIRFLOW__CORE__DAGS_FOLDER"]),
        Path(env["AIRFLOW__CORE__PLUGINS_FOLDER"]),
    )
    assert dags == REPO / "dags" and (dags / "lakescore_scoring.py").is_file()
    assert (
        plugins == REPO / "plugins"
        and (plugins / "lakescore_airflow" / "report_plugin.py").is_file()
    )
    assert Path(env["LAKESCORE_CONF"]) == REPO / "conf"
