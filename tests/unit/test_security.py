"""Security basics that need no running service: no literal secret in conf/, docker-compose.yml
or docker/; one redaction helper that masks credentials wherever lakescore prints or records
text; model artifacts load only from the configured registry store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakescore.config import MlflowSettings, PlatformConfig, SparkSettings
from lakescore.errors import BadInputError, ScoringFailure
from lakescore.redaction import redact, redact_deep

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- secret scan

# A key that names a secret, assigned a value (YAML `key: value`, env `KEY=value`).
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|fernet[_-]?key|
        private[_-]?key|access[_-]?key|credential)[A-Za-z0-9_.-]*)
    ["']?(?::[ \t]+|=)
    (?P<value>"[^"]*"|'[^']*'|[^\s#]*)
    """
)
# Credentials inside a URI: scheme://user:password@host
_URI_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^:/\s@'\"]+):(?P<pw>[^@/\s'\"]+)@")
# A reference to the environment (compose / shell / lakescore config), or nothing at all.
_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}?$")
# Keys whose value names where a secret is, not the secret itself.
_POINTER_KEY = re.compile(r"(?i)(_FILE|_PATH|_DIR|_NAME|_CMD)$|^--")


def literal_secrets(text: str) -> list[str]:
    """Every literal (non-``${ENV}``) value assigned to a secret-named key, and every password
    written into a URI, in ``text``."""
    found = []
    for line in text.splitlines():
        # assignments in comments are prose ("Secrets: long random values"); URIs are checked
        code = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0]
        for m in _SECRET_ASSIGNMENT.finditer(code):
            value = m.group("value").strip("\"'")
            if not value or _POINTER_KEY.search(m.group("key")):
                continue
            if m.start() > 0 and code[m.start() - 1] in "${":  # ${SECRET:?...}: a reference
                continue
            if _REFERENCE.match(value) or value.startswith("$") or value.startswith(":'"):
                continue
            found.append(f"{m.group('key')}={value}")
        for m in _URI_PASSWORD.finditer(line):
            pw = m.group("pw")
            if not pw.startswith("$") and pw != "***":
                found.append(f"URI password for {m.group('user')}: {pw}")
    return found


def scanned_files() -> list[Path]:
    files = [REPO / "docker-compose.yml"]
    files += sorted(p for p in (REPO / "conf").rglob("*") if p.is_file())
    files += sorted(p for p in (REPO / "docker").rglob("*") if p.is_file())
    return files


def test_the_scanner_finds_planted_secrets():
    planted = """\
mlflow:
  tracking_uri: postgresql+psycopg2://mlflow:hunter2@db:5432/mlflow
  api_token: abc123
environment:
  AIRFLOW__CORE__FERNET_KEY: "Zm9vYmFy"
POSTGRES_PASSWORD=changeme
"""
    found = literal_secrets(planted)
    assert any("hunter2" in f for f in found)
    assert any("abc123" in f for f in found)
    assert any("Zm9vYmFy" in f for f in found)
    assert any("changeme" in f for f in found)


def test_the_scanner_accepts_environment_references():
    fine = """\
  tracking_uri: ${MLFLOW_TRACKING_URI:-sqlite:///var/mlflow/mlflow.db}
  AIRFLOW__API__SECRET_KEY: "${AIRFLOW_API_SECRET_KEY:?set it in .env}"
  MLFLOW_BACKEND_STORE_URI: "postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD:?x}@postgres/mlflow"
POSTGRES_PASSWORD=
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE: /opt/airflow/auth/passwords.json
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
"""
    assert literal_secrets(fine) == []


def test_no_literal_secret_in_conf_compose_or_docker():
    files = scanned_files()
    assert any(p.name == "platform.yaml" for p in files)
    assert any(p.name == "env.example" for p in files)
    problems = {
        str(p.relative_to(REPO)): found for p in files if (found := literal_secrets(p.read_text()))
    }
    assert problems == {}, f"literal secrets (use ${{ENV}} references): {problems}"


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("API request to http://alice:pw-123@mlflow:5000/api/2.0 failed", "pw-123"),
        ("postgresql+psycopg2://mlflow:Sup3r@postgres:5432/mlflow", "Sup3r"),
        ("https://ghp_tokenvalue@example.com/x.git", "ghp_tokenvalue"),
        ("s3://bucket/m?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA123", "deadbeef"),
        ("s3://bucket/m?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA123", "AKIA123"),
        ("connect with password=hunter2 now", "hunter2"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str):
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked


def test_redact_keeps_what_is_not_a_secret():
    for text in [
        "file:///tmp/warehouse/scores/churn",
        "sqlite:////var/mlflow/mlflow.db",
        "http://mlflow:5000/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion",
        "customer a@b.c wrote",
    ]:
        assert redact(text) == text
    assert redact("http://alice:pw@h/x") == "http://alice:***@h/x"  # the user stays visible
    assert redact(None) is None and redact(3) == 3


