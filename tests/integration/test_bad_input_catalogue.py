"""The catalogue of bad input: every way a request, a config, the feature data or the model can
be broken, and what the user sees. Read ``CASES`` like a spec.

Every case starts from a world where the prediction table ``scores/catalogue`` already holds
published partitions (several table versions), runs the real job (``score_partition`` in
process with the shared Spark session, or the ``lakescore`` CLI as a subprocess where exit
code, stderr and bounded time matter), and then checks:

* the error class (in process) or the exit code + one ``error:`` line without a traceback (CLI);
* the message names the job and the partition / column / key / file it is about;
* nothing was published: same latest version, same rows, every older version still reads the
  same by time travel; the metrics table did not move;
* a lineage row records the failed attempt when the run got far enough to have one.

Each broken job writes to the same prediction table as the good one, so "nothing published"
is checked against real published data.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakescore.config import ConfigError, load_job
from lakescore.errors import BadInputError, LakescoreError, ScoringFailure
from lakescore.lakehouse import layout, tables
from lakescore.quality.validation import ValidationFailed
from lakescore.run import score_partition
from tests.conftest import DAYS, ROWS_PER_DAY, World, commit_empty_partition, lineage_rows
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
OUTPUT = "scores/catalogue"
SECRET = "s3cr3t-Catalogue-pw"
DAY = DAYS[0]


# --------------------------------------------------------------------------- the world


@dataclass
class Catalogue:
    world: World
    spark: Any
    remote_confs: dict[str, Path] = field(default_factory=dict)

    @property
    def platform(self) -> Any:
        return self.world.platform

    @property
    def warehouse(self) -> Path:
        return Path(self.platform.warehouse)

    @property
    def output_table(self) -> str:
        return str(self.warehouse / OUTPUT)

    def write_job(
        self,
        name: str,
        *,
        features: str = "features/churn",
        model: str | None = None,
        extra: str = "",
        conf_dir: Path | None = None,
    ) -> None:
        model = model or f"{{name: {self.world.model_name}, alias: champion}}"
        body = (
            f"name: {name}\n"
            f"model: {model}\n"
            f"features: {{table: {features}, entity_keys: [customer_id]}}\n"
            f"output: {{table: {OUTPUT}}}\n"
            "monitoring: {psi_fail: null}\n" + extra
        )
        (conf_dir or self.world.conf_dir).joinpath("jobs", f"{name}.yaml").write_text(body)

    def variant(self, name: str, transform: Callable[[pa.Table], pa.Table], extra: str = "") -> str:
        """A changed copy of the churn feature table (``world.variant_job``), scored into the
        shared catalogue prediction table. Returns the feature table's path."""
        self.world.variant_job(name, transform)
        self.write_job(name, features=f"features/{name}", extra=extra)
        return str(self.warehouse / "features" / name)

    def remote_conf(self, name: str, tracking_uri: str, timeout_s: int, retries: int) -> Path:
        """A conf folder on the same warehouse whose MLflow registry is ``tracking_uri``."""
        conf = self.world.root / f"conf_{name}"
        (conf / "jobs").mkdir(parents=True, exist_ok=True)
        text = (self.world.conf_dir / "platform.yaml").read_text()
        lines = []
        for line in text.splitlines():
            if line.strip().startswith("tracking_uri:"):
                line = f"  tracking_uri: {tracking_uri}"
            elif line.strip().startswith("request_timeout_s:"):
                line = f"  request_timeout_s: {timeout_s}"
            elif line.strip().startswith("request_max_retries:"):
                line = f"  request_max_retries: {retries}"
            lines.append(line)
        (conf / "platform.yaml").write_text("\n".join(lines) + "\n")
        self.write_job("c_base", conf_dir=conf)
        return conf


