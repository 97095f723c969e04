"""The Airflow side depends on the core only through :mod:`lakescore.orchestration`."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from lakescore import orchestration

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SIDE = [*sorted((ROOT / "plugins").rglob("*.py")), *sorted((ROOT / "dags").glob("*.py"))]


def _core_imports(path: Path) -> set[str]:
    """The ``lakescore`` modules a file imports, lazy imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == "lakescore" or n.startswith("lakescore."))
    return found


@pytest.mark.parametrize("path", AIRFLOW_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_airflow_side_imports_only_the_orchestration_surface(path: Path) -> None:
    assert _core_imports(path) <= {"lakescore.orchestration"}, path


def test_every_name_of_the_surface_is_its_owners_object() -> None:
    for name, owner in orchestration.EXPORTS.items():
        assert getattr(orchestration, name) is getattr(import_module(owner), name), name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = orchestration.no_such_name


def test_the_type_checking_imports_list_exactly_the_surface() -> None:
    tree = ast.parse(Path(orchestration.__file__).read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    typed = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == orchestration.EXPORTS


def test_parse_time_use_imports_no_model_spark_or_report_code() -> None:
    probe = (
        "import sys; from lakescore.orchestration import load_platform, ScoringJob; "
        "print([m for m in sys.modules if m.startswith(('lakescore.ml', 'lakescore.run', "
        "'lakescore.reporting', 'lakescore.lakehouse', 'pyspark', 'mlflow', 'deltalake'))])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
