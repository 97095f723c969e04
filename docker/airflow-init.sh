#!/usr/bin/env bash
# The airflow-init service of docker-compose.yml: one-time, idempotent setup that every other
# Airflow service waits for (depends_on: service_completed_successfully). Fetches nothing.
#
#   1. check conf/ (platform.yaml with this deployment's environment) before anything starts
#   2. airflow db migrate        (creates or upgrades the metadata schema in PostgreSQL)
#   3. airflow pools set         (the pool that caps concurrent Spark applications; name and
#                                 slots come from platform.yaml's `airflow:` section)
#   4. the api-server's login    (simple auth manager: user `admin`, password from
#                                 AIRFLOW_ADMIN_PASSWORD, written to a file only the
#                                 api-server volume holds)
set -euo pipefail

: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set (see docker/env.example)}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?not set}"

echo "airflow-init: checking ${LAKESCORE_CONF}/platform.yaml (spark profile ${LAKESCORE_SPARK_PROFILE:-local})"
pool_line="$(python -c '
from lakescore.config import load_platform
settings = load_platform().airflow
print(settings.spark_pool, settings.spark_pool_slots)
')"
read -r pool slots <<<"${pool_line}"

mkdir -p "${LAKESCORE_WAREHOUSE}" "${LAKESCORE_MLFLOW_ARTIFACTS}" "${LAKESCORE_VAR}" \
  "${AIRFLOW_HOME}/logs/openlineage"

echo "airflow-init: airflow db migrate"
airflow db migrate

echo "airflow-init: pool ${pool} (${slots} slots)"
airflow pools set "${pool}" "${slots}" "lakescore: concurrent Spark applications"

umask 077
python -c '
import json, os, pathlib, sys
path = pathlib.Path(sys.argv[1])
users = json.loads(path.read_text() or "{}") if path.is_file() else {}
users["admin"] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
path.write_text(json.dumps(users) + "\n")
' "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
echo "airflow-init: done (login: admin / \$AIRFLOW_ADMIN_PASSWORD)"
