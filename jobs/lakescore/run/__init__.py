"""A scoring run: check, resolve, load, validate, score, audit, publish, record.

Write-audit-publish: scores are written where no reader sees them first (files in the
prediction table's folder that no Delta version refers to, or a private staging folder);
only an audit that passes lets them into the prediction table, in one atomic Delta commit
that replaces partition ds. Any failure leaves the prediction table exactly as it was, and
every attempt (success or failure) leaves one lineage row.

Cheap, JVM-free checks come first (partition exists, entity keys present), so the commonest
bad input fails in a second without starting Spark. The JVM then starts in the background
while the model resolves (signature against the feature table) and loads; a model that fails
those checks fails the run before any Spark work.

The stages, each a module of this package, in the order :func:`run_stages` calls them:

============  ==============================================================
check         :mod:`lakescore.run.check` (partition exists, keys, lineage)
resolve/load  :mod:`lakescore.run.resolve` (pinned versions, signatures)
spark_start   :mod:`lakescore.run.session` (background JVM, models shipped)
validate      :mod:`lakescore.run.validate` (Great Expectations, policy)
score         :mod:`lakescore.run.score_path` (reader/writer policy), :mod:`lakescore.run.score`
audit/drift   :mod:`lakescore.run.audit`
publish       :mod:`lakescore.run.publish` (prediction, rejects and shadow tables)
lineage       :mod:`lakescore.run.record`
============  ==============================================================

The public surface is what this module exports.
"""

from __future__ import annotations

from lakescore.run.context import RunContext, RunRequest, RunResult, new_run_id
from lakescore.run.pipeline import run_stages, score_partition
from lakescore.run.progress import LogProgress, ProgressReporter

__all__ = [
    "LogProgress",
    "ProgressReporter",
    "RunContext",
    "RunRequest",
    "RunResult",
    "new_run_id",
    "run_stages",
    "score_partition",
]
