"""Airflow side of lakescore: DAG factory, operators, callbacks, report plugin."""

DAG_ID_PREFIX = "score_"


def dag_id_for(job: str) -> str:
    """The scoring DAG of a job (the factory builds it; the report plugin checks access to it)."""
    return f"{DAG_ID_PREFIX}{job}"