def test_redact_deep_reaches_nested_values():
    value = {"a": ["http://u:p4ss@h"], "b": ("x", {"c": "token=t0k"}), "n": 1}
    out = redact_deep(value)
    assert "p4ss" not in str(out) and "t0k" not in str(out)
    assert out["n"] == 1 and isinstance(out["b"], tuple)


def test_every_lakescore_error_is_redacted():
    err = ScoringFailure("registry http://u:hunter2@mlflow:5000 is down", job="churn")
    assert "hunter2" not in str(err)
    assert "hunter2" not in err.args[0]
    err.with_context(ds="2026-11-20")
    assert "hunter2" not in str(err) and "partition 2026-11-20" in str(err)


def test_lineage_rows_are_redacted():
    from datetime import UTC, date, datetime

    from lakescore.lakehouse.lineage import LineageRecord

    now = datetime.now(UTC)
    record = LineageRecord(
        attempt_id="a",
        run_id="r",
        action="score",
        job="churn",
        ds=date(2026, 11, 20),
        status="failed",
        started_at=now,
        finished_at=now,
        error="registry http://u:hunter2@mlflow:5000 is down",
        model_source="s3://bucket/m?X-Amz-Signature=hunter2",
        details={"tracking": "http://u:hunter2@mlflow"},
    )
    row = record.to_row()
    assert "hunter2" not in str(row)
    assert row["error"] == "registry http://u:***@mlflow:5000 is down"


def test_cli_error_line_is_redacted(capsys, monkeypatch):
    from lakescore import cli

    def boom(_args):
        raise RuntimeError("cannot reach http://svc:hunter2@mlflow:5000")

    monkeypatch.setitem(cli.COMMANDS, "jobs", boom)
    assert cli.main(["jobs"]) == 1
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out
    assert "http://svc:***@mlflow:5000" in captured.err


# --------------------------------------------------------------------------- model source rule


def _platform(tracking: str, artifact_root: str | None) -> PlatformConfig:
    return PlatformConfig(
        warehouse="/w",
        mlflow=MlflowSettings(tracking_uri=tracking, artifact_root=artifact_root),
        spark=SparkSettings(profiles={"local": {"master": "local[1]"}}),
    )


@pytest.mark.parametrize(
    ("tracking", "root", "location", "allowed"),
    [
        ("sqlite:////r/m.db", "/r/artifacts", "file:///r/artifacts/1/m-1/artifacts", True),
        ("sqlite:////r/m.db", "/r/artifacts", "/r/artifacts/models/x", True),
        ("sqlite:////r/m.db", "/r/artifacts", "file:///r/elsewhere/model", False),
        ("sqlite:////r/m.db", "/r/artifacts", "file:///r/artifacts/../elsewhere", False),
        ("sqlite:////r/m.db", "/r/artifacts", "file:///r/artifacts-evil/model", False),
        ("sqlite:////r/m.db", "/r/artifacts", "s3://bucket/model", False),
        ("sqlite:////r/m.db", None, "file:///r/artifacts/model", False),
        ("http://mlflow:5000", None, "mlflow-artifacts:/1/m-1/artifacts", True),
        ("sqlite:////r/m.db", "/r/artifacts", "mlflow-artifacts:/1/m-1/artifacts", False),
        ("http://mlflow:5000", "s3://lake/mlflow", "s3://lake/mlflow/1/model", True),
        ("http://mlflow:5000", "s3://lake/mlflow", "s3://lake/other/model", False),
    ],
)
def test_model_locations_outside_the_registry_store_are_refused(tracking, root, location, allowed):
    from lakescore.ml.models import _location_allowed

    assert _location_allowed(_platform(tracking, root), location) is allowed


def test_refusal_names_model_version_and_source(monkeypatch):
    from lakescore.ml import models

    monkeypatch.setattr(models, "model_download_uri", lambda *_: "file:///tmp/evil/model")
    platform = _platform("sqlite:////r/m.db", "/r/artifacts")
    with pytest.raises(BadInputError) as info:
        models.check_model_source(
            platform, "churn", 7, "http://u:hunter2@elsewhere/model", job="churn"
        )
    message = str(info.value)
    for needle in (
        "job 'churn'",
        "model churn version 7",
        "file:///tmp/evil/model",
        "/r/artifacts",
    ):
        assert needle in message
    assert "hunter2" not in message


# --------------------------------------------------------------------------- predicates


def test_partition_predicates_come_only_from_the_typed_builder():
    """Every ``replaceWhere`` / delta-rs ``predicate=`` in the code is built by
    ``tables.partition_predicate`` (an identifier + a ``date``), never from pasted text."""
    uses = []
    for path in sorted([*(REPO / "jobs").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"replaceWhere\"|predicate=", line):
                uses.append((path.name, number, line))
    assert uses, "no partition predicate found at all"
    for name, number, line in uses:
        assert "partition_predicate(" in line, f"{name}:{number}: {line.strip()}"
