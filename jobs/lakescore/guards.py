"""Guards against hostile input: each turns a broken input into one clear error, before
anything is published.

The scoring run (:mod:`lakescore.run`) calls them at the stage where the input is first
known: the lineage table must be appendable before any work starts (scores that lineage
cannot record are never published), the model version's artifacts must come from the
configured registry store and load on the driver before Spark scores with them, the feature
values must be finite (and keys present and unique) before scoring, and the staging folder
must be writable before Spark writes to it. :func:`explain_failure` turns what Spark raises
for a corrupt data file or an unwritable staging folder into an error that names the file.

The catalogue of bad input these guards answer is ``tests/integration/test_bad_input_catalogue.py``
(README, "Bad input").
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lakescore.config import PlatformConfig, is_inside
from lakescore.errors import BadInputError, LakescoreError, ScoringFailure
from lakescore.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from lakescore.models import ProbabilityScorer, ResolvedModel
    from lakescore.scoring import AuditResult


# --------------------------------------------------------------------------- lineage


def check_lineage_appendable(uri: str, *, job: str | None = None) -> None:
    """The lineage table (if it exists yet) must load, or a run could publish scores that
    lineage cannot record. delta-rs appends by loading the same log."""
    from lakescore import tables

    if not tables.table_exists(uri):
        return
    try:
        tables.table_version(uri)
    except LakescoreError as exc:
        raise ScoringFailure(
            "the lineage table is unreadable, so this run could not be recorded; nothing "
            f"published ({exc.message})",
            job=job,
            file=uri,
        ) from None


# --------------------------------------------------------------------------- staging


def prepare_staging(staging_dir: Path, *, job: str | None = None) -> None:
    """Create the run's staging folder's parent and prove it takes a file, so a full disk,
    a read-only mount or a file in the way fails here, naming the path (Spark would fail
    later with a Hadoop stack trace)."""
    parent = staging_dir.parent
    probe = parent / f".lakescore-probe-{uuid.uuid4().hex}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"lakescore staging probe\n")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise ScoringFailure(
            f"cannot write the staging folder ({exc.strerror or type(exc).__name__}: "
            f"{exc.filename or parent}); nothing published",
            job=job,
            file=str(staging_dir),
        ) from None


# --------------------------------------------------------------------------- model


def model_download_uri(platform: PlatformConfig, name: str, version: int) -> str:
    """Where the registry says version ``version``'s artifacts are (what MLflow loads)."""
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_download_uri(name, str(version)))


def check_model_source(
    platform: PlatformConfig, name: str, version: int, source: str, *, job: str | None = None
) -> str:
    """Refuse a model version whose artifacts live outside the configured registry store.

    Allowed: below ``mlflow.artifact_root`` (local path or URI), or ``mlflow-artifacts:``
    URIs (served by the configured tracking server itself). Returns the download URI.
    """
    location = model_download_uri(platform, name, version)
    if _location_allowed(platform, location):
        return location
    root = platform.mlflow.artifact_root or "(mlflow.artifact_root is not set)"
    raise BadInputError(
        f"model {name} version {version} loads from {redact(location)} (source "
        f"{redact(source)}), outside the configured registry store {redact(root)}; "
        "lakescore loads model artifacts only from there",
        job=job,
        key="model",
    )


def _location_allowed(platform: PlatformConfig, location: str) -> bool:
    parsed = urlparse(location)
    if parsed.scheme == "mlflow-artifacts":
        return urlparse(platform.mlflow.tracking_uri).scheme in ("http", "https")
    root = platform.mlflow.artifact_root
    if not root:
        return False
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else location
        root_path = unquote(urlparse(root).path) if root.startswith("file:") else root
        return Path(path).is_absolute() and is_inside(path, root_path)
    return is_inside(location, root)


