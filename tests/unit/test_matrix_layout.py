"""The feature matrix's layout follows the model: column-major for a linear model (cheaper to
build from Arrow columns; BLAS multiplies either layout), row-major otherwise. The layout
changes the speed, and a score at most in its last bits (BLAS sums in another order)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lakescore.models import ProbabilityScorer
from lakescore.scoring import ModelSlot, score_batch

RNG = np.random.default_rng(11)
X = RNG.normal(size=(400, 4))
Y = X[:, 0] + X[:, 1] > 0


@pytest.mark.parametrize(
    ("model", "order"),
    [
        (LogisticRegression(), "F"),
        (make_pipeline(StandardScaler(), LogisticRegression()), "F"),
        (HistGradientBoostingClassifier(max_iter=5), "C"),
        (make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5)), "C"),
    ],
)
def test_each_model_gets_its_layout_and_the_same_scores(model, order: str) -> None:
    scorer = ProbabilityScorer.from_sklearn(model.fit(X, Y), 1, "memory")
    assert scorer.matrix_order == order

    columns = ("a", "b", "c", "d")
    batch = pa.record_batch(
        [pa.array(np.arange(len(X))), *(pa.array(X[:, j]) for j in range(4))],
        names=["id", *columns],
    )
    seen: list[np.ndarray] = []
    original = scorer.score

    def spy(matrix: np.ndarray, **kwargs) -> np.ndarray:
        seen.append(matrix)
        return original(matrix, **kwargs)

    scorer.score = spy  # type: ignore[method-assign]
    slot = ModelSlot("score", "unused", "sklearn", 1, columns)
    out = score_batch(batch, [(slot, scorer)], ["id"])
    (matrix,) = seen
    assert matrix.flags["F_CONTIGUOUS" if order == "F" else "C_CONTIGUOUS"]
    np.testing.assert_allclose(
        out.column("score").to_numpy(),
        model.predict_proba(np.ascontiguousarray(X))[:, 1],
        rtol=1e-12,
        atol=1e-15,
    )