@pytest.fixture(scope="module")
def catalogue(world: World, spark: Any) -> Iterator[Catalogue]:
    """The good job ``c_base`` has published two days (table versions 0..2). Afterwards the
    broken job files and feature tables go, so later tests see the shared world as before."""
    cat = Catalogue(world, spark)
    cat.write_job("c_base")
    if tables.table_version(cat.output_table) is None:
        for day in DAYS[:2]:
            score_partition(world.job("c_base"), day, platform=world.platform, spark=spark)
    assert (tables.table_version(cat.output_table) or 0) >= 2
    yield cat
    for job_file in (world.conf_dir / "jobs").glob("c_*.yaml"):
        job_file.unlink()
    for table in (cat.warehouse / "features").glob("c_*"):
        shutil.rmtree(table, ignore_errors=True)
    blocker = Path(cat.platform.staging_root) / "c_staging_file"
    if blocker.is_file():
        blocker.unlink()


# --------------------------------------------------------------------------- what is published


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("ds", "ascending"), ("customer_id", "ascending")])


@dataclass
class Published:
    version: int
    by_version: dict[int, pa.Table]
    metrics_version: int | None
    rejects_versions: dict[str, int | None]

    @classmethod
    def take(cls, cat: Catalogue, job: str) -> Published:
        uri = cat.output_table
        version = tables.table_version(uri)
        assert version is not None
        return cls(
            version=version,
            by_version={v: _sorted(tables.read_table(uri, version=v)) for v in range(version + 1)},
            metrics_version=tables.table_version(cat.platform.metrics_table),
            rejects_versions={job: tables.table_version(cat.platform.rejects_table(job))},
        )

    def assert_unchanged(self, cat: Catalogue, job: str) -> None:
        uri = cat.output_table
        assert tables.table_version(uri) == self.version, "something was published"
        assert _sorted(tables.read_table(uri)).equals(self.by_version[self.version])
        for version, rows in self.by_version.items():  # time travel still reads the same
            assert _sorted(tables.read_table(uri, version=version)).equals(rows), version
        assert self.by_version[self.version].num_rows >= 2 * ROWS_PER_DAY
        assert tables.table_version(cat.platform.metrics_table) == self.metrics_version
        assert tables.table_version(cat.platform.rejects_table(job)) == self.rejects_versions[job]


# --------------------------------------------------------------------------- the cases


@dataclass
class Attempt:
    """How to run one broken request, and the runtime names its error must contain."""

    job: str
    ds: str = DAY.isoformat()
    cli: bool = False
    platform: Any = None  # in process: a changed platform config
    conf_dir: Path | None = None  # CLI: a different conf folder
    names: tuple[str, ...] = ()
    max_seconds: float | None = None  # the whole attempt (CLI: with process start-up)
    resolve_seconds: tuple[float, float] | None = None  # bounds of lineage's resolve_model
    secret: str | None = None  # must appear nowhere: output, lineage, report


@dataclass(frozen=True)
class Case:
    id: str
    broken: str  # how the input is broken
    error: type[LakescoreError]  # expected class (CLI: its exit code)
    names: tuple[str, ...]  # the message names these (plus the job)
    arrange: Callable[[Catalogue], Attempt]
    lineage: bool = True  # the run got far enough to record a failed attempt


def _job_only(name: str, body: str) -> Callable[[Catalogue], Attempt]:
    """A job file with ``body`` as its text (config-level breakage)."""

    def arrange(cat: Catalogue) -> Attempt:
        (cat.world.conf_dir / "jobs" / f"{name}.yaml").write_text(body)
        return Attempt(name, cli=True, names=(f"{name}.yaml",))

    return arrange


def _good_job(name: str, ds: str, *, cli: bool = False, extra: str = "") -> Callable:
    def arrange(cat: Catalogue) -> Attempt:
        cat.write_job(name, extra=extra)
        return Attempt(name, ds=ds, cli=cli)

    return arrange


def _set_on_day(table: pa.Table, column: str, change: Callable[[Any, int], Any]) -> pa.Table:
    """``change(value, index_within_day)`` applied to ``column`` on partition DAY only."""
    values = table[column].to_pylist()
    seen = 0
    for i, d in enumerate(table["ds"].to_pylist()):
        if d == DAY:
            values[i] = change(values[i], seen)
            seen += 1
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def _variant(
    name: str,
    transform: Callable[[pa.Table], pa.Table],
    extra: str = "",
    features_option: str = "",
    names_table: bool = True,
) -> Callable[[Catalogue], Attempt]:
    """A job over a changed copy of the feature table (the error names that table unless it
    names a failed expectation instead)."""

    def arrange(cat: Catalogue) -> Attempt:
        table = cat.variant(name, transform, extra)
        if features_option:
            _add_features_option(cat, name, features_option)
        return Attempt(name, names=(table,) if names_table else ())

    return arrange


