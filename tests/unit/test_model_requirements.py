"""A model's logged requirements.txt against this environment: what counts as a conflict
(named with both versions), and what does not (a patch release apart, an alias distribution,
a marker for another platform)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from lakescore.ml.models import requirement_conflicts


def _model_dir(tmp_path: Path, *lines: str) -> Path:
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_minor_version_apart_is_a_conflict_naming_both_versions(tmp_path: Path) -> None:
    installed = version("scikit-learn")
    (found,) = requirement_conflicts(_model_dir(tmp_path, "scikit-learn==1.5.2"))
    assert found == f"scikit-learn (model logged with ==1.5.2, installed {installed})"


def test_a_patch_release_apart_an_alias_and_another_platform_are_not(tmp_path: Path) -> None:
    major, minor = version("numpy").split(".")[:2]
    lines = [
        "mlflow==" + version("mlflow"),
        f"numpy=={major}.{minor}.9999",  # same major.minor
        "xgboost==" + version("xgboost-cpu"),  # installed as xgboost-cpu
        'pywin32==306; sys_platform == "win32"',
        "# a comment",
        "-r other.txt",
    ]
    assert requirement_conflicts(_model_dir(tmp_path, *lines)) == []


def test_a_missing_package_and_a_range_outside_are_conflicts(tmp_path: Path) -> None:
    found = requirement_conflicts(
        _model_dir(tmp_path, "lakescore-no-such-package==1.0", "pandas<2")
    )
    assert found == [
        "lakescore-no-such-package (model wants ==1.0, not installed)",
        f"pandas (model logged with <2, installed {version('pandas')})",
    ]


def test_no_requirements_file_is_no_conflict(tmp_path: Path) -> None:
    assert requirement_conflicts(tmp_path) == []
