"""Unit tests for lakescore.config (and the exit codes in lakescore.errors).

Pure Python: every test builds its own ``<tmp>/conf`` tree; no Spark, MLflow or network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakescore.config import (
    MlflowSettings,
    PlatformConfig,
    ScoringJob,
    SparkProfile,
    SparkSettings,
    check_job_name,
    is_inside,
    list_job_names,
    load_job,
    load_platform,
    parse_duration,
    table_uri,
)
from lakescore.errors import (
    AuditFailure,
    BadInputError,
    ConfigError,
    LakescoreError,
    PublishConflict,
    ScoringFailure,
)

REPO = Path(__file__).resolve().parents[2]
REPO_CONF = REPO / "conf"

# Every variable the shipped platform.yaml reads, plus the loader's own: cleared for each test
# so that a developer's shell (or the Makefile's LAKESCORE_CONF export) cannot change results.
_ENV_VARS = (
    "LAKESCORE_CONF",
    "LAKESCORE_WAREHOUSE",
    "LAKESCORE_VAR",
    "LAKESCORE_MLFLOW_ARTIFACTS",
    "LAKESCORE_SPARK_PROFILE",
    "LAKESCORE_SPARK_MASTER",
    "MLFLOW_TRACKING_URI",
)

PLATFORM_YAML = """\
warehouse: ${LAKESCORE_WAREHOUSE:-var/warehouse}
var_dir: ${LAKESCORE_VAR:-var}
mlflow:
  tracking_uri: ${MLFLOW_TRACKING_URI:-sqlite:///var/mlflow/mlflow.db}
  artifact_root: ${LAKESCORE_MLFLOW_ARTIFACTS:-var/mlflow/artifacts}
  request_timeout_s: 30
  request_max_retries: 2
tables:
  lineage: lakescore/lineage
  staging: _staging
spark:
  default_profile: ${LAKESCORE_SPARK_PROFILE:-local}
  jars_dir: var/jars
  profiles:
    local:
      description: Embedded default; one JVM, two cores, small shuffles.
      master: ${LAKESCORE_SPARK_MASTER:-local[2]}
      conf:
        spark.driver.memory: 4g
        spark.ui.enabled: false
        spark.sql.shuffle.partitions: 4
"""

CHURN_YAML = """\
name: churn
description: Daily churn propensity for every active customer.
owner: ml-platform
tags: [demo, churn]
model:
  name: churn_classifier
  alias: champion
  positive_class: 1
features:
  table: features/churn
  partition_column: ds
  entity_keys: [customer_id]
  columns: from_signature
output:
  table: scores/churn
  on_empty_partition: fail
audit:
  score_min: 0.0
  score_max: 1.0
schedule:
  cron: "0 6 * * *"
  start_date: 2026-11-01
  catchup: false
  deadline: 3h
validation:
  policy: fail
"""


def edit(text: str, old: str, new: str) -> str:
    """``text`` with exactly one ``old`` replaced (fails loudly if the template changed)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the template"
    return text.replace(old, new)


@dataclass
class Conf:
    """A ``<tmp>/conf`` tree: ``root`` is the project root, ``path`` the conf dir."""

    root: Path
    path: Path

    @property
    def platform_file(self) -> Path:
        return self.path / "platform.yaml"

    def job_file(self, name: str = "churn") -> Path:
        return self.path / "jobs" / f"{name}.yaml"

    def write_platform(self, text: str) -> None:
        self.platform_file.write_text(text)

    def write_job(self, text: str, name: str = "churn") -> None:
        self.job_file(name).write_text(text)

    def warehouse(self) -> Path:
        return self.root / "var" / "warehouse"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def conf(tmp_path: Path) -> Conf:
    root = tmp_path.resolve() / "project"
    path = root / "conf"
    (path / "jobs").mkdir(parents=True)
    c = Conf(root=root, path=path)
    c.write_platform(PLATFORM_YAML)
    c.write_job(CHURN_YAML)
    return c


def config_error(conf_dir: Path, name: str = "churn") -> ConfigError:
    """Load ``name`` and return the ConfigError it must raise."""
    with pytest.raises(ConfigError) as info:
        load_job(name, conf_dir=conf_dir)
    return info.value


def platform_error(conf_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_platform(conf_dir)
    return info.value


# --------------------------------------------------------------------------- shipped conf


def test_repo_platform_loads_with_absolute_paths() -> None:
    platform = load_platform(str(REPO_CONF))

    assert platform.conf_dir == str(REPO_CONF)
    assert platform.warehouse == str(REPO / "var" / "warehouse")
    assert platform.var_dir == str(REPO / "var")
    assert platform.spark.jars_dir == str(REPO / "var" / "jars")
    assert platform.mlflow.tracking_uri == f"sqlite:///{REPO}/var/mlflow/mlflow.db"
    assert platform.mlflow.artifact_root == str(REPO / "var" / "mlflow" / "artifacts")
    assert platform.spark.default_profile == "local"
    assert platform.lineage_table == str(REPO / "var" / "warehouse" / "lakescore" / "lineage")


def test_repo_churn_job_loads_with_tables_inside_the_warehouse() -> None:
    platform = load_platform(REPO_CONF)
    job = load_job("churn", platform=platform)

    assert job.name == "churn"
    assert job.source_file == str(REPO_CONF / "jobs" / "churn.yaml")
    assert job.model.reference == "churn_classifier@champion"
    assert job.spark_profile == "local"
    assert job.schedule.deadline == timedelta(hours=3)
    assert job.schedule.start_date == date(2026, 11, 1)
    for uri in (job.features.table, job.output.table):
        assert Path(uri).is_absolute()
        assert is_inside(uri, platform.warehouse)
    assert job.output.table == str(Path(platform.warehouse) / "scores" / "churn")
    assert job.features.table == str(Path(platform.warehouse) / "features" / "churn")


def test_repo_job_names_include_churn() -> None:
    assert "churn" in list_job_names(REPO_CONF)


# --------------------------------------------------------------------------- platform paths


def test_relative_paths_resolve_against_the_parent_of_the_conf_dir(
    conf: Conf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not relative to the working directory

    platform = load_platform(conf.path)

    assert platform.conf_dir == str(conf.path)
    assert platform.warehouse == str(conf.root / "var" / "warehouse")
    assert platform.var_dir == str(conf.root / "var")
    assert platform.spark.jars_dir == str(conf.root / "var" / "jars")
    assert platform.mlflow.tracking_uri == f"sqlite:///{conf.root}/var/mlflow/mlflow.db"
    assert platform.mlflow.artifact_root == str(conf.root / "var" / "mlflow" / "artifacts")
    assert platform.staging_root == str(conf.root / "var" / "warehouse" / "_staging")


def test_conf_dir_defaults_to_lakescore_conf(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_CONF", str(conf.path))

    assert load_platform().warehouse == str(conf.warehouse())
    assert load_job("churn").output.table == str(conf.warehouse() / "scores" / "churn")


def test_non_sqlite_tracking_uri_is_left_alone(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")

    assert load_platform(conf.path).mlflow.tracking_uri == "http://mlflow.internal:5000"


def test_spark_conf_values_become_strings(conf: Conf) -> None:
    profile = load_platform(conf.path).spark.resolved_profile("local")

    assert profile.master == "local[2]"
    assert profile.conf == {
        "spark.driver.memory": "4g",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
    }


# --------------------------------------------------------------------------- malformed files


def test_malformed_job_yaml_names_file_and_line(conf: Conf) -> None:
    conf.write_job("name: churn\nmodel:\n  name: m\n  alias: champion: x\n")

    err = config_error(conf.path)

    assert err.file == str(conf.job_file())
    assert str(conf.job_file()) in str(err)
    assert "malformed YAML" in str(err)
    assert "line 4" in str(err)


def test_malformed_platform_yaml_names_file_and_line(conf: Conf) -> None:
    conf.write_platform(edit(PLATFORM_YAML, "var_dir: ${LAKESCORE_VAR:-var}", "var_dir: [a, b"))

    err = platform_error(conf.path)

    assert err.file == str(conf.platform_file)
    assert str(conf.platform_file) in str(err)
    assert "malformed YAML (line " in str(err)


def test_top_level_list_is_rejected(conf: Conf) -> None:
    conf.write_job("- a\n- b\n")

    err = config_error(conf.path)

    assert err.file == str(conf.job_file())
    assert "expected a mapping" in str(err)


def test_missing_platform_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()

    err = platform_error(tmp_path / "conf")

    assert err.file == str(tmp_path.resolve() / "conf" / "platform.yaml")
    assert "not found" in str(err)


def test_empty_job_file_reports_missing_sections(conf: Conf) -> None:
    conf.write_job("")

    err = config_error(conf.path)

    assert err.key == "model"
    for key in ("model", "features", "output"):
        assert f"{key}: Field required" in str(err)


# --------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_job_key(conf: Conf) -> None:
    conf.write_job(CHURN_YAML + "ownr: someone\n")

    err = config_error(conf.path)

    assert err.key == "ownr"
    assert err.file == str(conf.job_file())
    assert "ownr: unknown key" in str(err)
    assert str(conf.job_file()) in str(err)


def test_unknown_nested_job_key_is_dotted(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  alias: champion", "  aliass: champion"))

    err = config_error(conf.path)

    assert err.key == "model.aliass"
    assert "key 'model.aliass'" in str(err)
    assert str(conf.job_file()) in str(err)


def test_unknown_platform_keys_top_level_and_nested(conf: Conf) -> None:
    conf.write_platform(PLATFORM_YAML + "warehuose: x\n")
    err = platform_error(conf.path)
    assert err.key == "warehuose"
    assert err.file == str(conf.platform_file)

    conf.write_platform(edit(PLATFORM_YAML, "      master: ", "      mastr: "))
    err = platform_error(conf.path)
    assert err.key == "spark.profiles.local.mastr"
    assert "unknown key" in str(err)


def test_source_file_cannot_be_set_in_a_job_file(conf: Conf) -> None:
    conf.write_job(CHURN_YAML + "source_file: /etc/passwd\n")

    err = config_error(conf.path)

    assert err.key == "source_file"
    assert "unknown key" in str(err)


def test_conf_dir_cannot_be_set_in_platform_file(conf: Conf) -> None:
    conf.write_platform(PLATFORM_YAML + "conf_dir: /elsewhere\n")

    err = platform_error(conf.path)

    assert err.key == "conf_dir"
    assert "unknown key" in str(err)


# --------------------------------------------------------------------------- wrong values


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ("  catchup: false", '  catchup: "maybe"', "schedule.catchup", "valid boolean"),
        ("  alias: champion", "  version: -1", "model.version", "greater than or equal to 1"),
        ("  deadline: 3h", "  deadline: 3 hours", "schedule.deadline", "'3 hours'"),
        ("  start_date: 2026-11-01", "  start_date: soon", "schedule.start_date", "date"),
        (
            "  on_empty_partition: fail",
            "  on_empty_partition: skip",
            "output.on_empty_partition",
            "'fail' or 'publish_empty'",
        ),
        ("  policy: fail", "  policy: ignore", "validation.policy", "'quarantine'"),
        ("tags: [demo, churn]", "tags: [demo, 3]", "tags[1]", "valid string"),
        ("  score_max: 1.0", "  score_max: 0.0", "audit", "score_min must be below score_max"),
        ("  alias: champion", "  alias: null", "model", "set either 'alias' or 'version'"),
        ("  table: features/churn", '  table: ""', "features.table", "at least 1 character"),
        (
            "  entity_keys: [customer_id]",
            "  entity_keys: []",
            "features.entity_keys",
            "at least 1 item",
        ),
        (
            "  entity_keys: [customer_id]",
            "  entity_keys: [customer_id, customer_id]",
            "features.entity_keys",
            "entity keys repeat a column",
        ),
        (
            "  columns: from_signature",
            "  columns: []",
            "features.columns",
            "list at least one feature column",
        ),
    ],
)
def test_bad_job_values_name_the_key(
    conf: Conf, old: str, new: str, key: str, fragment: str
) -> None:
    conf.write_job(edit(CHURN_YAML, old, new))

    err = config_error(conf.path)

    assert err.key == key
    assert err.file == str(conf.job_file())
    assert f"{key}: " in str(err)
    assert fragment in str(err)


def test_pinned_version_replaces_alias_in_reference(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  alias: champion", "  alias: null\n  version: 7"))

    job = load_job("churn", conf_dir=conf.path)

    assert job.model.version == 7
    assert job.model.reference == "churn_classifier/7"


def test_bad_platform_value_names_the_key(conf: Conf) -> None:
    conf.write_platform(edit(PLATFORM_YAML, "request_timeout_s: 30", "request_timeout_s: 0"))

    err = platform_error(conf.path)

    assert err.key == "mlflow.request_timeout_s"
    assert "greater than or equal to 1" in str(err)


def test_every_problem_is_listed_and_the_first_is_the_key(conf: Conf) -> None:
    text = edit(CHURN_YAML, "  catchup: false", "  catchup: maybe")
    conf.write_job(edit(text, "  alias: champion", "  version: 0"))

    err = config_error(conf.path)

    assert err.key == "model.version"
    assert "model.version: " in str(err)
    assert "schedule.catchup: " in str(err)


# --------------------------------------------------------------------------- env vars


def test_missing_env_var_without_default_names_var_file_and_key(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  name: churn_classifier", "  name: ${LAKESCORE_T_MODEL}"))

    err = config_error(conf.path)

    assert err.key == "model.name"
    assert err.file == str(conf.job_file())
    assert "${LAKESCORE_T_MODEL}" in str(err)
    assert str(conf.job_file()) in str(err)
    assert "key 'model.name'" in str(err)


def test_missing_env_var_in_a_list_names_the_index(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "tags: [demo, churn]", "tags: [demo, '${LAKESCORE_T_TAG}']"))

    err = config_error(conf.path)

    assert err.key == "tags[1]"
    assert "${LAKESCORE_T_TAG}" in str(err)


def test_missing_env_var_in_platform(conf: Conf) -> None:
    conf.write_platform(edit(PLATFORM_YAML, "jars_dir: var/jars", "jars_dir: ${LAKESCORE_T_JARS}"))

    err = platform_error(conf.path)

    assert err.key == "spark.jars_dir"
    assert err.file == str(conf.platform_file)
    assert "${LAKESCORE_T_JARS}" in str(err)


def test_default_used_when_var_is_unset(conf: Conf) -> None:
    conf.write_job(
        edit(CHURN_YAML, "  name: churn_classifier", "  name: ${LAKESCORE_T_MODEL:-fallback_m}")
    )

    assert load_job("churn", conf_dir=conf.path).model.name == "fallback_m"


def test_var_value_used_when_set(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_T_MODEL", "from_env")
    monkeypatch.setenv("LAKESCORE_T_SUFFIX", "v2")
    conf.write_job(
        edit(
            CHURN_YAML,
            "  name: churn_classifier",
            "  name: pre_${LAKESCORE_T_MODEL:-fallback_m}_${LAKESCORE_T_SUFFIX}",
        )
    )

    assert load_job("churn", conf_dir=conf.path).model.name == "pre_from_env_v2"


def test_interpolated_values_are_then_validated(
    conf: Conf, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf.write_platform(
        edit(PLATFORM_YAML, "request_timeout_s: 30", "request_timeout_s: ${LAKESCORE_T_TO:-45}")
    )
    assert load_platform(conf.path).mlflow.request_timeout_s == 45

    monkeypatch.setenv("LAKESCORE_T_TO", "forever")
    err = platform_error(conf.path)
    assert err.key == "mlflow.request_timeout_s"


def test_warehouse_from_env_var(
    conf: Conf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path.resolve() / "lake"
    monkeypatch.setenv("LAKESCORE_WAREHOUSE", str(warehouse))

    platform = load_platform(conf.path)
    job = load_job("churn", platform=platform)

    assert platform.warehouse == str(warehouse)
    assert job.output.table == str(warehouse / "scores" / "churn")


def test_default_used_when_var_is_empty(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_WAREHOUSE", "")

    assert load_platform(conf.path).warehouse == str(conf.warehouse())


# --------------------------------------------------------------------------- job names


def test_unknown_job_lists_known_jobs(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "name: churn\n", "name: upsell\n"), name="upsell")

    with pytest.raises(BadInputError) as info:
        load_job("nope", conf_dir=conf.path)

    err = info.value
    assert type(err) is BadInputError
    assert err.job == "nope"
    assert "unknown job" in str(err)
    assert "known jobs: churn, upsell" in str(err)


def test_unknown_job_with_no_jobs(conf: Conf) -> None:
    conf.job_file().unlink()

    with pytest.raises(BadInputError, match="known jobs: none"):
        load_job("churn", conf_dir=conf.path)


def test_list_job_names_is_sorted_and_keeps_bad_names(conf: Conf) -> None:
    conf.write_job(CHURN_YAML, name="Bad-Name")
    conf.write_job(CHURN_YAML, name="alpha")
    (conf.path / "jobs" / "notes.txt").write_text("not a job")

    assert list_job_names(conf.path) == ["Bad-Name", "alpha", "churn"]


@pytest.mark.parametrize("name", ["churn", "c", "churn_v2", "a" * 63])
def test_good_job_names(name: str) -> None:
    assert check_job_name(name) == name


BAD_JOB_NAMES = [
    "../x",
    "a/b",
    "Churn",
    "",
    "1churn",
    "_churn",
    "churn-v2",
    "churn.yaml",
    " churn",
    "a" * 64,
    "..",
]


@pytest.mark.parametrize("name", BAD_JOB_NAMES)
def test_bad_job_names_rejected(name: str) -> None:
    with pytest.raises(BadInputError) as info:
        check_job_name(name)

    assert repr(name) in str(info.value)
    assert "lowercase letters" in str(info.value)


def test_non_string_job_name_rejected() -> None:
    with pytest.raises(BadInputError):
        check_job_name(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BAD_JOB_NAMES)
def test_load_job_rejects_bad_names_before_touching_files(conf: Conf, name: str) -> None:
    # conf/x.yaml is a valid job: "../x" must not reach it via conf/jobs/../x.yaml.
    (conf.path / "x.yaml").write_text(edit(CHURN_YAML, "name: churn\n", "name: x\n"))

    with pytest.raises(BadInputError) as info:
        load_job(name, conf_dir=conf.path)

    assert type(info.value) is BadInputError
    assert "lowercase letters" in str(info.value)


def test_job_name_with_trailing_newline_rejected() -> None:
    with pytest.raises(BadInputError):
        check_job_name("churn\n")


def test_name_in_file_must_match_file_name(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "name: churn\n", "name: upsell\n"))

    err = config_error(conf.path)

    assert err.key == "name"
    assert err.file == str(conf.job_file())
    assert "'upsell' does not match the file name 'churn'" in str(err)


def test_name_defaults_to_file_name(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "name: churn\n", ""))

    assert load_job("churn", conf_dir=conf.path).name == "churn"


def test_invalid_name_in_file_names_file_and_key(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "name: churn\n", "name: Churn\n"))

    err = config_error(conf.path)

    assert err.file == str(conf.job_file())
    assert err.key == "name"


# --------------------------------------------------------------------------- tables


def test_output_table_absolute_outside_warehouse(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", "  table: /tmp/elsewhere"))

    err = config_error(conf.path)

    assert err.key == "output.table"
    assert err.file == str(conf.job_file())
    assert "/tmp/elsewhere is outside the warehouse root" in str(err)


@pytest.mark.parametrize("table", ["../../outside", "scores/../../../outside", ".."])
def test_output_table_relative_escape(conf: Conf, table: str) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", f"  table: {table}"))

    err = config_error(conf.path)

    assert err.key == "output.table"
    assert "outside the warehouse root" in str(err)
    assert str(conf.warehouse()) in str(err)


def test_relative_output_escape_message_shows_resolved_path(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", "  table: ../../outside"))

    err = config_error(conf.path)

    assert f"output table {conf.root / 'outside'} is outside" in str(err)


def test_output_table_may_use_dotdot_inside_the_warehouse(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", "  table: scores/../scores2"))

    job = load_job("churn", conf_dir=conf.path)

    assert job.output.table == str(conf.warehouse() / "scores2")


def test_absolute_output_table_inside_warehouse_is_fine(conf: Conf) -> None:
    target = conf.warehouse() / "abs" / "scores"
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", f"  table: {target}"))

    assert load_job("churn", conf_dir=conf.path).output.table == str(target)


def test_feature_table_may_live_outside_the_warehouse(conf: Conf, tmp_path: Path) -> None:
    features = tmp_path.resolve() / "upstream" / "features"
    conf.write_job(edit(CHURN_YAML, "  table: features/churn", f"  table: {features}"))

    assert load_job("churn", conf_dir=conf.path).features.table == str(features)


@pytest.mark.parametrize(
    "table", ["features/churn", "./features/churn", "features/./churn", "lakescore/lineage"]
)
def test_output_table_must_not_be_the_feature_or_lineage_table(conf: Conf, table: str) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", f"  table: {table}"))

    err = config_error(conf.path)

    assert err.key == "output.table"
    assert "must be its own table" in str(err)


def test_output_table_cannot_be_the_warehouse_root(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", "  table: ."))

    err = config_error(conf.path)

    assert err.key == "output.table"


# --------------------------------------------------------------------------- columns


def test_entity_key_that_is_also_a_feature_is_rejected(conf: Conf) -> None:
    conf.write_job(
        edit(CHURN_YAML, "  columns: from_signature", "  columns: [customer_id, tenure]")
    )

    err = config_error(conf.path)

    assert err.file == str(conf.job_file())
    assert "columns ['customer_id'] are both entity keys and features" in str(err)


def test_partition_column_cannot_be_a_feature_or_key(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  columns: from_signature", "  columns: [ds, tenure]"))
    assert "the partition column cannot be a feature" in str(config_error(conf.path))

    conf.write_job(edit(CHURN_YAML, "  entity_keys: [customer_id]", "  entity_keys: [ds]"))
    assert "the partition column cannot be an entity key" in str(config_error(conf.path))


def test_explicit_feature_list_is_kept(conf: Conf) -> None:
    conf.write_job(
        edit(CHURN_YAML, "  columns: from_signature", "  columns: [tenure, monthly_charges]")
    )

    assert load_job("churn", conf_dir=conf.path).features.columns == ["tenure", "monthly_charges"]


@pytest.mark.parametrize(
    ("old", "key"),
    [
        ("  columns: from_signature", "features.columns"),
        ("  entity_keys: [customer_id]", "features.entity_keys"),
        ("  partition_column: ds", "features.partition_column"),
    ],
)
@pytest.mark.parametrize("column", ["a; drop table", "1st", "a-b", "`ds`", "ds)"])
def test_non_identifier_column_names_rejected(conf: Conf, old: str, key: str, column: str) -> None:
    field = old.strip().split(":")[0]
    value = f'"{column}"' if field == "partition_column" else f'["{column}"]'
    conf.write_job(edit(CHURN_YAML, old, f"  {field}: {value}"))

    err = config_error(conf.path)

    assert err.key == key
    assert f"{column!r} is not a plain column name" in str(err)


# --------------------------------------------------------------------------- spark profiles

# PLATFORM_YAML with a second profile, "big", that extends "local".
TWO_PROFILES = (
    PLATFORM_YAML
    + """\
    big:
      extends: local
      master: yarn
"""
)


def test_unknown_spark_profile_in_job(conf: Conf) -> None:
    conf.write_job(CHURN_YAML + "spark_profile: huge\n")

    err = config_error(conf.path)

    assert err.key == "spark_profile"
    assert err.file == str(conf.job_file())
    assert "unknown spark profile 'huge'" in str(err)
    assert "defines local" in str(err)


def test_job_profile_defaults_to_platform_default(conf: Conf) -> None:
    conf.write_platform(TWO_PROFILES)
    assert load_job("churn", conf_dir=conf.path).spark_profile == "local"

    conf.write_job(CHURN_YAML + "spark_profile: big\n")
    assert load_job("churn", conf_dir=conf.path).spark_profile == "big"


def test_default_profile_from_env(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    conf.write_platform(TWO_PROFILES)
    monkeypatch.setenv("LAKESCORE_SPARK_PROFILE", "big")

    assert load_job("churn", conf_dir=conf.path).spark_profile == "big"


def test_unknown_default_profile_rejected(conf: Conf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_SPARK_PROFILE", "gpu")

    err = platform_error(conf.path)

    assert err.key == "spark"
    assert "default_profile 'gpu' is not among profiles" in str(err)


CHAIN_PLATFORM = """\
warehouse: var/warehouse
mlflow:
  tracking_uri: sqlite:///var/mlflow/mlflow.db
spark:
  default_profile: grandchild
  profiles:
    base:
      description: the base
      master: local[4]
      conf:
        a: 1
        b: 2
        keep: true
    child:
      extends: base
      description: the child
      conf:
        b: 3
        c: x
    grandchild:
      extends: child
      master: local[1]
      conf:
        keep: false
"""


def test_extends_chain_merges_child_wins(conf: Conf) -> None:
    conf.write_platform(CHAIN_PLATFORM)
    spark = load_platform(conf.path).spark

    grandchild = spark.resolved_profile("grandchild")
    assert grandchild.master == "local[1]"
    assert grandchild.conf == {"a": "1", "b": "3", "keep": "false", "c": "x"}
    assert grandchild.extends is None

    child = spark.resolved_profile("child")
    assert child.master == "local[4]"
    assert child.conf == {"a": "1", "b": "3", "keep": "true", "c": "x"}
    assert child.description == "the child"

    base = spark.resolved_profile("base")
    assert base.conf == {"a": "1", "b": "2", "keep": "true"}


@pytest.mark.parametrize(
    ("profiles", "fragment"),
    [
        ({"a": {"master": "local", "extends": "b"}, "b": {"extends": "a"}}, "forms a cycle"),
        ({"a": {"master": "local", "extends": "a"}}, "forms a cycle"),
        ({"a": {"master": "local", "extends": "ghost"}}, "spark profile 'ghost' is not defined"),
        ({"a": {"conf": {"x": 1}}}, "spark profile 'a' has no master"),
    ],
)
def test_bad_profile_chains_rejected(
    conf: Conf, profiles: dict[str, dict[str, object]], fragment: str
) -> None:
    import yaml

    conf.write_platform(
        yaml.safe_dump(
            {
                "warehouse": "var/warehouse",
                "mlflow": {"tracking_uri": "sqlite:///var/m.db"},
                "spark": {"default_profile": "a", "profiles": profiles},
            }
        )
    )

    err = platform_error(conf.path)

    assert err.key == "spark"
    assert err.file == str(conf.platform_file)
    assert fragment in str(err)


def test_resolved_profile_of_unknown_name() -> None:
    settings = SparkSettings(profiles={"local": SparkProfile(master="local")})

    with pytest.raises(ValueError, match="spark profile 'nope' is not defined"):
        settings.resolved_profile("nope")


# --------------------------------------------------------------------------- table_uri/is_inside


def _platform(warehouse: str) -> PlatformConfig:
    return PlatformConfig(
        warehouse=warehouse,
        mlflow=MlflowSettings(tracking_uri="sqlite:////tmp/m.db"),
        spark=SparkSettings(profiles={"local": SparkProfile(master="local")}),
    )


def test_table_uri_local(tmp_path: Path) -> None:
    wh = tmp_path.resolve() / "wh"
    platform = _platform(str(wh))

    assert table_uri(platform, "scores/churn") == str(wh / "scores" / "churn")
    assert table_uri(platform, "scores/../x") == str(wh / "x")
    assert table_uri(platform, "/data/features/") == "/data/features"
    assert table_uri(platform, "s3://bucket/t") == "s3://bucket/t"


def test_table_uri_with_scheme_warehouse() -> None:
    platform = _platform("s3://bucket/wh/")

    assert table_uri(platform, "scores/churn") == "s3://bucket/wh/scores/churn"
    assert platform.lineage_table == "s3://bucket/wh/lakescore/lineage"


@pytest.mark.parametrize(
    ("uri", "root", "inside"),
    [
        ("/wh", "/wh", True),
        ("/wh/", "/wh", True),
        ("/wh/scores/churn", "/wh", True),
        ("/wh/a/../b", "/wh", True),
        ("/wh/../x", "/wh", False),
        ("/wh2/x", "/wh", False),
        ("/", "/wh", False),
        ("s3://b/wh/scores", "s3://b/wh", True),
        ("s3://b/wh/scores", "s3://b/wh/", True),
        ("s3://b/wh2/scores", "s3://b/wh", False),
        ("s3://b/wh/../x", "s3://b/wh", False),
        ("s3://b/wh/..", "s3://b/wh", False),
        ("s3://other/wh/x", "s3://b/wh", False),
        ("/wh/x", "s3://b/wh", False),
    ],
)
def test_is_inside(uri: str, root: str, inside: bool) -> None:
    assert is_inside(uri, root) is inside


def test_scheme_warehouse_rejects_escaping_output(
    conf: Conf, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKESCORE_WAREHOUSE", "s3://bucket/wh")
    assert load_job("churn", conf_dir=conf.path).output.table == "s3://bucket/wh/scores/churn"

    conf.write_job(edit(CHURN_YAML, "  table: scores/churn", "  table: ../other/scores"))
    err = config_error(conf.path)
    assert err.key == "output.table"
    assert "s3://bucket/wh/../other/scores is outside" in str(err)


def test_non_string_top_level_key_is_a_config_error(conf: Conf) -> None:
    conf.write_platform(PLATFORM_YAML + "1: one\n")

    err = platform_error(conf.path)

    assert err.file == str(conf.platform_file)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 2 h ", timedelta(hours=2)),
        ("0s", timedelta(0)),
        (30, timedelta(seconds=30)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_duration(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value", ["2", "h", "2 hours", "2H", "-1h", "1.5h", "2h30m", "", "1w", True, None, [1]]
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)

    assert repr(value) in str(info.value)
    assert "expected a duration" in str(info.value)


def test_deadline_accepts_seconds_and_none(conf: Conf) -> None:
    conf.write_job(edit(CHURN_YAML, "  deadline: 3h", "  deadline: 600"))
    assert load_job("churn", conf_dir=conf.path).schedule.deadline == timedelta(minutes=10)

    conf.write_job(edit(CHURN_YAML, "  deadline: 3h", "  deadline: null"))
    assert load_job("churn", conf_dir=conf.path).schedule.deadline is None


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (BadInputError, 2),
        (ConfigError, 2),
        (ScoringFailure, 1),
        (AuditFailure, 1),
        (PublishConflict, 1),
        (LakescoreError, 1),
    ],
)
def test_exit_codes(cls: type[LakescoreError], code: int) -> None:
    assert cls("boom").exit_code == code


def test_config_error_is_bad_input_and_renders_context() -> None:
    err = ConfigError("unknown key", file="/c/jobs/x.yaml", key="model.aliass")

    assert isinstance(err, BadInputError)
    assert not isinstance(err, ScoringFailure)
    assert str(err) == "file /c/jobs/x.yaml, key 'model.aliass': unknown key"


def test_with_context_fills_in_job_and_partition() -> None:
    err = ScoringFailure("audit failed", column="score").with_context(job="churn", ds="2026-11-20")

    assert str(err) == "job 'churn', partition 2026-11-20, column 'score': audit failed"
    assert err.args == (str(err),)


def test_scoring_job_is_frozen(conf: Conf) -> None:
    job = load_job("churn", conf_dir=conf.path)

    assert isinstance(job, ScoringJob)
    with pytest.raises(ValueError, match="frozen"):
        job.name = "other"  # type: ignore[misc]
