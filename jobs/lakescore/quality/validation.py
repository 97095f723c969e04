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

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakescore.config import DeclaredExpectation, ScoringJob
from lakescore.errors import BadInputError
from lakescore.quality.guards import explain_failure

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

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


def validate_partition(
    df: DataFrame,
    rules: list[Rule],
    *,
    job: str,
    ds: str,
    report_dir: Path,
) -> ValidationOutcome:
    """Run the rules as one Great Expectations suite on ``df``; keep JSON + Data Docs."""
    import great_expectations as gx

    report_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = report_dir / "data_docs"
    context = _ephemeral_context(docs_dir)
    source = context.data_sources.add_spark(name=f"{job}_features")
    asset = source.add_dataframe_asset(name=f"{job}_{ds}")
    batch = asset.add_batch_definition_whole_dataframe(name="partition")
    suite = context.suites.add(gx.ExpectationSuite(name=f"lakescore_{job}"))
    for rule in rules:
        suite.add_expectation(rule.expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{job}_{ds}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{job}_{ds}",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["lakescore"])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": df})
    (validation,) = result.run_results.values()
    payload = validation.to_json_dict()
    result_json = report_dir / "validation.json"
    result_json.write_text(json.dumps(payload, indent=1, default=str))
    by_config = {id(r.expectation): r for r in rules}
    failures = []
    evaluated = 0
    for item in validation.results:
        evaluated += 1
        if item.success:
            continue
        config = item.expectation_config
        rule = _match_rule(rules, config, by_config)
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
    index = docs_dir / "index.html"
    return ValidationOutcome(
        status="passed" if not failures else "failed",
        evaluated=evaluated,
        failed=len(failures),
        failures=failures,
        report_dir=str(report_dir),
        result_json=str(result_json),
        data_docs=str(index) if index.exists() else None,
    )


def _ephemeral_context(docs_dir: Path) -> Any:
    """A Great Expectations context that keeps nothing but its Data Docs site (``lakescore``,
    under ``docs_dir``) and draws no progress bars (lakescore reports its own progress; GE's
    tqdm bars would flood the task logs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name="lakescore",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


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


def _match_rule(rules: list[Rule], config: Any, _by_id: dict[int, Rule]) -> Rule | None:
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
