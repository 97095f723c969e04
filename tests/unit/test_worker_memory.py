"""The scoring worker's allocator setting (lakescore.ml.scoring.keep_freed_memory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parents[2] / "jobs"

# Twenty batches as a scoring task allocates them: a 25 MB feature matrix and the model's
# scaled copy of it, both freed before the next batch. Prints the minor page faults it cost.
_FAULTS_OF_BATCHES = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    sys.path.insert(0, {jobs!r})
    from lakescore.ml.scoring import keep_freed_memory
    if {tuned}:
        assert keep_freed_memory()
    def batch():
        matrix = np.ones((100_000, 32))
        scaled = matrix * 2.0
        del matrix, scaled
    batch()  # the first batch maps its pages whatever the setting
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        batch()
    import pyarrow as pa
    print(pa.default_memory_pool().backend_name)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(tuned: bool) -> tuple[int, str]:
    """(page faults of the batches, Arrow's memory pool) in a fresh interpreter."""
    code = _FAULTS_OF_BATCHES.format(jobs=str(JOBS), tuned=tuned)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *_, pool, faults = out.stdout.strip().splitlines()
    return int(faults), pool


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_batch_memory_is_reused_instead_of_page_faulted_again() -> None:
    (default, default_pool), (tuned, tuned_pool) = _faults(tuned=False), _faults(tuned=True)
    # 20 x 50 MB mapped afresh: ~24,500 faults here (numpy asks for huge pages where it can);
    # memory kept by the allocator: none
    assert default > 5_000
    assert tuned < default / 10
    # Arrow's column buffers come from the same kept heap, not from mimalloc
    assert default_pool != "system"
    assert tuned_pool == "system"