def _add_features_option(cat: Catalogue, name: str, option: str) -> None:
    """Add ``option`` (YAML flow text) to the job's ``features:`` mapping."""
    path = cat.world.conf_dir / "jobs" / f"{name}.yaml"
    text = path.read_text()
    assert "entity_keys: [customer_id]}" in text
    path.write_text(
        text.replace("entity_keys: [customer_id]}", f"entity_keys: [customer_id], {option}}}")
    )


def _feature_table_missing(cat: Catalogue) -> Attempt:
    cat.write_job("c_no_table", features="features/does_not_exist")
    return Attempt("c_no_table", names=(str(cat.warehouse / "features" / "does_not_exist"),))


def _empty_partition(cat: Catalogue) -> Attempt:
    uri = cat.variant("c_empty", lambda t: t)
    empty_day = date(2026, 11, 21)
    commit_empty_partition(uri, "ds", empty_day, tables.read_table(uri).schema)
    return Attempt("c_empty", ds=empty_day.isoformat(), names=(uri,))


def _corrupt_parquet(cat: Catalogue) -> Attempt:
    uri = cat.variant("c_corrupt", lambda t: t)
    from deltalake import DeltaTable

    files = [
        f
        for f in DeltaTable(uri).file_uris([("ds", "=", DAY.isoformat())])
        if f.endswith(".parquet")
    ]
    victim = Path(urlparse(files[0]).path if files[0].startswith("file:") else files[0])
    size = victim.stat().st_size
    victim.write_bytes(b"this is not parquet " * (size // 20 + 1))
    return Attempt("c_corrupt", names=(victim.name,))


def _drop_nps(t: pa.Table) -> pa.Table:
    return t.drop_columns(["nps_score"])


def _logins_as_string(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("logins_30d")
    return t.set_column(i, "logins_30d", t["logins_30d"].cast(pa.string()))


def _null_keys(t: pa.Table) -> pa.Table:
    return _set_on_day(t, "customer_id", lambda v, i: None if i % 1000 == 7 else v)


def _duplicate_keys(t: pa.Table) -> pa.Table:
    return _set_on_day(t, "customer_id", lambda v, i: 1 if i < 5 else v)


def _infinite(t: pa.Table) -> pa.Table:
    return _set_on_day(t, "monthly_charges", lambda v, i: float("inf") if i % 1000 == 3 else v)


def _nan(t: pa.Table) -> pa.Table:
    return _set_on_day(t, "tenure_months", lambda v, i: float("nan") if i % 500 == 1 else v)


def _signature_mismatch(cat: Catalogue) -> Attempt:
    from lakescore.local.demo import FEATURES

    cat.write_job("c_sig_mismatch")
    # one signature input left out of the explicit list
    _add_features_option(cat, "c_sig_mismatch", f"columns: [{', '.join(FEATURES[:-1])}]")
    return Attempt("c_sig_mismatch")


def _extra_column_listed(cat: Catalogue) -> Attempt:
    from lakescore.local.demo import FEATURES

    cat.variant("c_extra_listed", _with_extra_columns)
    listed = ", ".join([*FEATURES, "region_code"])
    _add_features_option(cat, "c_extra_listed", f"columns: [{listed}]")
    return Attempt("c_extra_listed")


def _with_extra_columns(t: pa.Table) -> pa.Table:
    t = t.append_column("region_code", pa.array([f"r{i % 7}" for i in range(t.num_rows)]))
    return t.append_column("internal_score", pa.array(np.linspace(0, 1, t.num_rows)))


def _registered_copy(cat: Catalogue, tag: str, mutate: Callable[[Path], None], inside: bool) -> int:
    """A new version of the test model whose artifacts are a (changed) copy of version 1's,
    stored inside the configured artifact root or outside it."""
    from mlflow import MlflowClient

    from lakescore.ml.models import configure_mlflow

    configure_mlflow(cat.platform)
    client = MlflowClient()
    name = cat.world.model_name
    source = urlparse(client.get_model_version_download_uri(name, str(cat.world.model_v1))).path
    base = Path(cat.platform.mlflow.artifact_root) if inside else cat.world.root / "elsewhere"
    target = base / "catalogue" / tag
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    mutate(target)
    return int(client.create_model_version(name, source=target.as_uri()).version)


def _model_file(model_dir: Path) -> Path:
    import yaml

    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    return model_dir / flavor["pickled_model"]


def _corrupt_model_file(cat: Catalogue) -> Attempt:
    def corrupt(path: Path) -> None:
        _model_file(path).write_bytes(b"\x00 not a model \x00" * 64)

    version = _registered_copy(cat, "corrupt", corrupt, inside=True)
    name = cat.world.model_name
    cat.write_job("c_model_corrupt", model=f"{{name: {name}, version: {version}}}")
    model_file = _model_file(Path(cat.platform.mlflow.artifact_root) / "catalogue" / "corrupt")
    return Attempt("c_model_corrupt", names=(f"model {name} version {version}", str(model_file)))


def _model_without_signature(cat: Catalogue) -> Attempt:
    import yaml

    def strip_signature(path: Path) -> None:
        spec = yaml.safe_load((path / "MLmodel").read_text())
        spec.pop("signature", None)
        (path / "MLmodel").write_text(yaml.safe_dump(spec))

    version = _registered_copy(cat, "unsigned", strip_signature, inside=True)
    name = cat.world.model_name
    cat.write_job("c_model_unsigned", model=f"{{name: {name}, version: {version}}}")
    return Attempt("c_model_unsigned", names=(f"model {name} version {version}",))


def _model_outside_registry(cat: Catalogue) -> Attempt:
    version = _registered_copy(cat, "outside", lambda p: None, inside=False)
    name = cat.world.model_name
    cat.write_job("c_model_outside", model=f"{{name: {name}, version: {version}}}")
    source = (cat.world.root / "elsewhere" / "catalogue" / "outside").as_uri()
    return Attempt(
        "c_model_outside", names=(f"model {name} version {version}", source, "registry store")
    )


def _unsupported_protocol(cat: Catalogue) -> Attempt:
    uri = cat.variant("c_protocol", lambda t: t)
    log = Path(uri) / "_delta_log"
    last = max(int(p.stem) for p in log.glob("*.json"))
    action = {
        "protocol": {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["lakescoreImaginaryFeature"],
            "writerFeatures": ["lakescoreImaginaryFeature"],
        }
    }
    info = {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "SET PROTOCOL"}}
    (log / f"{last + 1:020d}.json").write_text(json.dumps(action) + "\n" + json.dumps(info) + "\n")
    return Attempt("c_protocol", names=(uri, "lakescoreImaginaryFeature"))


def _staging_blocked(cat: Catalogue) -> Attempt:
    cat.write_job("c_staging_file")
    blocker = Path(cat.platform.staging_root) / "c_staging_file"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the job's staging folder should be\n")
    return Attempt("c_staging_file", names=(str(blocker),))


def _staging_read_only(cat: Catalogue) -> Attempt:
    cat.write_job("c_staging_proc")
    tables_spec = cat.platform.tables.model_copy(update={"staging": "/proc/lakescore-staging"})
    platform = cat.platform.model_copy(update={"tables": tables_spec})
    return Attempt("c_staging_proc", platform=platform, names=("/proc/lakescore-staging",))


def _lineage_unreadable(cat: Catalogue) -> Attempt:
    cat.write_job("c_lineage_broken")
    broken = cat.warehouse / "lakescore" / "lineage_broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(cat.platform.lineage_table, broken)
    log = broken / "_delta_log"
    for checkpoint in log.glob("*.checkpoint*"):
        checkpoint.unlink()
    (log / "_last_checkpoint").unlink(missing_ok=True)
    latest = max(log.glob("*.json"), key=lambda p: int(p.stem))
    latest.write_text('{"add": {"path": "half-written')
    tables_spec = cat.platform.tables.model_copy(update={"lineage": "lakescore/lineage_broken"})
    platform = cat.platform.model_copy(update={"tables": tables_spec})
    return Attempt(
        "c_lineage_broken", platform=platform, names=(str(broken), "lineage", "nothing published")
    )


def _mlflow_closed_port(cat: Catalogue) -> Attempt:
    uri = f"http://lakescore:{SECRET}@127.0.0.1:{free_port()}"  # nothing listens: refused
    conf = cat.remote_conf("closed", uri, timeout_s=3, retries=0)
    return Attempt(
        "c_base",
        cli=True,
        conf_dir=conf,
        names=("http://lakescore:***@127.0.0.1", "model registry", "Connection refused"),
        # process start-up included (and Spark's, which starts in the background during
        # resolve_model); resolve_model includes importing mlflow in the fresh process
        # (5-6 s on a loaded 2-core machine)
        max_seconds=90,
        resolve_seconds=(0.0, 3 + 15),
        secret=SECRET,
    )


@pytest.fixture(scope="module")
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


SILENT_PORT: dict[str, int] = {}


def _mlflow_never_answers(cat: Catalogue) -> Attempt:
    """In process (MLflow already imported), so the time measured is the registry's alone."""
    timeout_s, retries = 2, 1
    uri = f"http://lakescore:{SECRET}@127.0.0.1:{SILENT_PORT['port']}"
    mlflow = cat.platform.mlflow.model_copy(
        update={"tracking_uri": uri, "request_timeout_s": timeout_s, "request_max_retries": retries}
    )
    return Attempt(
        "c_base",
        platform=cat.platform.model_copy(update={"mlflow": mlflow}),
        names=("http://lakescore:***@127.0.0.1", "model registry", "timed out"),
        # at least one request timeout; at most (retries + 1) timeouts + urllib3's backoff
        # (MLflow's factor 2 s + jitter <= 1 s) + 5 s slack for a busy machine
        resolve_seconds=(timeout_s, (retries + 1) * timeout_s + 3 + 5),
        secret=SECRET,
    )


FAR_FUTURE = (date.today() + timedelta(days=400)).isoformat()
TOMORROW = (date.today() + timedelta(days=1)).isoformat()

CASES: list[Case] = [
    # ---- the request and the config
    Case("yaml_malformed", "job file is not YAML (unclosed flow mapping)", ConfigError,
         ("malformed YAML", "line"),
         _job_only("c_yaml", "name: c_yaml\nmodel: {name: churn_test, alias: champion\n"),
         lineage=False),
    Case("config_unknown_key", "model.aliass instead of model.alias", ConfigError,
         ("model.aliass", "unknown key"),
         _job_only("c_typo", "name: c_typo\nmodel: {name: m, aliass: champion}\n"
                   "features: {table: features/churn, entity_keys: [customer_id]}\n"
                   f"output: {{table: {OUTPUT}}}\n"), lineage=False),
    Case("config_wrong_type", "audit.score_min is a word, not a number", ConfigError,
         ("audit.score_min",),
         _job_only("c_types", "name: c_types\nmodel: {name: m, alias: champion}\n"
                   "features: {table: features/churn, entity_keys: [customer_id]}\n"
                   f"output: {{table: {OUTPUT}}}\naudit: {{score_min: low}}\n"), lineage=False),
    Case("job_path_traversal", "--job ../x", BadInputError, ("'../x'", "job names"),
         lambda cat: Attempt("../x", cli=True), lineage=False),
    Case("output_outside_warehouse", "output.table is an absolute path outside the warehouse",
         ConfigError, ("output.table", "outside the warehouse root"),
         _job_only("c_outside", "name: c_outside\nmodel: {name: m, alias: champion}\n"
                   "features: {table: features/churn, entity_keys: [customer_id]}\n"
                   "output: {table: /tmp/lakescore-elsewhere/scores}\n"), lineage=False),
    Case("ds_not_a_date", "--ds yesterday", BadInputError, ("'yesterday'", "YYYY-MM-DD"),
         _good_job("c_ds", "yesterday", cli=True), lineage=False),
    Case("ds_impossible_date", "--ds 2026-02-30", BadInputError,
         ("'2026-02-30'", "not a calendar day"), _good_job("c_ds", "2026-02-30"), lineage=False),
    Case("ds_far_future", "--ds 400 days ahead (default bound 366)", BadInputError,
         (f"partition {FAR_FUTURE}", "max_future_days"), _good_job("c_ds", FAR_FUTURE),
         lineage=False),
    Case("ds_future_beyond_job_bound", "--ds tomorrow, job allows 0 days ahead", BadInputError,
         (f"partition {TOMORROW}", "more than 0 days in the future"),
         _good_job("c_ds_strict", TOMORROW, extra="schedule: {max_future_days: 0}\n"),
         lineage=False),
    Case("ds_injection", "--ds \"2026-01-01' OR '1'='1\"", BadInputError,
         ("2026-01-01' OR '1'='1", "YYYY-MM-DD"),
         _good_job("c_ds", "2026-01-01' OR '1'='1", cli=True), lineage=False),
    # ---- the feature table
    Case("feature_table_missing", "features.table names a folder with no Delta table",
         BadInputError, ("no Delta table",), _feature_table_missing),
    Case("partition_missing", "--ds a day the feature table does not have", BadInputError,
         ("ds=2026-10-01 not found",), _good_job("c_missing_day", "2026-10-01")),
    Case("partition_empty", "the partition exists in the log with 0 rows", BadInputError,
         ("is empty", "on_empty_partition"), _empty_partition),
    Case("parquet_corrupt", "a data file of the partition is overwritten with garbage",
         BadInputError, ("corrupt or unreadable", "c_corrupt"), _corrupt_parquet),
    Case("delta_protocol_unsupported", "feature table's protocol needs an unknown reader feature",
         BadInputError, ("Delta protocol",), _unsupported_protocol),
    Case("feature_column_missing", "column nps_score dropped from the table", BadInputError,
         ("column 'nps_score'", "missing"), _variant("c_nocol", _drop_nps)),
    Case("feature_column_wrong_type", "logins_30d stored as string", BadInputError,
         ("column 'logins_30d'", "logins_30d is string, model expects double"),
         _variant("c_badtype", _logins_as_string)),
    Case("extra_column_listed", "features.columns lists region_code, which the model does not take",
         BadInputError, ("key 'features.columns'", "region_code"), _extra_column_listed),
    Case("signature_mismatch", "features.columns leaves out a signature input", BadInputError,
         ("key 'features.columns'", "days_since_last_login"), _signature_mismatch),
    Case("entity_key_null", "customer_id null in 3 rows", ValidationFailed,
         ("expect_column_values_to_not_be_null(customer_id)", "3 unexpected"),
         _variant("c_nullkey", _null_keys, names_table=False)),
    Case("entity_key_duplicate", "customer_id 1 appears 5 times", ValidationFailed,
         ("expect_column_values_to_be_unique(customer_id)",),
         _variant("c_dupkey", _duplicate_keys, names_table=False)),
    Case("entity_key_null_unvalidated", "null keys with validation disabled", BadInputError,
         ("column 'customer_id' has 3 null entity keys",),
         _variant("c_nullkey_noval", _null_keys, "validation: {enabled: false}\n")),
    Case("entity_key_duplicate_warn", "duplicate keys under validation policy warn",
         BadInputError, ("has 4 duplicate entity keys",),
         _variant("c_dupkey_warn", _duplicate_keys, "validation: {policy: warn}\n")),
    Case("feature_infinite", "monthly_charges = +inf in 3 rows", BadInputError,
         ("column 'monthly_charges' has 3 infinite values",), _variant("c_inf", _infinite)),
    Case("feature_nan_refused", "tenure_months NaN in 6 rows, job sets allow_nan: false",
         BadInputError, ("column 'tenure_months' has 6 NaN values",),
         _variant("c_nan_refused", _nan, features_option="allow_nan: false")),
    # ---- the model
    Case("model_name_unknown", "model.name not in the registry", BadInputError,
         ("'no_such_model' is not in the registry", "key 'model.name'"),
         lambda cat: (cat.write_job("c_nomodel", model="{name: no_such_model, alias: champion}"),
                      Attempt("c_nomodel"))[1]),
    Case("model_alias_unknown", "model.alias not set on the model", BadInputError,
         ("has no alias 'ghost'", "key 'model.alias'"),
         lambda cat: (cat.write_job("c_noalias",
                                    model=f"{{name: {cat.world.model_name}, alias: ghost}}"),
                      Attempt("c_noalias"))[1]),
    Case("model_artifact_corrupt", "the version's model file is garbage", BadInputError,
         ("cannot be loaded",), _corrupt_model_file),
    Case("model_without_signature", "the version's MLmodel has no signature", BadInputError,
         ("has no input signature",), _model_without_signature),
    Case("model_source_outside_registry", "a version registered from a folder outside the "
         "artifact root", BadInputError, ("lakescore loads model artifacts only from there",),
         _model_outside_registry),
    Case("mlflow_unreachable", "tracking URI (with a password) on a closed port",
         ScoringFailure, ("unreachable",), _mlflow_closed_port),
    Case("mlflow_never_answers", "tracking server accepts TCP and never answers",
         ScoringFailure, (), _mlflow_never_answers),
    # ---- where the run writes
    Case("staging_blocked", "a file where the job's staging folder should be", ScoringFailure,
         ("cannot write the staging folder",), _staging_blocked),
    Case("staging_read_only", "staging root on a read-only file system (/proc)", ScoringFailure,
         ("cannot write the staging folder",), _staging_read_only),
    Case("lineage_unreadable", "the lineage table's latest commit is half written",
         ScoringFailure, ("lineage table is unreadable",), _lineage_unreadable, lineage=False),
]  # fmt: skip


# --------------------------------------------------------------------------- running a case


@dataclass
class Outcome:
    error: LakescoreError | None
    exit_code: int
    text: str  # the error line (CLI) or str(error)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


def _run(cat: Catalogue, attempt: Attempt) -> Outcome:
    start = time.monotonic()
    if attempt.cli:
        conf = attempt.conf_dir or cat.world.conf_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["LAKESCORE_CONF"] = str(conf)
        out = subprocess.run(
            [str(BIN / "lakescore"), "--conf", str(conf), "score", "--job", attempt.job,
             "--ds", attempt.ds],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, out.stderr[-3000:]
        assert out.stderr.rstrip().endswith(errors[0].rstrip()), "the error is the last line"
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        return Outcome(
            None, out.returncode, errors[0], out.stdout, out.stderr, time.monotonic() - start
        )
    platform = attempt.platform or cat.platform
    try:
        job = load_job(attempt.job, platform=platform)
        score_partition(job, attempt.ds, platform=platform, spark=cat.spark)
    except LakescoreError as exc:
        return Outcome(exc, exc.exit_code, str(exc), seconds=time.monotonic() - start)
    pytest.fail(f"{attempt.job} {attempt.ds}: no error, the run succeeded")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_publishes_nothing(
    catalogue: Catalogue, silent_server: int, case: Case, capfd: pytest.CaptureFixture[str]
) -> None:
    SILENT_PORT["port"] = silent_server
    attempt = case.arrange(catalogue)
    before = Published.take(catalogue, attempt.job)
    started = datetime.now(UTC)

    outcome = _run(catalogue, attempt)

    # the error: class or exit code, and what it names
    if attempt.cli:
        assert outcome.exit_code == case.error.exit_code, outcome.stderr[-2000:]
    else:
        assert type(outcome.error) is case.error, repr(outcome.error)
    message = outcome.text
    print(f"[{case.id}] {outcome.seconds:.1f}s exit {outcome.exit_code}: {message}")
    job_name = f"job {attempt.job!r}" if attempt.job.isidentifier() else repr(attempt.job)
    partition = [f"partition {attempt.ds}"] if case.lineage and not attempt.cli else []
    for needle in (job_name, *partition, *case.names, *attempt.names):
        assert needle in message, f"{needle!r} not in: {message}"
    if attempt.max_seconds is not None:
        assert outcome.seconds < attempt.max_seconds, f"took {outcome.seconds:.1f}s"

    # nothing published, nothing lost
    before.assert_unchanged(catalogue, attempt.job)

    # lineage of the failed attempt (and never a secret anywhere)
    rows = [
        r
        for r in lineage_rows(catalogue.world, job=attempt.job)
        if r["started_at"] >= started and r["action"] == "score"
    ]
    if case.lineage:
        assert rows, "no lineage row for the failed attempt"
        assert [r["status"] for r in rows] == ["failed"]
        assert rows[0]["error_class"] == case.error.__name__
        for needle in case.names:
            assert needle in rows[0]["error"], f"{needle!r} not in lineage error"
    else:
        assert not rows, "a run that never started left a lineage row"
    if attempt.resolve_seconds is not None:
        low, high = attempt.resolve_seconds
        spent = dict(rows[0]["stage_seconds"])["resolve_model"]
        print(f"[{case.id}] resolve_model {spent:.2f}s (bounds {low}..{high})")
        assert low <= spent <= high, f"resolve_model took {spent:.2f}s, bounds {low}..{high}"
    if attempt.secret:
        from lakescore.reporting.report import write_job_report

        captured = capfd.readouterr()  # in process: everything this test printed or logged
        sys.stdout.write(captured.out)  # (keep the case's summary line visible with -rP)
        assert attempt.secret not in outcome.stdout + outcome.stderr
        assert attempt.secret not in captured.out + captured.err
        for row in lineage_rows(catalogue.world):
            assert attempt.secret not in json.dumps(row, default=str)
        report = write_job_report(catalogue.platform, attempt.job)
        assert attempt.secret not in report.read_text()


# --------------------------------------------------------------------------- decided behaviour


def test_extra_feature_columns_are_ignored_and_never_reach_the_prediction_table(catalogue):
    """The model reads only its signature's columns: extra columns in the feature table are
    fine (the run publishes) and the prediction table keeps its own layout."""
    cat = catalogue
    cat.variant("c_extra", _with_extra_columns)
    result = score_partition(
        cat.world.job("c_extra"), DAYS[2], platform=cat.platform, spark=cat.spark
    )
    assert result.rows == ROWS_PER_DAY
    published = tables.read_table(
        cat.output_table, version=result.output_version, partition_column="ds",
        start=DAYS[2], end=DAYS[2],
    )  # fmt: skip
    assert published.column_names == layout.prediction_columns(["customer_id"], "ds")
    assert set(published["run_id"].to_pylist()) == {result.run_id}


def test_nan_features_are_scored_by_default_because_the_model_handles_missing_values(catalogue):
    """HistGradientBoosting treats NaN as missing: by default (features.allow_nan: true) a
    partition with NaN features is scored, and every published score is a finite probability."""
    cat = catalogue
    cat.variant("c_nan_ok", _nan)
    result = score_partition(cat.world.job("c_nan_ok"), DAY, platform=cat.platform, spark=cat.spark)
    scores = tables.read_table(
        cat.output_table, version=result.output_version, partition_column="ds",
        start=DAY, end=DAY,
    )  # fmt: skip
    assert scores.num_rows == ROWS_PER_DAY
    values = scores["score"].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    assert pc.count_distinct(scores["customer_id"]).as_py() == ROWS_PER_DAY


def test_the_catalogue_covers_the_issue(catalogue):
    """At least 25 cases, each one a distinct id, each one naming what it is about."""
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.broken for c in CASES)


def test_sql_views_leave_out_an_unreadable_table_and_keep_the_others(catalogue: Catalogue):
    from lakescore import api

    if not (catalogue.warehouse / "features" / "c_protocol").exists():
        _unsupported_protocol(catalogue)  # the catalogue's case made it already
    con = api.connect(catalogue.platform)
    listed = con.execute("select view_name from duckdb_views() where not internal").fetchall()
    views = {r[0] for r in listed}
    assert "features_c_protocol" not in views
    assert {"scores_c_base", "features_c_base", "lineage"} <= views
    rows = con.execute("select count(*) from scores_c_base").fetchone()[0]
    assert rows == tables.read_table(catalogue.output_table).num_rows > 0
