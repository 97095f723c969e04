"""Bad object-storage settings, as a user meets them on the command line: a missing bucket, an
unreachable endpoint, refused credentials. Each gives one line naming the table URI (never
the secret), exit 2 (a retry cannot help), and nothing is published."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lakescore.lakehouse import tables
from tests.conftest import DAYS
from tests.s3.conftest import BUCKET
from tests.support.s3 import SECRET_KEY, free_port, moto_s3

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def run_score(conf_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(str(BIN / "lakescore"), "--conf", str(conf_dir)),
            *("score", "--job", "churn", "--ds", DAYS[1].isoformat()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LAKESCORE_CONF": str(conf_dir), **env},
    )


def conf_copy(world, tmp_path: Path, warehouse: str | None = None) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(world.conf_dir, conf)
    if warehouse:
        platform = conf / "platform.yaml"
        text = platform.read_text().replace(f"s3://{BUCKET}/wh", warehouse)
        platform.write_text(text)
    return conf


def assert_one_clear_line(out: subprocess.CompletedProcess, uri: str, why: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert uri in errors[0] and why in errors[0], errors[0]
    assert SECRET_KEY not in text
    assert "Traceback" not in text and "Py4J" not in text


def test_missing_bucket(s3_world, tmp_path):
    conf = conf_copy(s3_world, tmp_path, warehouse="s3://no-such-bucket/wh")
    out = run_score(conf, {})
    assert_one_clear_line(out, "s3://no-such-bucket/wh/features/churn", "bucket does not exist")


def test_unreachable_endpoint_publishes_nothing(s3_world, tmp_path):
    job = s3_world.job()
    before = tables.table_version(job.output.table)
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = run_score(conf_copy(s3_world, tmp_path), {"AWS_ENDPOINT_URL": endpoint})
    assert_one_clear_line(out, job.features.table, f"cannot reach the object store at {endpoint}")
    assert tables.table_version(job.output.table) == before


def test_refused_credentials(s3_world, tmp_path):
    with moto_s3(tmp_path, check_credentials=True) as strict:
        out = run_score(conf_copy(s3_world, tmp_path), {"AWS_ENDPOINT_URL": strict.endpoint})
    assert_one_clear_line(out, s3_world.job().features.table, "refused the credentials")
