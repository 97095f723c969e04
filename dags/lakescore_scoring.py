"""One scoring DAG (`score_<job>`) per conf/jobs/<job>.yaml. Built by the factory in plugins/."""

from lakescore_airflow.factory import build_scoring_dags

globals().update(build_scoring_dags())
