"""``lakescore new-job``: a job YAML written from a registered model's signature and a feature
table's schema, then checked the way a run checks it (config, signature against the table,
the model loads here and serves its task).

What cannot be read off the model and the table is guessed and marked ``# REVIEW`` in the
file: the entity keys (columns that are neither features nor the partition column, names
ending in ``id`` / ``key`` first) and, for a regression model, the audit bounds.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

from lakescore.config import PlatformConfig, job_file, load_job, table_uri
from lakescore.errors import BadInputError

_KEY_NAME = re.compile(r"(^|_)(id|key|uuid)$|id$", re.IGNORECASE)


@dataclass
class NewJob:
    """What ``new-job`` wrote and found."""

    name: str
    path: str
    model: str
    version: int
    flavor: str
    task: str
    features: list[str]
    keys: list[str]
    partition_column: str
    review: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def parse_model_reference(text: str) -> tuple[str, str | None, int | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` -> (name, alias, version)."""
    if "@" in text:
        name, alias = text.split("@", 1)
        return name, alias or None, None
    if "/" in text and text.rsplit("/", 1)[1].isdigit():
        name, version = text.rsplit("/", 1)
        return name, None, int(version)
    return text, "champion", None


def job_name_for(model: str) -> str:
    """A valid job name from a model name (lowercase, '_' for anything else)."""
    name = re.sub(r"[^a-z0-9_]+", "_", model.lower()).strip("_")
    return name if name[:1].isalpha() else f"job_{name}"


def guess_keys(columns: list[str], features: list[str], partition_column: str) -> list[str]:
    """Entity key candidates: non-feature, non-partition columns that look like identifiers
    (all of them, in table order), else the first non-feature column."""
    rest = [c for c in columns if c not in features and c != partition_column]
    named = [c for c in rest if _KEY_NAME.search(c)]
    return named or rest[:1]


def write_new_job(
    platform: PlatformConfig,
    *,
    model: str,
    features_table: str,
    name: str | None = None,
    output_table: str | None = None,
    keys: list[str] | None = None,
    force: bool = False,
) -> NewJob:
    """Write ``conf/jobs/<name>.yaml`` for ``model`` over ``features_table`` and check it."""
    from lakescore.config import ModelRef
    from lakescore.ml.models import (
        check_model_loadable,
        check_signature,
        download_model,
        resolve_model_version,
    )

    model_name, alias, version = parse_model_reference(model)
    name = name or job_name_for(model_name)
    path = job_file(name, platform.conf_dir)
    if path.exists() and not force:
        raise BadInputError(f"{path} exists (use --force to overwrite it)", job=name)
    uri = table_uri(platform, features_table)
    columns, partition_column = _feature_table(uri)
    ref = ModelRef(name=model_name, alias=alias, version=version)
    resolved = resolve_model_version(platform, ref, job=name)
    features = check_signature(resolved, columns, job=name, table=uri)
    scorer = check_model_loadable(download_model(platform, resolved, job=name), resolved, job=name)
    chosen_keys = keys or guess_keys(list(columns), features, partition_column)
    if not chosen_keys:
        raise BadInputError(
            "no column left for the entity key (every column is a feature or the partition)",
            file=uri,
            key="--key",
        )
    made = NewJob(
        name=name,
        path=str(path),
        model=model_name,
        version=resolved.version,
        flavor=resolved.flavor,
        task=scorer.task,
        features=features,
        keys=chosen_keys,
        partition_column=partition_column,
        review=[] if keys else [f"features.entity_keys {chosen_keys} (guessed)"],
    )
    model_lines = [f"  name: {model_name}"]
    model_lines.append(f"  alias: {alias}" if alias else f"  version: {version}")
    model_lines.append(f"  task: {scorer.task}  # decided from the model ({resolved.flavor})")
    if scorer.task == "binary":
        model_lines.append(
            f"  positive_class: {scorer.positive_class!r}  # of classes {scorer.class_names}"
        )
    lines = [
        f"# Written by `lakescore new-job --model {model} --features {features_table}`.",
        "# Lines marked REVIEW are guesses: check them, then remove the mark.",
        f"name: {name}",
        "model:",
        *model_lines,
        *_other_lines(made, features_table, output_table or f"scores/{name}", guessed=not keys),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    load_job(name, platform=platform)  # the file parses as the runs will read it
    return made


def _feature_table(uri: str) -> tuple[dict[str, str], str]:
    """The feature table's columns (name -> type) and its partition column."""
    from deltalake import DeltaTable

    from lakescore.lakehouse import tables

    if not tables.table_exists(uri):
        raise BadInputError("no Delta table there", file=uri, key="--features")
    partitions = list(DeltaTable(uri).metadata().partition_columns)
    if not partitions:
        raise BadInputError(
            "the feature table is not partitioned; lakescore scores one partition (a date "
            "column) per run",
            file=uri,
            key="--features",
        )
    return tables.table_columns(uri), partitions[0]


def _other_lines(made: NewJob, features_table: str, output: str, *, guessed: bool) -> list[str]:
    """The ``features``, ``output`` (and a regression model's ``audit``) sections; adds the
    placeholders to ``made.review``."""
    lines = [
        "features:",
        f"  table: {features_table}",
        f"  partition_column: {made.partition_column}",
        f"  entity_keys: [{', '.join(made.keys)}]" + ("  # REVIEW" if guessed else ""),
        "  columns: from_signature  # " + ", ".join(made.features),
        "output:",
        f"  table: {output}",
    ]
    if made.task == "regression":
        made.review.append("audit.score_min / audit.score_max (placeholders)")
        lines += [
            "audit:  # REVIEW: the range every prediction must fall in (also the drift range)",
            "  score_min: -1000000.0",
            "  score_max: 1000000.0",
        ]
    return lines


def describe(job: NewJob) -> str:
    """The lines ``new-job`` prints."""
    out = [
        f"wrote {job.path}",
        f"  model {job.model} v{job.version} ({job.flavor}, task {job.task}), "
        f"{len(job.features)} features from its signature",
        f"  partition column {job.partition_column}, entity keys {job.keys}",
    ]
    out += [f"  REVIEW: {item}" for item in job.review]
    out.append(f"next: lakescore score --job {job.name} --ds <YYYY-MM-DD>")
    return "\n".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``new-job`` command's arguments (the CLI only hooks this in)."""
    parser.add_argument("--model", required=True, help="NAME, NAME@ALIAS or NAME/VERSION")
    parser.add_argument(
        "--features", required=True, help="feature table: a path, URI or name under the warehouse"
    )
    parser.add_argument("--name", help="job name (default: from the model name)")
    parser.add_argument("--output", help="prediction table (default scores/<name>)")
    parser.add_argument(
        "--key", action="append", help="entity key column (repeat for several; default: guessed)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing job file")


def run_command(platform: PlatformConfig, args: argparse.Namespace) -> int:
    import json

    job = write_new_job(
        platform,
        model=args.model,
        features_table=args.features,
        name=args.name,
        output_table=args.output,
        keys=args.key,
        force=args.force,
    )
    print(json.dumps(job.as_dict()) if args.json else describe(job))
    return 0
