"""Errors that carry what a user needs to fix them: which job, partition, column, key or file.

Two families, so the CLI and Airflow can tell them apart:

* :class:`BadInputError` (exit code 2): the request or the data is wrong (unknown job,
  malformed date, missing partition, column missing from the feature table, ...). Retrying
  will not help.
* :class:`ScoringFailure` (exit code 1): the run itself failed (audit did not pass, commit
  conflict, a crashed executor beyond the retry budget, ...).
"""

from __future__ import annotations

from lakescore.redaction import redact


class LakescoreError(Exception):
    """Base class. ``str(err)`` is one line that names the job, partition and offending item."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        job: str | None = None,
        ds: str | None = None,
        column: str | None = None,
        key: str | None = None,
        file: str | None = None,
    ) -> None:
        self.message = message
        self.job = job
        self.ds = ds
        self.column = column
        self.key = key
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.job:
            where.append(f"job {self.job!r}")
        if self.ds:
            where.append(f"partition {self.ds}")
        if self.file:
            where.append(f"file {self.file}")
        if self.key:
            where.append(f"key {self.key!r}")
        if self.column:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        # Credentials in a URI never leave the process (see lakescore.redaction).
        return redact(f"{prefix}: {self.message}" if prefix else self.message)

    def with_context(self, *, job: str | None = None, ds: str | None = None) -> LakescoreError:
        """Fill in job/partition when a lower layer raised without knowing them."""
        self.job = self.job or job
        self.ds = self.ds or ds
        self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class BadInputError(LakescoreError):
    """The request, the config or the input data is wrong: fix the input, do not retry."""

    exit_code = 2


class ConfigError(BadInputError):
    """A config file is malformed, has an unknown key or a bad value."""


class ScoringFailure(LakescoreError):
    """The run failed (audit, commit, infrastructure); nothing was published."""


class AuditFailure(ScoringFailure):
    """The staged output did not pass the audit; nothing was published."""


class PublishConflict(ScoringFailure):
    """Another run published the same partition concurrently or more recently."""


class DriftFailure(ScoringFailure):
    """The score distribution drifted beyond the fail threshold; nothing was published."""


def as_lakescore_error(
    exc: BaseException, *, job: str | None = None, ds: str | None = None
) -> LakescoreError:
    """``exc`` itself when it is a :class:`LakescoreError`, else a :class:`ScoringFailure`
    naming its type and first line; either way with the job and partition filled in (raise
    the result ``from exc`` when it is new, so the traceback keeps the cause)."""
    if isinstance(exc, LakescoreError):
        err = exc
    else:
        text = str(exc).strip()
        err = ScoringFailure(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
    return err.with_context(job=job, ds=ds)
