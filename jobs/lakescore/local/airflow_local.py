"""A local Airflow for lakescore: the environment its processes need, and the one-time setup.

Used by ``lakescore airflow`` (``make airflow``: ``airflow standalone`` on SQLite, next to a
warm driver its tasks use, see :func:`start_local_driver`), by
``make demo`` (``airflow dags test``) and by the integration tests (scheduler + dag-processor
on PostgreSQL). One place decides where DAGs, plugins and config come from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakescore.config import PROJECT_ROOT

if TYPE_CHECKING:
    from lakescore.driver.process import DriverProcess

REPO = PROJECT_ROOT


def airflow_env(
    home: str | Path,
    *,
    conf_dir: str | Path | None = None,
    db_url: str | None = None,
    executor: str = "LocalExecutor",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for every Airflow process of a local deployment rooted at ``home``."""
    home = Path(home).resolve()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            # 2 cores: a few task processes at a time, Spark applications capped by the pool.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            # A local deployment listens on loopback only (Airflow's default is 0.0.0.0);
            # set AIRFLOW__API__HOST to expose it on purpose.
            "AIRFLOW__API__HOST": env.get("AIRFLOW__API__HOST", "127.0.0.1"),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {
                    "type": "file",
                    "log_file_path": str(home / "openlineage" / "events.jsonl"),
                    "append": True,
                }
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "lakescore",
            "LAKESCORE_CONF": str(Path(conf_dir).resolve() if conf_dir else REPO / "conf"),
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "NO_PROXY": "*",
        }
    )
    (home / "openlineage").mkdir(parents=True, exist_ok=True)
    env.update(extra or {})
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def prepare(env: dict[str, str]) -> None:
    """Migrate the metadata DB and create the pool that caps concurrent Spark applications."""
    from lakescore.config import load_platform

    platform = load_platform(env["LAKESCORE_CONF"])
    run = {"env": env, "check": True, "capture_output": True, "text": True, "timeout": 600}
    subprocess.run([airflow_bin(), "db", "migrate"], **run)
    subprocess.run(
        [
            airflow_bin(),
            "pools",
            "set",
            platform.airflow.spark_pool,
            str(platform.airflow.spark_pool_slots),
            "lakescore: concurrent Spark applications",
        ],
        **run,
    )


def admin_password(home: str | Path) -> str | None:
    """The password ``airflow standalone`` generated for ``admin`` (simple auth manager)."""
    file = Path(home) / "simple_auth_manager_passwords.json.generated"
    if not file.is_file():
        return None
    return json.loads(file.read_text()).get("admin")


def start_local_driver(
    env: dict[str, str], home: str | Path, port: int | None = None
) -> DriverProcess:
    """Start ``lakescore driver`` for a local Airflow (log: ``<home>/driver.log``) and point
    its tasks at it (``LAKESCORE_DRIVER_URL`` in ``env``). It warms up while Airflow starts;
    tasks spark-submit until it answers (see :func:`wait_for_local_driver`)."""
    from lakescore.driver.process import start_driver

    driver = start_driver(
        env["LAKESCORE_CONF"], port=port, env=env, log_file=Path(home) / "driver.log", wait=False
    )
    env["LAKESCORE_DRIVER_URL"] = driver.url
    return driver


def wait_for_local_driver(driver: DriverProcess, timeout: float = 240.0) -> bool:
    """Wait until the driver answers and say so in one line (or why it did not start)."""
    from lakescore.terminal import console

    try:
        driver.wait_ready(timeout)
    except RuntimeError as exc:
        console().print(
            f"[yellow]no warm driver[/] ({str(exc).splitlines()[0]}; see {driver.log_file}): "
            "Airflow tasks spark-submit",
            soft_wrap=True,
        )
        return False
    console().print(
        f"warm driver ready on {driver.url} (log {driver.log_file}): Airflow's scoring tasks "
        "use it",
        soft_wrap=True,
    )
    return True
