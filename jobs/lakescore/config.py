"""The one config loader: ``conf/platform.yaml`` plus one ``conf/jobs/<job>.yaml`` per scoring job.

Both the Airflow side (DAG factory, at parse time) and the Spark side (the scoring job, at run
time) call :func:`load_platform` and :func:`load_job`; nothing else parses these files. This
module imports only pydantic and PyYAML, so it is cheap at DAG-parse time.

Strings may reference environment variables as ``${VAR}`` or ``${VAR:-default}``: that is how
secrets and deployment-specific values (warehouse root, MLflow URI) get in; they never live in
``conf/``. Every error names the file and the dotted key.

Example::

    platform = load_platform()
    job = load_job("churn", platform=platform)
    job.output.table        # absolute URI of the prediction table, inside the warehouse
"""

from __future__ import annotations

import math
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakescore.errors import BadInputError, ConfigError
from lakescore.storage import StorageSettings, is_object_store, normalise
from lakescore.storage import activate as activate_storage

JOB_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Use IDENTIFIER_PATTERN.fullmatch / JOB_NAME_PATTERN.fullmatch (no trailing-newline loophole).
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


#: The source checkout lakescore runs from (conf/, dags/, jobs/ and var/ live here).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_conf_dir() -> Path:
    """``$LAKESCORE_CONF``, else ``./conf`` if it exists, else the repository's ``conf/``."""
    if env := os.environ.get("LAKESCORE_CONF"):
        return Path(env).expanduser().resolve()
    cwd_conf = Path.cwd() / "conf"
    if (cwd_conf / "platform.yaml").is_file():
        return cwd_conf.resolve()
    return (PROJECT_ROOT / "conf").resolve()


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` (or a number of seconds) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(**{_DURATION_UNITS[m.group(2)]: int(m.group(1))})
    raise ValueError(f"expected a duration such as '90s', '15m', '2h' or '1d', got {value!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- platform


class SparkProfile(_Strict):
    """Where and how the Spark application runs. ``extends`` overlays another profile (or a
    combination such as ``standalone+spot``).

    An ``overlay: true`` profile has no master: it only adds settings, and is used in a
    combination after a base profile, e.g. ``LAKESCORE_SPARK_PROFILE=standalone+spot``.
    """

    master: str | None = None
    extends: str | None = None
    overlay: bool = False
    conf: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): _spark_conf_value(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _overlay_is_settings_only(self) -> SparkProfile:
        if self.overlay and (self.master or self.extends):
            raise ValueError("an overlay profile only adds conf: no 'master', no 'extends'")
        return self


def _spark_conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


PROFILE_SEPARATOR = "+"


class SparkSettings(_Strict):
    default_profile: str = "local"
    jars_dir: str = "var/jars"
    profiles: dict[str, SparkProfile]

    @model_validator(mode="after")
    def _profiles_resolve(self) -> SparkSettings:
        first = self.default_profile.split(PROFILE_SEPARATOR)[0].strip()
        if first not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not among profiles")
        try:
            self.resolved_profile(self.default_profile)
        except ValueError as exc:
            raise ValueError(f"default_profile {self.default_profile!r}: {exc}") from None
        for name, profile in self.profiles.items():
            if PROFILE_SEPARATOR in name:
                raise ValueError(f"spark profile name {name!r} must not contain '+'")
            if not profile.overlay:
                self.resolved_profile(name)  # raises on unknown parents or cycles
        return self

    def resolved_profile(self, name: str) -> SparkProfile:
        """The profile with every ``extends`` parent and every ``+overlay`` merged in (later
        wins): ``standalone+spot`` is profile ``standalone`` with overlay ``spot`` on top."""
        master, conf, description = self._merge(name, ())
        if master is None:
            parts = name.split(PROFILE_SEPARATOR)
            if len(parts) == 1 and name in self.profiles and self.profiles[name].overlay:
                raise ValueError(
                    f"spark profile {name!r} is an overlay: combine it with a base profile, "
                    f"e.g. 'local{PROFILE_SEPARATOR}{name}'"
                )
            raise ValueError(
                f"spark profile {name!r} has no master (set it or extend one that does)"
            )
        return SparkProfile(master=master, conf=conf, description=description)

    def _merge(self, name: str, stack: tuple[str, ...]) -> tuple[str | None, dict[str, str], str]:
        parts = [part.strip() for part in name.split(PROFILE_SEPARATOR)]
        if any(not part for part in parts):
            raise ValueError(f"spark profile {name!r}: empty name around '+'")
        master: str | None = None
        conf: dict[str, str] = {}
        description = ""
        for position, part in enumerate(parts):
            if part in stack:
                raise ValueError(f"spark profile {stack[0]!r}: 'extends' forms a cycle at {part!r}")
            if part not in self.profiles:
                raise ValueError(f"spark profile {part!r} is not defined")
            profile = self.profiles[part]
            if position == 0 and profile.overlay and len(parts) > 1:
                raise ValueError(
                    f"spark profile {name!r}: {part!r} is an overlay; put the base profile "
                    "first (base+overlay)"
                )
            if position > 0 and not profile.overlay:
                raise ValueError(
                    f"spark profile {name!r}: {part!r} is not an overlay (overlay: true); "
                    "combine one base profile with overlays"
                )
            if profile.extends:
                master, conf, description = self._merge(profile.extends, (*stack, part))
            master = profile.master or master
            conf.update(profile.conf)
            if position == 0:
                description = profile.description or description
            elif profile.description:
                description = f"{description} + {profile.description}".strip(" +")
        return master, conf, description


class MlflowSettings(_Strict):
    tracking_uri: str
    registry_uri: str | None = None
    artifact_root: str | None = None
    request_timeout_s: int = Field(default=30, ge=1, le=600)
    request_max_retries: int = Field(default=2, ge=0, le=10)


class TableSettings(_Strict):
    lineage: str = "lakescore/lineage"
    metrics: str = "lakescore/metrics"
    staging: str = "_staging"
    reports: str = "_reports"
    rejects: str = "rejects"


class OpenLineageSpec(_Strict):
    """OpenLineage from the Spark side (the openlineage-spark listener; Airflow's provider is
    configured the usual way, ``AIRFLOW__OPENLINEAGE__TRANSPORT``)."""

    spark_listener: bool = True
    namespace: str = "lakescore"
    transport: Literal["file", "http", "console"] = "file"
    # file transport: one JSON event per line
    file: str = "var/openlineage/spark-events.jsonl"
    # http transport: e.g. a Marquez endpoint
    url: str | None = None

    @model_validator(mode="after")
    def _http_needs_url(self) -> OpenLineageSpec:
        if self.transport == "http" and not self.url:
            raise ValueError("transport 'http' needs 'url'")
        return self


class AirflowPlatformSpec(_Strict):
    """Airflow-side settings shared by every job's DAG."""

    # A pool that caps concurrent Spark applications across all scoring DAGs.
    spark_pool: str = "lakescore_spark"
    spark_pool_slots: int = Field(default=2, ge=1, le=1024)
    # spark-submit reads the master of profile P from connection <prefix><P>; when no such
    # connection is defined, lakescore supplies one from the profile's master.
    spark_conn_prefix: str = "lakescore_spark_"
    dag_tags: list[str] = Field(default_factory=lambda: ["lakescore"])


#: Overrides ``driver.host``/``driver.port`` for callers (``http://driver:8790``), or ``off``.
DRIVER_URL_ENV = "LAKESCORE_DRIVER_URL"
#: The driver's bearer token (for it and its callers): only ever in the environment.
DRIVER_TOKEN_ENV = "LAKESCORE_DRIVER_TOKEN"


class DriverSpec(_Strict):
    """The warm driver (``lakescore driver``): one long-lived process holding a Spark session
    (and MLflow, Great Expectations imported) that serves Airflow's validate/score tasks over
    HTTP. Tasks use it when it answers and fall back to spark-submit when it does not. The
    bearer token is read from ``$LAKESCORE_DRIVER_TOKEN``, never from a config file; off
    loopback the driver refuses to start without one."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8790, ge=1, le=65535)
    # Seconds a task waits for the driver's /health answer before falling back.
    health_timeout_s: float = Field(default=3.0, gt=0, le=60)
    # While a run is queued or silent, the driver sends a line this often (a caller that went
    # away is noticed, and its run cancelled, within this time).
    heartbeat_s: float = Field(default=10.0, gt=0, le=300)

    def url(self) -> str | None:
        """Where callers reach the driver: ``$LAKESCORE_DRIVER_URL`` (``off`` = no driver),
        else ``http://<host>:<port>``; None when disabled."""
        env = os.environ.get(DRIVER_URL_ENV, "").strip()
        if env.lower() in ("off", "none", "false", "0"):
            return None
        if env:
            return env.rstrip("/")
        if not self.enabled:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def token(self) -> str | None:
        return os.environ.get(DRIVER_TOKEN_ENV) or None


class CostSpec(_Strict):
    """Turns executor-seconds into money: ``executor_seconds / 3600 * executor_core_hour *
    (1 - spot_discount)`` (one executor-second = one core busy for one second)."""

    executor_core_hour: float = Field(ge=0.0)
    spot_discount: float = Field(default=0.0, ge=0.0, lt=1.0)
    currency: str = "USD"


class GovernanceSpec(_Strict):
    """Right to erasure: ``lakescore erase --vacuum`` removes the files that still hold erased
    rows once they are older than ``erasure_retention`` (VACUUM retention); time travel to
    versions older than that stops working."""

    erasure_retention: timedelta = timedelta(hours=72)

    @field_validator("erasure_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class PlatformConfig(_Strict):
    """``conf/platform.yaml``: where the warehouse is, which registry, which Spark profiles."""

    warehouse: str
    mlflow: MlflowSettings
    spark: SparkSettings
    tables: TableSettings = TableSettings()
    airflow: AirflowPlatformSpec = AirflowPlatformSpec()
    openlineage: OpenLineageSpec = OpenLineageSpec()
    cost: CostSpec | None = None
    governance: GovernanceSpec = GovernanceSpec()
    driver: DriverSpec = DriverSpec()
    # object storage (s3://): endpoint, region, addressing; credentials from the environment
    storage: StorageSettings = StorageSettings()
    var_dir: str = "var"
    # set by the loader, not by the file
    conf_dir: str = ""

    @property
    def lineage_table(self) -> str:
        return table_uri(self, self.tables.lineage)

    @property
    def staging_root(self) -> str:
        return self._local_root(self.tables.staging)

    def _local_root(self, name: str) -> str:
        """Folders of plain files (staging, run markers, reports) stay on a local path: with a
        warehouse on object storage, relative names go under ``var_dir`` instead."""
        if is_object_store(self.warehouse) and not _has_scheme(name):
            return str(Path(self.var_dir) / name.lstrip("/"))
        return table_uri(self, name)

    @property
    def metrics_table(self) -> str:
        return table_uri(self, self.tables.metrics)

    @property
    def reports_root(self) -> str:
        return self._local_root(self.tables.reports)

    def rejects_table(self, job: str) -> str:
        return table_uri(self, f"{self.tables.rejects}/{job}")


# --------------------------------------------------------------------------- jobs


class ChallengerRef(_Strict):
    """A model scored in shadow next to the champion: ``{alias: challenger}``, ``{version: 3}``
    or ``{name: other_model, alias: x}`` (``name`` defaults to the champion's model)."""

    name: str | None = Field(default=None, min_length=1)
    alias: str | None = None
    version: int | None = Field(default=None, ge=1)
    positive_class: int | str | None = None  # default: the champion's

    @model_validator(mode="after")
    def _alias_or_version(self) -> ChallengerRef:
        if (self.alias is None) == (self.version is None):
            raise ValueError("set exactly one of 'alias' or 'version'")
        return self

    def model_ref(self, champion: ModelRef) -> ModelRef:
        """This challenger as a :class:`ModelRef` (for the registry lookup)."""
        return ModelRef(
            name=self.name or champion.name,
            alias=self.alias,
            version=self.version,
            positive_class=(
                self.positive_class if self.positive_class is not None else champion.positive_class
            ),
            task=champion.task,
            requirements=champion.requirements,
        )


class ModelRef(_Strict):
    """Which registered model scores the job: ``name@alias`` or a pinned ``version``; plus
    optional ``challengers`` scored in shadow in the same pass (see :class:`ShadowSpec`)."""

    name: str = Field(min_length=1)
    alias: str | None = "champion"
    version: int | None = Field(default=None, ge=1)
    positive_class: int | str = 1
    # What the score is: auto (decided from the model: its classes and predict_proba, or a
    # pyfunc's output signature), binary (P(positive_class)), multiclass (P(predicted
    # class), plus label and probabilities) or regression (the predicted value).
    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    # The model's logged requirements.txt against this environment: a conflict fails the
    # run before any Spark work (fail) or is reported (warn).
    requirements: Literal["fail", "warn"] = "fail"
    challengers: list[ChallengerRef] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _alias_or_version(self) -> ModelRef:
        if self.alias is None and self.version is None:
            raise ValueError("set either 'alias' or 'version'")
        references = [self.reference] + [c.model_ref(self).reference for c in self.challengers]
        for i, ref in enumerate(references[1:]):
            if ref in references[: i + 1]:
                raise ValueError(f"challengers[{i}] ({ref}) repeats the champion or a challenger")
        return self

    @property
    def reference(self) -> str:
        return f"{self.name}/{self.version}" if self.version else f"{self.name}@{self.alias}"


class FeatureSource(_Strict):
    table: str = Field(min_length=1)
    partition_column: str = "ds"
    entity_keys: list[str] = Field(min_length=1)
    columns: list[str] | Literal["from_signature"] = "from_signature"
    # NaN is a missing value many models handle (HistGradientBoosting does): allowed unless
    # the job says otherwise. Infinite values are always refused before scoring.
    allow_nan: bool = True

    @field_validator("partition_column")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("entity_keys")
    @classmethod
    def _identifiers(cls, value: list[str]) -> list[str]:
        for item in value:
            _check_identifier(item)
        if len(set(value)) != len(value):
            raise ValueError("entity keys repeat a column")
        return value

    @field_validator("columns")
    @classmethod
    def _feature_identifiers(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("list at least one feature column, or say 'from_signature'")
            for item in value:
                _check_identifier(item)
        return value


class OutputSpec(_Strict):
    table: str = Field(min_length=1)
    on_empty_partition: Literal["fail", "publish_empty"] = "fail"


class AuditSpec(_Strict):
    """Bounds every published score must respect: unset, 0-1 for a classifier's probability;
    a regression job sets both (they are also its drift histogram's range)."""

    score_min: float | None = None
    score_max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AuditSpec:
        low, high = self.bounds("binary")
        if low >= high:
            raise ValueError("score_min must be below score_max")
        if (self.score_min is None) != (self.score_max is None):
            raise ValueError("set both score_min and score_max, or neither")
        for value in (self.score_min, self.score_max):
            if value is not None and not math.isfinite(value):
                raise ValueError("score bounds must be finite numbers")
        return self

    def bounds(self, task: str) -> tuple[float, float]:
        """(low, high) for a model of ``task``: the configured bounds, else 0-1 for a
        classifier; a regression job without bounds has none (-inf, inf)."""
        if self.score_min is not None and self.score_max is not None:
            return self.score_min, self.score_max
        return (-math.inf, math.inf) if task == "regression" else (0.0, 1.0)


class ScheduleSpec(_Strict):
    cron: str | None = "@daily"
    start_date: date = date(2026, 1, 1)
    catchup: bool = False
    # The run for logical date D scores partition D + partition_offset_days (e.g. -1: a run
    # at 06:00 scores yesterday's features).
    partition_offset_days: int = Field(default=0, ge=-31, le=31)
    # Alert when the partition is not published this long after the run was queued.
    deadline: timedelta | None = None
    # A partition date further ahead than this (from today) is refused as bad input.
    max_future_days: int = Field(default=366, ge=0, le=3660)
    # The batch window: how long one run may take. `lakescore forecast` and the DAG's
    # wait_for_partition task warn when a partition's forecast run time exceeds it.
    window: timedelta | None = None

    @field_validator("deadline", "window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)


class AirflowJobSpec(_Strict):
    """How Airflow runs the job: retries with backoff, timeouts, concurrency."""

    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: timedelta = timedelta(minutes=5)
    retry_exponential_backoff: bool = True
    max_retry_delay: timedelta = timedelta(hours=1)
    max_active_runs: int = Field(default=3, ge=1, le=64)
    score_timeout: timedelta = timedelta(hours=2)
    wait_timeout: timedelta = timedelta(hours=6)
    wait_poke_interval: timedelta = timedelta(minutes=5)
    # When the forecast run time of the partition exceeds schedule.window (checked by
    # wait_for_partition before scoring): log a warning + lineage row, or also fail the run.
    on_window_overflow: Literal["warn", "fail"] = "warn"

    @field_validator(
        "retry_delay",
        "max_retry_delay",
        "score_timeout",
        "wait_timeout",
        "wait_poke_interval",
        mode="before",
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("wait_poke_interval")
    @classmethod
    def _poke_not_too_short(cls, value: timedelta) -> timedelta:
        # A reschedule-mode sensor re-queued before the scheduler processed its previous poke
        # is marked failed by Airflow 3.3 (apache/airflow#71172): keep pokes >= 30 s apart.
        if value < timedelta(seconds=30):
            raise ValueError("must be at least 30s (Airflow marks faster reschedule pokes failed)")
        return value


class DeclaredExpectation(_Strict):
    """A row-level rule on one feature column; becomes a Great Expectations expectation (and,
    for quarantine, the same rule as a Spark predicate)."""

    column: str
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    not_null: bool = False
    mostly: float = Field(default=1.0, gt=0.0, le=1.0)

    @field_validator("column")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _check_identifier(value)

    @model_validator(mode="after")
    def _something_to_check(self) -> DeclaredExpectation:
        if self.min is None and self.max is None and not self.values and not self.not_null:
            raise ValueError("give at least one of min, max, values, not_null")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class RowCountBand(_Strict):
    """Rows of this partition relative to the previous partition of the feature table."""

    min_ratio: float = Field(default=0.5, ge=0.0)
    max_ratio: float = Field(default=2.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> RowCountBand:
        if self.min_ratio > self.max_ratio:
            raise ValueError("min_ratio is above max_ratio")
        return self


class ValidationSpec(_Strict):
    """Great Expectations on the feature partition before scoring.

    Defaults need no writing: feature columns exist with a type the model accepts, entity keys
    are not null and unique, the row count is within ``row_count_band`` of the previous
    partition. ``expectations`` adds declared ranges/sets; ``suite`` adds a Great Expectations
    suite JSON file (path relative to conf/).
    """

    enabled: bool = True
    policy: Literal["fail", "warn", "quarantine"] = "fail"
    max_reject_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    row_count_band: RowCountBand | None = RowCountBand()
    expectations: list[DeclaredExpectation] = Field(default_factory=list)
    suite: str | None = None


class MonitoringSpec(_Strict):
    """Score drift: population stability index vs the previous partition and the training
    baseline, over ``bins`` equal-width bins between audit.score_min and audit.score_max."""

    bins: int = Field(default=10, ge=2, le=100)
    psi_warn: float = Field(default=0.1, ge=0.0)
    psi_fail: float | None = Field(default=0.25, ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringSpec:
        if self.psi_fail is not None and self.psi_fail < self.psi_warn:
            raise ValueError("psi_fail is below psi_warn")
        return self


class ShadowSpec(_Strict):
    """Where challenger scores go and how they are compared with the champion's.

    ``table`` defaults to the output table + ``_shadow``; ``decision_threshold`` is the score at
    or above which an entity counts as positive (the flip share compares those decisions).
    """

    enabled: bool = True
    table: str | None = Field(default=None, min_length=1)
    decision_threshold: float = 0.5


class ScoringJob(_Strict):
    """One scoring job, from ``conf/jobs/<name>.yaml``. Table URIs are absolute after loading."""

    name: str
    description: str = ""
    owner: str = "lakescore"
    tags: list[str] = Field(default_factory=list)
    model: ModelRef
    features: FeatureSource
    output: OutputSpec
    audit: AuditSpec = AuditSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    validation: ValidationSpec = ValidationSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    shadow: ShadowSpec = ShadowSpec()
    airflow: AirflowJobSpec = AirflowJobSpec()
    spark_profile: str | None = None
    # set by the loader
    source_file: str = ""

    @field_validator("name")
    @classmethod
    def _job_name(cls, value: str) -> str:
        if not JOB_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "job names are lowercase letters, digits and '_', starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _keys_are_not_features(self) -> ScoringJob:
        cols = self.features.columns
        if isinstance(cols, list):
            overlap = set(cols) & set(self.features.entity_keys)
            if overlap:
                raise ValueError(f"columns {sorted(overlap)} are both entity keys and features")
            if self.features.partition_column in cols:
                raise ValueError("the partition column cannot be a feature")
        if self.features.partition_column in self.features.entity_keys:
            raise ValueError("the partition column cannot be an entity key")
        threshold = self.shadow.decision_threshold
        low, high = self.audit.bounds("binary")
        if self.model.challengers and not low < threshold < high:
            raise ValueError("shadow.decision_threshold must lie between the audit score bounds")
        return self

    @property
    def shadow_table(self) -> str:
        """URI of the shadow (challenger) prediction table: ``shadow.table``, else the output
        table + ``_shadow``. Absolute after :func:`load_job`."""
        return self.shadow.table or self.output.table.rstrip("/") + "_shadow"


# --------------------------------------------------------------------------- loading


def check_job_name(name: str) -> str:
    """Job names become DAG ids and path segments: lowercase identifiers only (no ``../x``)."""
    if not isinstance(name, str) or not JOB_NAME_PATTERN.fullmatch(name):
        raise BadInputError(
            "job names are lowercase letters, digits and '_', starting with a letter "
            f"(got {name!r})",
            job=None,
        )
    return name


def _check_identifier(value: str) -> str:
    if not IDENTIFIER_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain column name (letters, digits, '_')")
    return value


def _interpolate(value: Any, path: tuple[str | int, ...], file: Path) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), file) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        # Shell semantics of ${VAR:-default}: the default also replaces an empty value.
        if os.environ.get(var):
            return os.environ[var]
        if default is not None:
            return default
        if var in os.environ:
            return ""
        raise ConfigError(
            f"environment variable ${{{var}}} is not set and has no default "
            f"(write ${{{var}:-default}} to give one)",
            file=str(file),
            key=_dotted(path),
        )

    return _ENV_REF.sub(replace, value)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(file)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML{where}: {problem}", file=str(file)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys at the top level", file=str(file))
    for key in data:
        if not isinstance(key, str):
            raise ConfigError("top-level keys must be names", file=str(file), key=str(key))
    return _interpolate(data, (), file)


def _validation_error(exc: ValidationError, file: Path) -> ConfigError:
    problems = []
    first_key = None
    for err in exc.errors():
        key = _dotted(tuple(err["loc"])) or "(top level)"
        first_key = first_key or key
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{key}: {msg}")
    message = "; ".join(problems)
    return ConfigError(f"invalid config: {message}", file=str(file), key=first_key)


def load_platform(conf_dir: str | Path | None = None) -> PlatformConfig:
    """Parse ``<conf_dir>/platform.yaml``. Relative paths resolve against the project root
    (the parent of ``conf_dir``)."""
    conf = Path(conf_dir).resolve() if conf_dir else default_conf_dir()
    file = conf / "platform.yaml"
    data = _read_yaml(file)
    if "conf_dir" in data:
        raise ConfigError("unknown key", file=str(file), key="conf_dir")
    root = conf.parent
    try:
        platform = PlatformConfig(**data, conf_dir=str(conf))
    except ValidationError as exc:
        raise _validation_error(exc, file) from None
    updates = {
        "warehouse": _absolute(normalise(platform.warehouse), root),
        "var_dir": _absolute(platform.var_dir, root),
        "openlineage": platform.openlineage.model_copy(
            update={"file": _absolute(platform.openlineage.file, root)}
        ),
        "spark": platform.spark.model_copy(
            update={"jars_dir": _absolute(platform.spark.jars_dir, root)}
        ),
        "mlflow": platform.mlflow.model_copy(
            update={
                "tracking_uri": _sqlite_absolute(platform.mlflow.tracking_uri, root),
                "registry_uri": _sqlite_absolute(platform.mlflow.registry_uri, root)
                if platform.mlflow.registry_uri
                else None,
                "artifact_root": _absolute(normalise(platform.mlflow.artifact_root), root)
                if platform.mlflow.artifact_root
                else None,
            }
        ),
    }
    platform = platform.model_copy(update=updates)
    activate_storage(platform.storage)
    return platform


def job_file(name: str, conf_dir: str | Path | None = None) -> Path:
    conf = Path(conf_dir).resolve() if conf_dir else default_conf_dir()
    return conf / "jobs" / f"{check_job_name(name)}.yaml"


def list_job_names(conf_dir: str | Path | None = None) -> list[str]:
    """Every ``conf/jobs/*.yaml`` stem, sorted (files that are not valid job names included, so
    that loading them reports the problem instead of hiding the file)."""
    conf = Path(conf_dir).resolve() if conf_dir else default_conf_dir()
    return sorted(p.stem for p in (conf / "jobs").glob("*.yaml"))


def load_job(
    name: str,
    conf_dir: str | Path | None = None,
    platform: PlatformConfig | None = None,
) -> ScoringJob:
    """Parse ``conf/jobs/<name>.yaml`` into a :class:`ScoringJob` with absolute table URIs.

    Raises :class:`BadInputError` for an unknown job and :class:`ConfigError` naming the job,
    the file and the key for anything wrong inside it.
    """
    if platform is None:
        check_job_name(name)
        platform = load_platform(conf_dir)
    try:
        return _load_job_file(name, conf_dir, platform)
    except ConfigError as exc:
        raise exc.with_context(job=name) from None


def _load_job_file(
    name: str,
    conf_dir: str | Path | None = None,
    platform: PlatformConfig | None = None,
) -> ScoringJob:
    try:
        check_job_name(name)
    except BadInputError as exc:
        raise exc from None
    platform = platform or load_platform(conf_dir)
    file = job_file(name, platform.conf_dir)
    if not file.is_file():
        known = ", ".join(list_job_names(platform.conf_dir)) or "none"
        raise BadInputError(f"unknown job (no {file}; known jobs: {known})", job=name)
    data = _read_yaml(file)
    data.setdefault("name", name)
    if "source_file" in data:
        raise ConfigError("unknown key", file=str(file), key="source_file")
    try:
        job = ScoringJob(**data, source_file=str(file))
    except ValidationError as exc:
        raise _validation_error(exc, file) from None
    if job.name != name:
        raise ConfigError(
            f"name {job.name!r} does not match the file name {name!r}", file=str(file), key="name"
        )
    profile = job.spark_profile or platform.spark.default_profile
    try:
        platform.spark.resolved_profile(profile)
    except ValueError as exc:
        raise ConfigError(
            f"unknown spark profile {profile!r}: {exc} (platform.yaml defines "
            f"{', '.join(platform.spark.profiles)})",
            file=str(file),
            key="spark_profile",
        ) from None
    feature_uri = table_uri(platform, job.features.table)
    output_uri = table_uri(platform, job.output.table)
    if not is_inside(output_uri, platform.warehouse) or _same_place(output_uri, platform.warehouse):
        raise ConfigError(
            f"output table {output_uri} is outside the warehouse root {platform.warehouse}",
            file=str(file),
            key="output.table",
        )
    if output_uri in (feature_uri, platform.lineage_table):
        raise ConfigError(
            "output table must be its own table (not the feature or lineage table)",
            file=str(file),
            key="output.table",
        )
    shadow_uri = table_uri(platform, job.shadow.table) if job.shadow.table else None
    shadow_uri = shadow_uri or output_uri.rstrip("/") + "_shadow"
    if not is_inside(shadow_uri, platform.warehouse) or shadow_uri in (
        output_uri,
        feature_uri,
        platform.lineage_table,
    ):
        raise ConfigError(
            f"shadow table {shadow_uri} must be its own table inside the warehouse root "
            f"{platform.warehouse}",
            file=str(file),
            key="shadow.table",
        )
    return job.model_copy(
        update={
            "shadow": job.shadow.model_copy(update={"table": shadow_uri}),
            "spark_profile": profile,
            "features": job.features.model_copy(update={"table": feature_uri}),
            "output": job.output.model_copy(update={"table": output_uri}),
        }
    )


# --------------------------------------------------------------------------- paths


def _has_scheme(uri: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri) is not None


def _absolute(path: str, root: Path) -> str:
    if _has_scheme(path):
        return path
    p = Path(path).expanduser()
    return str((p if p.is_absolute() else root / p).resolve())


def _sqlite_absolute(uri: str, root: Path) -> str:
    """``sqlite:///var/x.db`` (relative) -> ``sqlite:////abs/var/x.db``; other URIs unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + _absolute(uri[len(prefix) :], root)
    return uri


def table_uri(platform: PlatformConfig, table: str) -> str:
    """A table reference from config -> absolute URI. Relative names live under the warehouse."""
    if _has_scheme(table) or Path(table).is_absolute():
        return normalise(table) if _has_scheme(table) else str(Path(table).resolve())
    return (
        str((Path(platform.warehouse) / table).resolve())
        if not _has_scheme(platform.warehouse)
        else platform.warehouse.rstrip("/") + "/" + table
    )


def _same_place(a: str, b: str) -> bool:
    if _has_scheme(a) or _has_scheme(b):
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def is_inside(uri: str, root: str) -> bool:
    """Is ``uri`` the same as or below ``root`` (after resolving ``..``)?"""
    if _has_scheme(uri) or _has_scheme(root):
        norm_uri = uri.rstrip("/") + "/"
        return norm_uri.startswith(root.rstrip("/") + "/") and "/../" not in norm_uri
    return Path(uri).resolve().is_relative_to(Path(root).resolve())


def local_path(uri: str) -> str:
    """``file:///a/b`` or ``file:/a/b`` -> ``/a/b`` (what a user can ``ls``); others unchanged."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path) or uri
    return uri
