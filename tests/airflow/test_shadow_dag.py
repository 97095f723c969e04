"""The DAG-level switch for shadow scoring: a ``shadow`` param (default true) that turns a job's
challengers off for one run, passed to the Spark job as ``--shadow on|off``."""

from __future__ import annotations

import pytest

from lakescore.config import load_job, load_platform
from lakescore.errors import BadInputError
from tests.unit.test_config import CHURN_YAML, Conf, edit
from tests.unit.test_shadow_config import shadow_conf_fixture  # noqa: F401 (fixture)


def _dag(shadow_conf: Conf, challengers: str):
    from lakescore_airflow.factory import build_dag

    shadow_conf.write_job(
        edit(CHURN_YAML, "  positive_class: 1\n", f"  challengers: {challengers}\n")
    )
    platform = load_platform(shadow_conf.path)
    return build_dag(load_job("churn", platform=platform), platform, str(shadow_conf.path))


def test_shadow_param_renders_on_and_off(shadow_conf: Conf) -> None:
    dag = _dag(shadow_conf, "[{alias: challenger}]")
    assert dag.params["shadow"] is True
    args = dag.get_task("score_and_publish").application_args
    template = args[args.index("--shadow") + 1]
    env = dag.get_template_env()
    assert env.from_string(template).render(params={"shadow": True}) == "on"
    assert env.from_string(template).render(params={"shadow": False}) == "off"
    assert "--shadow" not in dag.get_task("validate_partition").application_args
    assert "challenger" in dag.doc_md and "lakescore promote --job churn" in dag.doc_md


def test_no_challengers_no_switch(shadow_conf: Conf) -> None:
    dag = _dag(shadow_conf, "[]")
    assert set(dag.params.keys()) == {"ds", "model_version"}
    assert "--shadow" not in dag.get_task("score_and_publish").application_args


def test_run_conf_accepts_shadow_and_the_cli_parses_it() -> None:
    from lakescore_airflow.operators import partition_for_run

    from lakescore.cli import _parser

    day = partition_for_run({"ds": "2026-11-20", "shadow": False}, None, None, 0, job="churn")
    assert day.isoformat() == "2026-11-20"
    with pytest.raises(BadInputError):
        partition_for_run({"ds": "2026-11-20", "shadows": False}, None, None, 0, job="churn")
    args = _parser().parse_args(
        ["score", "--job", "churn", "--ds", "2026-11-20", "--shadow", "off"]
    )
    assert args.shadow == "off"
    with pytest.raises(SystemExit):
        _parser().parse_args(["score", "--job", "churn", "--ds", "2026-11-20", "--shadow", "no"])


def test_openlineage_names_the_shadow_table_when_challengers_published(shadow_conf: Conf) -> None:
    import json

    dag = _dag(shadow_conf, "[{alias: challenger}]")
    job = load_job("churn", shadow_conf.path)
    score = dag.get_task("score_and_publish")
    score._published = {
        "input_version": 2,
        "output_version": 5,
        "details": json.dumps({"shadow": {"version": 3}}),
    }
    lineage = score.get_openlineage_facets_on_complete(None)
    outputs = {o.name: o.facets["version"].datasetVersion for o in lineage.outputs}
    assert outputs == {job.output.table: "5", job.shadow_table: "3"}
    score._published = {"input_version": 2, "output_version": 6, "details": None}
    lineage = score.get_openlineage_facets_on_complete(None)
    assert [o.name for o in lineage.outputs] == [job.output.table]
