"""spark-submit entry point of the scoring job.

    spark-submit --conf ... jobs/score.py --job churn --ds 2026-11-20 [--model-version N]

A thin shell over :func:`lakescore.run.score_partition` (through the CLI, so exit codes and
error lines are the same): the session that spark-submit created is picked up by
``getOrCreate``.
"""

from __future__ import annotations

import sys

from lakescore.cli import entry

if __name__ == "__main__":
    entry(["score", *sys.argv[1:]])
