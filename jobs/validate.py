"""spark-submit entry point of the validation step (Airflow's ``validate_partition`` task).

spark-submit --conf ... jobs/validate.py --job churn --ds 2026-11-20 --model-version N
"""

from __future__ import annotations

import sys

from lakescore.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
