"""Validation of the feature partition with Great Expectations, before any scoring.

Every rule is written once, as a :class:`Rule`: its Great Expectations expectation (what is
evaluated and reported, with Data Docs) and, for row-level rules, the same condition as a
Spark predicate (what ``quarantine`` uses to split bad rows from good ones in the scoring
pass). The defaults need no config: feature columns exist with a type the model accepts,
entity keys are not null and unique, the row count is within a band of the previous
partition. Declared ranges/sets and an optional suite file add to them.

great_expectations is imported only here and only when a run validates (it costs seconds).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.config import DeclaredExpectation, ScoringJob
from lakescore.errors import BadInputError
from lakescore.quality.guards import explain_failure

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from lakescore.ml.models import ResolvedModel

# Spark type names Great Expectations reports, per model signature type.
_NUMERIC_SPARK_TYPES = [
    "DoubleType",
    "FloatType",
    "LongType",
    "IntegerType",
    "ShortType",
    "ByteType",
    "BooleanType",
]
_SPARK_TYPES_FOR = {
    "double": _NUMERIC_SPARK_TYPES,
    "float": _NUMERIC_SPARK_TYPES,
    "long": ["LongType", "IntegerType", "ShortType", "ByteType", "BooleanType"],
    "integer": ["IntegerType", "ShortType", "ByteType", "BooleanType"],
    "boolean": ["BooleanType"],
    "string": ["StringType"],
}


class ValidationFailed(BadInputError):
    """The feature partition failed its expectations (policy ``fail``); nothing published."""


@dataclass(frozen=True)
class Rule:
    """One expectation. ``passes`` (row-level rules only) is the same check as a Spark column
    expression that is true for a good row."""

    name: str
    expectation: Any
    passes: Callable[[], Column] | None = None
    mostly: float = 1.0


@dataclass
class ValidationOutcome:
    status: str  # passed | failed | warned | quarantined
    evaluated: int
    failed: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    report_dir: str | None = None
    result_json: str | None = None
    data_docs: str | None = None
    rejected_rows: int = 0
    # seconds per phase of the suite's run (validate_partition); empty when not run here
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.failures:
            return f"{self.evaluated} expectations passed"
        parts = [
            f"{f['expectation']}"
            + (f" ({f['unexpected_count']} unexpected)" if f.get("unexpected_count") else "")
            + (f" observed {f['observed_value']}" if f.get("observed_value") is not None else "")
            for f in self.failures
        ]
        return f"{self.failed} of {self.evaluated} expectations failed: " + "; ".join(parts)


def _name(kind: str, column: str | None = None) -> str:
    return f"{kind}({column})" if column else kind


def build_rules(
    job: ScoringJob,
    model: ResolvedModel,
    previous_rows: int | None,
    conf_dir: str | None = None,
) -> list[Rule]:
    """Default rules from the signature and keys, then declared ones, then the suite file."""
    import great_expectations.expectations as gxe
    from pyspark.sql import functions as F

    spec = job.validation
    rules: list[Rule] = []
    for column, sig_type in model.inputs:
        rules.append(
            Rule(_name("expect_column_to_exist", column), gxe.ExpectColumnToExist(column=column))
        )
        types = _SPARK_TYPES_FOR.get(str(sig_type).lower())
        if types:
            rules.append(
                Rule(
                    _name("expect_column_values_to_be_in_type_list", column),
                    gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=types),
                )
            )
    for key in job.features.entity_keys:
        rules.append(
            Rule(
                _name("expect_column_values_to_not_be_null", key),
                gxe.ExpectColumnValuesToNotBeNull(column=key),
                passes=lambda key=key: F.col(key).isNotNull(),
            )
        )
    keys = job.features.entity_keys
    if len(keys) == 1:
        rules.append(
            Rule(
                _name("expect_column_values_to_be_unique", keys[0]),
                gxe.ExpectColumnValuesToBeUnique(column=keys[0]),
            )
        )
    else:
        rules.append(
            Rule(
                _name("expect_compound_columns_to_be_unique", ",".join(keys)),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=keys),
            )
        )
    band = spec.row_count_band
    if band is not None and previous_rows:
        low = math.floor(previous_rows * band.min_ratio)
        high = math.ceil(previous_rows * band.max_ratio)
        rules.append(
            Rule(
                f"expect_table_row_count_to_be_between({low}..{high}, previous partition "
                f"{previous_rows} rows)",
                gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high),
            )
        )
    for declared in spec.expectations:
        rules.extend(_declared_rules(declared))
    if spec.suite:
        rules.extend(_suite_rules(Path(conf_dir or ".") / spec.suite, job.name))
    return rules


def _declared_rules(d: DeclaredExpectation) -> list[Rule]:
    import great_expectations.expectations as gxe
    from pyspark.sql import functions as F

    out = []
    if d.not_null:
        out.append(
            Rule(
                _name("expect_column_values_to_not_be_null", d.column),
                gxe.ExpectColumnValuesToNotBeNull(column=d.column, mostly=d.mostly),
                passes=lambda: F.col(d.column).isNotNull(),
                mostly=d.mostly,
            )
        )
    if d.min is not None or d.max is not None:

        def in_range() -> Column:
            col = F.col(d.column)
            cond = col.isNotNull() & ~F.isnan(col.cast("double"))
            if d.min is not None:
                cond = cond & (col >= F.lit(d.min))
            if d.max is not None:
                cond = cond & (col <= F.lit(d.max))
            # nulls are the not_null rule's business, as in Great Expectations
            return cond | col.isNull()

        out.append(
            Rule(
                _name("expect_column_values_to_be_between", d.column),
                gxe.ExpectColumnValuesToBeBetween(
                    column=d.column, min_value=d.min, max_value=d.max, mostly=d.mostly
                ),
                passes=in_range,
                mostly=d.mostly,
            )
        )
    if d.values:
        out.append(
            Rule(
                _name("expect_column_values_to_be_in_set", d.column),
                gxe.ExpectColumnValuesToBeInSet(
                    column=d.column, value_set=d.values, mostly=d.mostly
                ),
                passes=lambda: F.col(d.column).isin(d.values) | F.col(d.column).isNull(),
                mostly=d.mostly,
            )
        )
    return out


def _suite_rules(path: Path, job: str) -> list[Rule]:
    """Expectations from a Great Expectations suite JSON file (``suite.to_json_dict()`` form)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError("expectation suite file not found", job=job, file=str(path)) from None
    except ValueError as exc:
        raise BadInputError(
            f"expectation suite is not JSON: {exc}", job=job, file=str(path)
        ) from None
    rules = []
    for i, item in enumerate(data.get("expectations", [])):
        try:
            config = ExpectationConfiguration(type=item["type"], kwargs=item.get("kwargs", {}))
            expectation = config.to_domain_obj()
        except Exception as exc:
            raise BadInputError(
                f"expectation #{i} is invalid: {exc}",
                job=job,
                file=str(path),
                key=f"expectations[{i}]",
            ) from None
        column = item.get("kwargs", {}).get("column")
        rules.append(Rule(_name(item["type"], column), expectation))
    return rules


