"""The feature-value check of the scoring pass (lakescore.ml.scoring.ValueCheck): which values
are refused, how rows are flagged, and that a flagged row is never handed to a model."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from lakescore.lakehouse import layout
from lakescore.ml.models import Prediction, ScorerSpec
from lakescore.ml.scoring import (
    ModelSlot,
    ValueCheck,
    bad_value_flags,
    describe_bad_values,
    score_batch,
)

INF, NAN = math.inf, math.nan


def _batch(**columns: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"id": list(range(len(next(iter(columns.values())))))} | columns
    )


def test_a_clean_batch_has_no_flags() -> None:
    batch = _batch(a=[1.0, 2.0], b=[3.0, 4.0])
    assert bad_value_flags(batch, ValueCheck(("a", "b"), allow_nan=False)) is None


def test_infinite_values_are_flagged_whatever_allow_nan_says() -> None:
    batch = _batch(a=[1.0, INF, -INF], b=[NAN, 0.0, 1.0])
    flags = bad_value_flags(batch, ValueCheck(("a", "b"), allow_nan=True))
    assert flags is not None
    assert flags.to_pylist() == [None, "a:inf", "a:inf"]


def test_nan_is_flagged_only_when_not_allowed_and_every_bad_column_of_a_row_is_named() -> None:
    batch = _batch(a=[NAN, INF, 1.0], b=[NAN, 2.0, 3.0])
    check = ValueCheck(("a", "b"), allow_nan=False)
    flags = bad_value_flags(batch, check)
    assert flags is not None
    assert flags.to_pylist() == ["a:nan,b:nan", "a:inf", None]


def test_null_is_a_missing_value_not_nan_and_integer_columns_are_not_checked() -> None:
    batch = _batch(a=[None, 1.0], n=[None, 5])
    assert bad_value_flags(batch, ValueCheck(("a", "n"), allow_nan=False)) is None


def test_describe_counts_per_column_in_feature_order() -> None:
    counts = {"b:inf": 2, "a:nan": 6, "a:inf": 1}
    assert describe_bad_values(counts, ["a", "b", "c"]) == [
        ("a", "column 'a' has 1 infinite values"),
        ("a", "column 'a' has 6 NaN values (features.allow_nan is false)"),
        ("b", "column 'b' has 2 infinite values"),
    ]


class _SumScorer:
    """Stands in for a model: a row's score is the sum of its features; refuses non-finite
    input the way scikit-learn does, so a flagged row reaching it fails the test."""

    takes_matrix = True

    def __init__(self) -> None:
        self.rows_seen = 0
        self.told_finite: list[bool] = []

    def score(self, matrix: np.ndarray, *, finite: bool = False) -> Prediction:
        if not np.isfinite(matrix).all():
            raise ValueError("Input X contains infinity or NaN")
        self.rows_seen += matrix.shape[0]
        self.told_finite.append(finite)
        return Prediction(matrix.sum(axis=1))


def _slot(columns: tuple[str, ...], required: bool = True) -> ModelSlot:
    spec = ScorerSpec("sklearn", 1, "binary", tuple((c, "double") for c in columns))
    return ModelSlot("score", "unused", spec, columns, required=required)


@pytest.mark.parametrize("required", [True, False])
def test_flagged_rows_get_null_scores_and_the_rest_are_scored(required: bool) -> None:
    batch = _batch(a=[1.0, INF, 2.0, 3.0], b=[10.0, 1.0, NAN, 30.0])
    slot = _slot(("a", "b"), required)
    scorer = _SumScorer()
    out = score_batch(batch, [(slot, scorer)], ["id"], ValueCheck(("a", "b"), allow_nan=False))
    assert out.schema.names == ["id", "score", layout.BAD_VALUES]
    assert out.column("score").to_pylist() == [11.0, None, None, 33.0]
    assert out.column(layout.BAD_VALUES).to_pylist() == [None, "a:inf", "b:nan", None]
    assert scorer.rows_seen == 2


def test_without_a_check_the_output_has_no_flag_column() -> None:
    batch = _batch(a=[1.0, 2.0])
    slot = _slot(("a",))
    out = score_batch(batch, [(slot, _SumScorer())], ["id"])
    assert out.schema.names == ["id", "score"]
    assert out.column("score").to_pylist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("allow_nan", "checked", "finite"),
    [(False, ("a", "b"), True), (True, ("a", "b"), False), (False, ("a",), False)],
)
def test_models_skip_their_own_finiteness_check_only_when_every_value_was_checked(
    allow_nan: bool, checked: tuple[str, ...], finite: bool
) -> None:
    batch = _batch(a=[1.0, 2.0], b=[3.0, 4.0])
    slot = _slot(("a", "b"))
    scorer = _SumScorer()
    score_batch(batch, [(slot, scorer)], ["id"], ValueCheck(checked, allow_nan=allow_nan))
    assert scorer.told_finite == [finite]


def test_a_finite_matrix_skips_scikit_learns_check_and_nothing_else_changes() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lakescore.ml.models import ModelScorer

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 3))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X[:, 0] > 0)
    spec = ScorerSpec("sklearn", 1, "auto", (("a", "double"), ("b", "double"), ("c", "double")))
    scorer = ModelScorer("memory", spec, model)
    assert scorer.takes_matrix and scorer.task == "binary"
    np.testing.assert_array_equal(scorer.score(X, finite=True).score, scorer.score(X).score)
    spoiled = X.copy()
    spoiled[7, 1] = NAN
    with pytest.raises(ValueError, match="NaN"):
        scorer.score(spoiled)  # scikit-learn's own check
    assert np.isnan(scorer.score(spoiled, finite=True).score[7])  # skipped: the caller's job
