"""Unit tests for the model-signature check (lakescore.ml.models); no MLflow is imported."""

from __future__ import annotations

import pytest

from lakescore.errors import BadInputError
from lakescore.ml.models import ResolvedModel, check_signature, type_family

SIGNATURE = (("tenure", "double"), ("monthly_charges", "double"), ("contract", "string"))

TABLE = {
    "customer_id": "bigint",
    "contract": "string",
    "monthly_charges": "double",
    "ds": "date",
    "tenure": "double",
}


def make_model(inputs: tuple[tuple[str, str], ...] = SIGNATURE) -> ResolvedModel:
    return ResolvedModel(
        name="churn_classifier",
        version=3,
        alias="champion",
        run_id="0123abcd",
        source="mlflow-artifacts:/1/0123abcd/artifacts/model",
        flavor="sklearn",
        inputs=inputs,
        positive_class=1,
    )


# --------------------------------------------------------------------------- type_family


@pytest.mark.parametrize(
    ("name", "family"),
    [
        # MLflow / Arrow / Spark spellings of the same thing
        ("double", "double"),
        ("float64", "double"),
        ("DOUBLE", "double"),
        (" double ", "double"),
        ("float", "float"),
        ("float32", "float"),
        ("long", "long"),
        ("int64", "long"),
        ("bigint", "long"),
        ("integer", "integer"),
        ("int", "integer"),
        ("int32", "integer"),
        ("smallint", "integer"),
        ("tinyint", "integer"),
        ("boolean", "boolean"),
        ("bool", "boolean"),
        ("string", "string"),
        ("large_string", "string"),
        ("utf8", "string"),
        ("decimal(10,2)", "decimal"),
        ("timestamp", "datetime"),
        ("timestamp[us, tz=UTC]", "datetime"),
        ("date32[day]", "date"),
        ("dictionary<values=string, indices=int32, ordered=0>", "string"),
    ],
)
def test_type_family(name: str, family: str) -> None:
    assert type_family(name) == family


# --------------------------------------------------------------------------- check_signature


def test_resolved_model_properties() -> None:
    model = make_model()

    assert model.uri == "models:/churn_classifier/3"
    assert model.feature_columns == ["tenure", "monthly_charges", "contract"]


def test_matching_schema_returns_signature_order() -> None:
    assert check_signature(make_model(), TABLE) == ["tenure", "monthly_charges", "contract"]


def test_explicit_feature_list_in_another_order_is_fine() -> None:
    columns = check_signature(make_model(), TABLE, ["contract", "tenure", "monthly_charges"])

    assert columns == ["tenure", "monthly_charges", "contract"]


def test_missing_column_is_named() -> None:
    table = {k: v for k, v in TABLE.items() if k != "monthly_charges"}

    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), table, job="churn", table="/wh/features/churn")

    err = info.value
    assert err.column == "monthly_charges"
    assert err.job == "churn"
    assert err.file == "/wh/features/churn"
    assert "['monthly_charges']" in str(err)
    assert "churn_classifier v3" in str(err)
    assert "missing from the feature table" in str(err)


def test_every_missing_column_is_listed() -> None:
    table = {"customer_id": "bigint", "ds": "date"}

    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), table)

    assert info.value.column == "tenure"
    assert "['tenure', 'monthly_charges', 'contract']" in str(info.value)


def test_string_column_where_model_expects_double() -> None:
    table = {**TABLE, "tenure": "string"}

    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), table, job="churn")

    assert info.value.column == "tenure"
    assert "tenure is string, model expects double" in str(info.value)


def test_every_mistyped_column_is_listed() -> None:
    table = {**TABLE, "tenure": "string", "contract": "double"}

    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), table)

    message = str(info.value)
    assert info.value.column == "tenure"
    assert "tenure is string, model expects double; contract is double, model expects string" in (
        message
    )


@pytest.mark.parametrize(
    "column_type",
    [
        "double",
        "float64",
        "float",
        "int64",
        "bigint",
        "long",
        "int32",
        "int",
        "integer",
        "smallint",
        "boolean",
        "BIGINT",
    ],
)
def test_numeric_columns_feed_double_inputs(column_type: str) -> None:
    table = {**TABLE, "tenure": column_type}

    assert check_signature(make_model(), table) == ["tenure", "monthly_charges", "contract"]


@pytest.mark.parametrize(
    ("sig_type", "column_type"),
    [
        ("long", "bigint"),
        ("long", "int64"),
        ("long", "int"),
        ("long", "int32"),
        ("integer", "int"),
        ("integer", "int32"),
        ("integer", "tinyint"),
        ("string", "string"),
        ("string", "large_string"),
        ("string", "utf8"),
        ("boolean", "bool"),
        ("double", "double"),
        ("binary", "binary"),
    ],
)
def test_spellings_normalise(sig_type: str, column_type: str) -> None:
    model = make_model((("x", sig_type),))

    assert check_signature(model, {"x": column_type}) == ["x"]


@pytest.mark.parametrize(
    ("sig_type", "column_type"),
    [
        ("long", "double"),
        ("integer", "bigint"),
        ("integer", "int64"),
        ("boolean", "int"),
        ("string", "bigint"),
        ("double", "string"),
        ("double", "timestamp"),
        ("double", "array<double>"),
        ("binary", "string"),
    ],
)
def test_incompatible_types_rejected(sig_type: str, column_type: str) -> None:
    model = make_model((("x", sig_type),))

    with pytest.raises(BadInputError) as info:
        check_signature(model, {"x": column_type})

    assert info.value.column == "x"
    assert f"x is {column_type}, model expects {sig_type}" in str(info.value)


def test_feature_list_with_extra_column_is_rejected() -> None:
    with pytest.raises(BadInputError) as info:
        check_signature(
            make_model(), TABLE, ["tenure", "monthly_charges", "contract", "customer_id"]
        )

    err = info.value
    assert err.key == "features.columns"
    assert err.column == "customer_id"
    assert "not in signature: ['customer_id']; not listed: []" in str(err)


def test_feature_list_missing_a_column_is_rejected() -> None:
    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), TABLE, ["tenure", "monthly_charges"], job="churn")

    err = info.value
    assert err.key == "features.columns"
    assert err.column == "contract"
    assert err.job == "churn"
    assert "not in signature: []; not listed: ['contract']" in str(err)


def test_feature_list_is_checked_before_the_table() -> None:
    with pytest.raises(BadInputError) as info:
        check_signature(make_model(), {}, ["other"])

    assert info.value.key == "features.columns"


def test_mistyped_column_with_a_space_is_named_in_full() -> None:
    model = make_model((("account age", "double"),))

    with pytest.raises(BadInputError) as info:
        check_signature(model, {"account age": "string"})

    assert info.value.column == "account age"