def import_great_expectations() -> None:
    """Import Great Expectations (seconds of Python on its first use in a process): a cold
    run does it while its Spark JVM starts, instead of after."""
    import great_expectations
    import great_expectations.expectations  # noqa: F401


def validate_partition(
    df: DataFrame,
    rules: list[Rule],
    *,
    job: str,
    ds: str,
    report_dir: Path,
    run_name: str | None = None,
) -> ValidationOutcome:
    """Run the rules as one Great Expectations suite on ``df``; keep JSON + Data Docs.

    The process's one Great Expectations context (:func:`great_expectations_session`) runs
    it; ``df`` is read as it is (not persisted): the caller caches it when the rows are read
    again. ``seconds`` of the outcome times each phase (import, context, suite, run, samples,
    docs, result_json)."""
    phases = _Phases()
    report_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = report_dir / "data_docs"
    with phases("import"):
        import great_expectations  # noqa: F401  (seconds on first use in a process)
    with _GX_LOCK:
        with phases("context"):
            session = great_expectations_session(df.sparkSession)
        validation, index = session.run(
            df, rules, job=job, ds=ds, run_name=run_name, docs_dir=docs_dir, phases=phases
        )
    with phases("result_json"):
        payload = validation.to_json_dict()
        result_json = report_dir / "validation.json"
        result_json.write_text(json.dumps(payload, indent=1, default=str))
    failures = _failures(validation, rules, job=job, ds=ds)
    return ValidationOutcome(
        status="passed" if not failures else "failed",
        evaluated=len(validation.results),
        failed=len(failures),
        failures=failures,
        report_dir=str(report_dir),
        result_json=str(result_json),
        data_docs=str(index) if index.exists() else None,
        seconds=phases.seconds,
    )


