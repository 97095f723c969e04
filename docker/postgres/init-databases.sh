#!/usr/bin/env bash
# Runs once, when the postgres service initialises an empty data volume (the postgres image
# runs /docker-entrypoint-initdb.d/*.sh). One server, two databases, each owned by its own
# login role: `airflow` (Airflow metadata) and `mlflow` (MLflow tracking + registry backend).
#
# Passwords come from the environment (AIRFLOW_DB_PASSWORD, MLFLOW_DB_PASSWORD; see
# docker/env.example). psql reads them with \getenv (PostgreSQL 15+) and quotes them with
# :'name', so they are neither SQL literals in this file nor visible in a process list.
# Changing them later: ALTER ROLE ... PASSWORD in the running server (this script does not run
# again once the volume holds a database), then update .env and recreate the services.
#
# No `set -u`: the postgres entrypoint sources this file when it is not executable.
set -eo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
