"""Config of champion/challenger scoring: ``model.challengers`` and ``shadow`` (pure Python)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakescore.config import load_job
from lakescore.errors import ConfigError
from tests.unit.test_config import (
    _ENV_VARS,
    CHURN_YAML,
    PLATFORM_YAML,
    Conf,
    config_error,
    edit,
)


@pytest.fixture(name="shadow_conf")
def shadow_conf_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conf:
    """A ``<tmp>/project/conf`` tree with the churn job (environment cleared, as in
    tests/unit/test_config.py)."""
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    root = tmp_path.resolve() / "project"
    (root / "conf" / "jobs").mkdir(parents=True)
    conf = Conf(root=root, path=root / "conf")
    conf.write_platform(PLATFORM_YAML)
    conf.write_job(CHURN_YAML)
    return conf


CHALLENGERS = """  positive_class: 1
  challengers:
    - {alias: challenger}
    - {version: 3}
    - {name: other_model, alias: candidate, positive_class: 0}
"""


def with_challengers(text: str = CHALLENGERS) -> str:
    return edit(CHURN_YAML, "  positive_class: 1\n", text)


def test_challengers_and_default_shadow_table(shadow_conf: Conf) -> None:
    shadow_conf.write_job(with_challengers())
    job = load_job("churn", shadow_conf.path)
    refs = [c.model_ref(job.model) for c in job.model.challengers]
    assert [r.reference for r in refs] == [
        "churn_classifier@challenger",
        "churn_classifier/3",
        "other_model@candidate",
    ]
    assert [r.positive_class for r in refs] == [1, 1, 0]
    assert job.shadow_table == job.output.table + "_shadow"
    assert Path(job.shadow_table).is_absolute()
    assert job.shadow.decision_threshold == 0.5 and job.shadow.enabled


def test_shadow_table_and_threshold_from_config(shadow_conf: Conf) -> None:
    shadow_conf.write_job(
        with_challengers() + "shadow: {table: shadow/churn, decision_threshold: 0.3}\n"
    )
    job = load_job("churn", shadow_conf.path)
    assert job.shadow_table == str(shadow_conf.warehouse() / "shadow" / "churn")
    assert job.shadow.decision_threshold == 0.3


@pytest.mark.parametrize(
    ("challenger", "key", "message"),
    [
        ("{alias: x, version: 2}", "model.challengers[0]", "exactly one of"),
        ("{name: churn_classifier}", "model.challengers[0]", "exactly one of"),
        ("{alias: champion}", "model", "repeats the champion"),
        ("{aliass: x}", "model.challengers[0].aliass", "unknown key"),
        ("{version: 0}", "model.challengers[0].version", "greater than or equal to 1"),
    ],
)
def test_bad_challengers_name_the_key(
    shadow_conf: Conf, challenger: str, key: str, message: str
) -> None:
    shadow_conf.write_job(with_challengers(f"  positive_class: 1\n  challengers: [{challenger}]\n"))
    err = config_error(shadow_conf.path)
    assert err.key == key
    assert message in str(err)


def test_repeated_challenger_is_refused(shadow_conf: Conf) -> None:
    shadow_conf.write_job(with_challengers("  challengers: [{version: 2}, {version: 2}]\n"))
    assert "challengers[1] (churn_classifier/2) repeats" in str(config_error(shadow_conf.path))


@pytest.mark.parametrize(
    ("shadow", "key"),
    [
        ("{table: scores/churn}", "shadow.table"),
        ("{table: /elsewhere/shadow}", "shadow.table"),
        ("{decision_threshold: 1.5}", "(top level)"),
        ("{enabled: maybe}", "shadow.enabled"),
    ],
)
def test_bad_shadow_settings_name_the_key(shadow_conf: Conf, shadow: str, key: str) -> None:
    shadow_conf.write_job(with_challengers() + f"shadow: {shadow}\n")
    err = config_error(shadow_conf.path)
    assert isinstance(err, ConfigError)
    assert err.key == key


def test_threshold_is_only_checked_when_there_are_challengers(shadow_conf: Conf) -> None:
    narrow = edit(CHURN_YAML, "  score_max: 1.0\n", "  score_max: 0.2\n")
    shadow_conf.write_job(narrow)
    assert load_job("churn", shadow_conf.path).audit.score_max == 0.2
    shadow_conf.write_job(edit(narrow, "  positive_class: 1\n", CHALLENGERS))
    assert "decision_threshold" in str(config_error(shadow_conf.path))
