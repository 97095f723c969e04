"""lakescore.errors.as_lakescore_error: the one way an unexpected exception becomes a
one-line, redacted error that names the job and partition."""

from __future__ import annotations

from lakescore.errors import BadInputError, ScoringFailure, as_lakescore_error


def test_a_lakescore_error_is_kept_and_gets_the_missing_context() -> None:
    original = BadInputError("column missing", column="x")
    err = as_lakescore_error(original, job="churn", ds="2026-11-20")
    assert err is original
    assert str(err) == "job 'churn', partition 2026-11-20, column 'x': column missing"


def test_context_already_known_is_not_overwritten() -> None:
    err = as_lakescore_error(BadInputError("no", job="a"), job="b")
    assert err.job == "a"


def test_another_exception_becomes_a_one_line_scoring_failure() -> None:
    err = as_lakescore_error(
        RuntimeError("first line\n  at some.java.Frame(Frame.java:1)"), job="churn"
    )
    assert isinstance(err, ScoringFailure) and err.exit_code == 1
    assert str(err) == "job 'churn': RuntimeError: first line"


def test_an_exception_without_text_still_names_its_type() -> None:
    assert str(as_lakescore_error(KeyError())) == "KeyError: "


def test_secrets_in_the_exception_text_are_redacted() -> None:
    err = as_lakescore_error(OSError("cannot reach https://user:hunter2@mlflow.example/api"))
    assert "hunter2" not in str(err)


def test_text_with_square_brackets_reaches_the_terminal_as_written(capsys, tmp_path) -> None:
    """Stage lines and errors are plain text: a requirement like ``mlflow[extras]`` or a
    path with ``[...]`` in it is printed, not taken for terminal markup and dropped."""
    from lakescore.cli import main
    from lakescore.terminal import RichProgress

    detail = "warning: requirement not satisfied: mlflow[extras] (model logged with ==2.0) [/]"
    RichProgress(quiet=False).stage("load_model", detail)
    assert detail in capsys.readouterr().err

    conf = tmp_path / "conf[bold]"
    assert main(["--conf", str(conf), "jobs"]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert "conf[bold]" in line