def _failures(validation: Any, rules: list[Rule], *, job: str, ds: str) -> list[dict[str, Any]]:
    """The failed expectations of a suite result, named by their rules."""
    failures = []
    for item in validation.results:
        if item.success:
            continue
        config = item.expectation_config
        rule = _match_rule(rules, config)
        res = item.result or {}
        exception = _exception_text(item.exception_info)
        if exception and (unreadable := explain_failure(exception)) is not None:
            # Great Expectations turns a corrupt data file into failed expectations: say what
            # is really wrong instead.
            raise unreadable.with_context(job=job, ds=ds)
        failures.append(
            {
                "expectation": rule.name if rule else config.type,
                "column": (config.kwargs or {}).get("column"),
                "unexpected_count": res.get("unexpected_count"),
                "unexpected_percent": res.get("unexpected_percent"),
                "observed_value": res.get("observed_value"),
                "row_level": bool(rule and rule.passes),
                "exception": exception.strip().splitlines()[0][:500] if exception else None,
            }
        )
    return failures


class _Phases:
    """Seconds per named phase, summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


_SITE = "lakescore"
# One run at a time uses the shared context: Great Expectations' stores are not thread-safe.
_GX_LOCK = threading.RLock()
_SESSION: GreatExpectationsSession | None = None


def great_expectations_session(spark: SparkSession) -> GreatExpectationsSession:
    """The process's Great Expectations context for ``spark`` (built on first use, rebuilt
    when the process moves to another Spark session)."""
    global _SESSION
    with _GX_LOCK:
        if _SESSION is None or _SESSION.spark is not spark:
            _SESSION = GreatExpectationsSession(spark)
        return _SESSION


class GreatExpectationsSession:
    """One ephemeral Great Expectations context per process, reused by every partition it
    validates (a range run, a warm driver): its Spark data source, one dataframe asset per
    job and the Data Docs site are built once. Each run adds its own suite (the rules differ
    by partition: the row-count band) and validation definition, and removes them and its
    result afterwards, so nothing of one partition leaks into the next one's result or docs.

    The data source does not persist the batch DataFrame (Great Expectations' default would
    cache the whole partition and never release it): each metric bundle reads only its
    columns, and a caller that reads the rows again caches them itself."""

    def __init__(self, spark: SparkSession) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.spark = spark
        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        # lakescore reports its own progress; GE's tqdm bars would flood the task logs
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.add_data_docs_site(site_name=_SITE, site_config=_site_config(Path(".")))
        self._source = self.context.data_sources.add_spark(name="lakescore", persist=False)
        self._batches: dict[str, Any] = {}

    def _batch_definition(self, job: str) -> Any:
        if job not in self._batches:
            asset = self._source.add_dataframe_asset(name=job)
            self._batches[job] = asset.add_batch_definition_whole_dataframe(name="partition")
        return self._batches[job]

    def run(
        self,
        df: DataFrame,
        rules: list[Rule],
        *,
        job: str,
        ds: str,
        run_name: str | None,
        docs_dir: Path,
        phases: _Phases,
    ) -> tuple[Any, Path]:
        """(the suite's validation result, the Data Docs index under ``docs_dir``)."""
        gx, context = self._gx, self.context
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        suite_name, name = f"lakescore_{job}", f"{job}_{ds}"
        with phases("suite"):
            self._forget(suite_name, name)  # what a run interrupted mid-way left
            suite = context.suites.add(
                gx.ExpectationSuite(name=suite_name, expectations=[r.expectation for r in rules])
            )
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=self._batch_definition(job), suite=suite)
            )
        try:
            run_id = RunIdentifier(run_name=run_name or name)
            with phases("run"):
                validation = definition.run(
                    batch_parameters={"dataframe": df}, result_format=NO_SAMPLES, run_id=run_id
                )
            if _has_unexpected(validation):
                # Some rows broke a rule: run again for the samples of their values (what
                # Data Docs and the JSON show); a clean partition never pays for them.
                for key in context.validation_results_store.list_keys():
                    context.validation_results_store.remove_key(key)
                with phases("samples"):
                    validation = definition.run(
                        batch_parameters={"dataframe": df}, result_format=SAMPLES, run_id=run_id
                    )
            with phases("docs"):
                context.update_data_docs_site(_SITE, _site_config(docs_dir))
                context.build_data_docs(
                    site_names=[_SITE],
                    resource_identifiers=[
                        *context.validation_results_store.list_keys(),
                        ExpectationSuiteIdentifier(name=suite_name),
                    ],
                )
        finally:
            self._forget(suite_name, name)
        return validation, docs_dir / "index.html"

    def _forget(self, suite_name: str, name: str) -> None:
        """Remove a run's result, validation definition and suite from the context."""
        from great_expectations.exceptions import DataContextError

        context = self.context
        for key in context.validation_results_store.list_keys():
            context.validation_results_store.remove_key(key)
        with contextlib.suppress(DataContextError):  # not there
            context.validation_definitions.delete(name)
        with contextlib.suppress(DataContextError):
            context.suites.delete(suite_name)


