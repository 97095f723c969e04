"""The README's "Score your own model" walkthrough, run literally: every code block of that
section in order (``python`` blocks with the venv's Python, ``bash`` blocks with bash) from a
fresh project folder (the repository's ``conf/platform.yaml``, no jobs, no ``var/``), as a
user who cloned the repository and ran ``make install`` would."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def walkthrough_blocks() -> list[tuple[str, str]]:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Score your own model\n")
    end = readme.index("\n## ", start + 1)
    return BLOCK.findall(readme[start:end])


def test_the_section_has_the_steps_it_promises():
    kinds = [kind for kind, _ in walkthrough_blocks()]
    assert kinds == ["python", "python", "bash", "bash"]


def test_score_your_own_model_works_as_written(tmp_path):
    project = tmp_path / "clone"
    (project / "conf" / "jobs").mkdir(parents=True)
    platform = (REPO / "conf" / "platform.yaml").read_text()
    # The one difference from a fresh clone: the Spark jars of this checkout (not re-fetched).
    (project / "conf" / "platform.yaml").write_text(
        platform.replace("jars_dir: var/jars", f"jars_dir: {REPO / 'var' / 'jars'}")
    )
    (project / ".venv").symlink_to(REPO / ".venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKESCORE_", "MLFLOW_", "SPARK_", "PYSPARK_"))
    }
    outputs = []
    for kind, code in walkthrough_blocks():
        command = [".venv/bin/python", "-c", code] if kind == "python" else ["bash", "-ec", code]
        done = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{kind} block failed:\n{code}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout + done.stderr)
    job_file = (project / "conf" / "jobs" / "cancer.yaml").read_text()
    assert "entity_keys: [patient_id]  # REVIEW" in job_file
    assert "task: binary" in job_file
    written, scored = outputs[2], outputs[3]
    assert "wrote" in written and "REVIEW" in written
    assert "error" not in scored.lower()
    # three rows of the published table, highest score first
    rows = [line for line in scored.splitlines() if re.search(r"\b0\.\d+", line)]
    assert len(rows) >= 3, scored
