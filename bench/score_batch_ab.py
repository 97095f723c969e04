"""Side by side: one scoring batch of the numeric scikit-learn fast path (100,000 rows x 30
float64 features, the value check on, one thread) through ``lakescore.ml.scoring.score_batch``
of this checkout and of another commit's code, alternating, min of the rounds per model.

    git archive <commit> jobs | tar -x -C /tmp/old
    OMP_NUM_THREADS=1 .venv/bin/python bench/score_batch_ab.py /tmp/old/jobs jobs --rounds 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

ROWS, FEATURES, REPEATS = 100_000, 30, 15


def measure(jobs_dir: str) -> dict[str, float]:
    """Min seconds per batch per model, with the lakescore package under ``jobs_dir``."""
    sys.path.insert(0, jobs_dir)
    import numpy as np
    import pyarrow as pa
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lakescore.ml import models, scoring

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(FEATURES)]
    X = rng.normal(size=(ROWS, FEATURES))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(np.arange(ROWS)), *(pa.array(X[:, j]) for j in range(FEATURES))],
        names=["id", *names],
    )
    check = scoring.ValueCheck(tuple(names), allow_nan=False)
    out = {}
    for name, estimator in (
        ("logreg", make_pipeline(StandardScaler(), LogisticRegression())),
        ("hgb", HistGradientBoostingClassifier(max_iter=50)),
    ):
        estimator.fit(X[:20_000], y[:20_000])
        scorer, slot = _slot(models, scoring, estimator, names)
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            scoring.score_batch(batch, [(slot, scorer)], ["id"], check)
            times.append(time.perf_counter() - started)
        out[name] = min(times)
    return out


def _slot(models: Any, scoring: Any, estimator: Any, names: list[str]) -> tuple[Any, Any]:
    """The scorer and slot in either code base's API (ModelScorer since issue 18)."""
    if hasattr(models, "ModelScorer"):
        spec = models.ScorerSpec("sklearn", 1, "binary", tuple((c, "double") for c in names))
        return models.ModelScorer("memory", spec, estimator), scoring.ModelSlot(
            "score", "memory", spec, tuple(names)
        )
    scorer = models.ProbabilityScorer.from_sklearn(estimator, 1, "memory")
    return scorer, scoring.ModelSlot("score", "memory", "sklearn", 1, tuple(names))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", help="jobs/ folder of the code before")
    parser.add_argument("after", help="jobs/ folder of the code after")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    for _ in range(args.rounds):
        for label in ("before", "after"):
            command = [sys.executable, __file__, args.before, args.after, "--child"]
            done = subprocess.run(
                [*command, getattr(args, label)], capture_output=True, text=True, check=True
            )
            for model, seconds in json.loads(done.stdout.splitlines()[-1]).items():
                best[label][model] = min(seconds, best[label].get(model, seconds))
    for model in best["before"]:
        before, after = best["before"][model], best["after"][model]
        print(f"{model}: before {before:.4f} s, after {after:.4f} s, ratio {after / before:.2f}")


if __name__ == "__main__":
    main()