# Great Expectations' SUMMARY result, with samples of unexpected values (a Spark job per
# row-level expectation, a shuffle for uniqueness) or without (``limit(0)``: no job).
SAMPLES: dict[str, Any] = {"result_format": "SUMMARY"}
NO_SAMPLES: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


def _has_unexpected(validation: Any) -> bool:
    """Whether a row-level expectation met unexpected values (failed, or passed ``mostly``)."""
    return any((item.result or {}).get("unexpected_count") for item in validation.results)


def _site_config(docs_dir: Path) -> dict[str, Any]:
    """The ``lakescore`` Data Docs site, written under ``docs_dir``."""
    return {
        "class_name": "SiteBuilder",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def _exception_text(info: Any) -> str | None:
    """Exception messages (and tracebacks) of an expectation result: GE keeps them at the top
    level or per metric."""
    if not isinstance(info, dict):
        return None
    parts = [info] + [v for v in info.values() if isinstance(v, dict)]
    texts = [
        str(p.get(key))
        for p in parts
        for key in ("exception_message", "exception_traceback")
        if p.get(key)
    ]
    return "\n".join(texts) or None


def _match_rule(rules: list[Rule], config: Any) -> Rule | None:
    kwargs = {k: v for k, v in (config.kwargs or {}).items() if k not in ("batch_id",)}
    for rule in rules:
        rc = rule.expectation.configuration
        if (
            rc.type == config.type
            and {k: v for k, v in (rc.kwargs or {}).items() if k not in ("batch_id",)} == kwargs
        ):
            return rule
    return None


def split_rejects(df: DataFrame, rules: list[Rule]) -> tuple[DataFrame, DataFrame]:
    """(good rows, bad rows + ``failed_expectations``) by the row-level rules' predicates."""
    from pyspark.sql import functions as F

    row_rules = [r for r in rules if r.passes is not None]
    failed = (
        F.array_compact(F.array(*[F.when(~r.passes(), F.lit(r.name)) for r in row_rules]))
        if row_rules
        else F.array().cast("array<string>")
    )
    tagged = df.withColumn("failed_expectations", failed)
    good = tagged.where(F.size("failed_expectations") == 0).drop("failed_expectations")
    bad = tagged.where(F.size("failed_expectations") > 0)
    return good, bad
