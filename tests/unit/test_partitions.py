"""Unit tests for partition parsing and predicates (lakescore.lakehouse.tables); no Spark, no Delta."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from lakescore.errors import BadInputError
from lakescore.lakehouse.tables import MAX_FUTURE_DAYS, parse_partition_date, partition_predicate

# --------------------------------------------------------------------------- parse_partition_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2024-02-29", date(2024, 2, 29)),
        ("1970-01-01", date(1970, 1, 1)),
    ],
)
def test_valid_date(text: str, expected: date) -> None:
    parsed = parse_partition_date(text)

    assert parsed == expected
    assert type(parsed) is date


def test_date_object_passes_through() -> None:
    day = date(2026, 11, 20)

    assert parse_partition_date(day) is day


def test_datetime_becomes_its_date() -> None:
    parsed = parse_partition_date(datetime(2026, 11, 20, 23, 59))

    assert parsed == date(2026, 11, 20)
    assert type(parsed) is date


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026/11/20",
        "20261120",
        "2026-1-20",
        "26-11-20",
        "",
        " 2026-11-20",
        "2026-11-20T00:00",
        "2026-11-20 00:00:00",
    ],
)
def test_not_a_date(text: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_partition_date(text, job="churn")

    err = info.value
    assert repr(text) in str(err)
    assert "is not of the form YYYY-MM-DD" in str(err)
    assert err.key == "ds"
    assert err.job == "churn"


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "2025-02-29", "2026-00-10"])
def test_impossible_date(text: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_partition_date(text)

    assert f"partition date {text!r} is not a calendar day" in str(info.value)
    assert info.value.key == "ds"


def test_injection_attempt_is_rejected() -> None:
    text = "2026-01-01' OR '1'='1"

    with pytest.raises(BadInputError) as info:
        parse_partition_date(text)

    assert text in str(info.value)
    assert "YYYY-MM-DD" in str(info.value)


@pytest.mark.parametrize("as_text", [True, False])
def test_far_future_is_rejected(as_text: bool) -> None:
    too_far = date.today() + timedelta(days=MAX_FUTURE_DAYS + 1)

    with pytest.raises(BadInputError) as info:
        parse_partition_date(too_far.isoformat() if as_text else too_far)

    assert f"partition date {too_far} is more than 366 days in the future" in str(info.value)
    assert info.value.key == "ds"


def test_year_9999_is_rejected() -> None:
    with pytest.raises(BadInputError, match="9999-12-31 is more than 366 days in the future"):
        parse_partition_date("9999-12-31")


def test_near_future_is_accepted() -> None:
    assert MAX_FUTURE_DAYS == 366
    limit = date.today() + timedelta(days=MAX_FUTURE_DAYS)

    assert parse_partition_date(limit.isoformat()) == limit
    assert parse_partition_date(date.today() + timedelta(days=1)) > date.today()


# --------------------------------------------------------------------------- partition_predicate


def test_predicate_exact_text() -> None:
    assert partition_predicate("ds", date(2026, 11, 20)) == "`ds` = DATE '2026-11-20'"


def test_predicate_from_parsed_date() -> None:
    day = parse_partition_date("2026-01-05")

    assert partition_predicate("Event_Date", day) == "`Event_Date` = DATE '2026-01-05'"


@pytest.mark.parametrize(
    "column", ["ds; drop table x", "`ds`", "ds`", "1ds", "", "a b", "ds--", "ds'", "d.s"]
)
def test_predicate_refuses_non_identifier_column(column: str) -> None:
    with pytest.raises(BadInputError) as info:
        partition_predicate(column, date(2026, 11, 20))

    assert info.value.column == column
    assert "is not a plain column name" in str(info.value)


@pytest.mark.parametrize("value", ["2026-11-20", "2026-11-20' OR '1'='1", 20261120, None])
def test_predicate_refuses_non_date_value(value: object) -> None:
    with pytest.raises(TypeError, match=r"ds must be a datetime\.date"):
        partition_predicate("ds", value)  # type: ignore[arg-type]


def test_predicate_refuses_column_with_trailing_newline() -> None:
    with pytest.raises(BadInputError):
        partition_predicate("ds\n", date(2026, 11, 20))
