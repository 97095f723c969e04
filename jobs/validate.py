"""spark-submit entry point of the validation step (Airflow's ``validate_partition`` task).

spark-submit --conf ... jobs/validate.py --job churn --ds 2026-11-20 --model-version N
"""

from __future__ import annotations

import sys

from lakescore.cli import entry

if __name__ == "__main__":
    entry(["validate", *sys.argv[1:]])
