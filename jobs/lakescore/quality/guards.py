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
(docs/bad-input.md).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lakescore.config import local_path
from lakescore.errors import BadInputError, LakescoreError, ScoringFailure

if TYPE_CHECKING:
    from collections.abc import Callable

    from lakescore.ml.scoring import AuditResult


# --------------------------------------------------------------------------- lineage


def check_lineage_appendable(uri: str, *, job: str | None = None) -> None:
    """The lineage table (if it exists yet) must load, or a run could publish scores that
    lineage cannot record. delta-rs appends by loading the same log."""
    from lakescore.lakehouse import tables

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
    from lakescore.ml.scoring import describe_bad_values

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