def check_model_loadable(
    model_dir: Path, model: ResolvedModel, *, job: str | None = None
) -> ProbabilityScorer:
    """Load the downloaded model once on the driver: a corrupt or missing model file (or a
    positive class the classifier does not have) fails here, naming the model and the file,
    instead of inside every Spark task."""
    import yaml

    from lakescore.models import ProbabilityScorer

    mlmodel = model_dir / "MLmodel"
    where = f"model {model.name} version {model.version}"
    try:
        flavors: dict[str, Any] = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(
            f"{where}: its MLmodel file is unreadable ({type(exc).__name__})",
            job=job,
            file=_artifact_file(model, "MLmodel"),
        ) from None
    spec = flavors.get("sklearn") if model.flavor == "sklearn" else flavors.get("python_function")
    relative = str((spec or {}).get("pickled_model") or (spec or {}).get("model_path") or "")
    if relative and not (model_dir / relative).exists():
        raise BadInputError(
            f"{where}: model file {relative} is missing from its artifacts",
            job=job,
            file=_artifact_file(model, relative),
        )
    try:
        return ProbabilityScorer(str(model_dir), model.flavor, model.positive_class)
    except LakescoreError as exc:
        exc.file = exc.file and _artifact_file(model, relative or "MLmodel")
        raise exc.with_context(job=job) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BadInputError(
            f"{where} cannot be loaded ({type(exc).__name__}: {first[:300]})",
            job=job,
            file=_artifact_file(model, relative or "MLmodel"),
        ) from None


def _artifact_file(model: ResolvedModel, relative: str) -> str:
    """The registry-side location of one artifact file (what the user can go and fix)."""
    base = model.storage_location or model.source
    return redact(local_path(base.rstrip("/") + "/" + relative))


def local_path(uri: str) -> str:
    """``file:///a/b`` or ``file:/a/b`` -> ``/a/b`` (what a user can ``ls``); others unchanged."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path) or uri
    return uri


# --------------------------------------------------------------------------- feature values


def refuse_bad_input(
    audit: AuditResult,
    bad_values: Callable[[], dict[str, int]],
    *,
    keys: list[str],
    features: list[str],
    check_keys: bool,
    job: str | None = None,
    ds: str | None = None,
    table: str | None = None,
) -> None:
    """Refuse the partition, naming the column and the count, when the scoring pass found
    refused feature values (infinite, or NaN when not allowed; ``bad_values()`` counts them
    by column) or, unless validation already enforced them, null or duplicate entity keys.
    The audit of the staged output counted all of it: the partition is read once."""
    from lakescore.scoring import describe_bad_values

    problems = describe_bad_values(bad_values(), features) if audit.bad_value_rows else []
    if check_keys and audit.null_keys:
        problems.append(
            (keys[0], f"column {','.join(keys)!r} has {audit.null_keys} null entity keys")
        )
    if check_keys and audit.duplicate_keys:
        problems.append(
            (keys[0], f"column {','.join(keys)!r} has {audit.duplicate_keys} duplicate entity keys")
        )
    if problems:
        raise BadInputError(
            "feature partition refused, nothing published: " + "; ".join(t for _, t in problems),
            job=job,
            ds=ds,
            file=table,
            column=problems[0][0],
        )


# --------------------------------------------------------------------------- Spark errors

_READ_FILE = re.compile(r"reading file (?P<file>\S+?)\.?(?:\s|$)")
_NOT_PARQUET = re.compile(r"(?P<file>\S+) is not a Parquet file")


def explain_failure(
    exc: BaseException | str, *, staging_dir: Path | None = None, table: str | None = None
) -> LakescoreError | None:
    """A clear error for a failure Spark reports with a stack trace (``exc`` or its text): a
    corrupt or unreadable data file of the feature table (bad input, names the file), or an
    unwritable staging folder (names the path). ``None`` if it is neither."""
    text = str(exc)
    match = _NOT_PARQUET.search(text) or _READ_FILE.search(text)
    if match and (table is None or _strip_scheme(table) in text or "FAILED_READ_FILE" in text):
        file = local_path(match.group("file").rstrip(".,;:"))
        return BadInputError(
            "a data file of the feature table is corrupt or unreadable, nothing published: "
            f"{_reason(text)}",
            file=file,
        )
    if staging_dir is not None and _strip_scheme(str(staging_dir)) in text:
        return ScoringFailure(
            f"cannot write the staged output to {staging_dir}, nothing published: {_reason(text)}",
            file=str(staging_dir),
        )
    return None


def _strip_scheme(uri: str) -> str:
    return re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*:/*", "/", uri)


def _reason(text: str) -> str:
    """The most specific cause in a Java/Python error text, on one line."""
    for pattern in (
        r"is not a Parquet file[^\n]*",
        r"(?:RuntimeException|IOException|ParquetDecodingException|EOFException):[^\n]*",
        r"\[[A-Z_.]+\][^\n]*",
    ):
        if m := re.search(pattern, text):
            return m.group(0).strip()[:300]
    return text.strip().splitlines()[0][:300] if text.strip() else ""
