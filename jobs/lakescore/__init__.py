"""lakescore: scheduled batch model scoring on the lakehouse.

The notebook API (no JVM needed)::

    import lakescore
    lakescore.read_scores("churn", "2026-11-16", "2026-11-20")   # pyarrow.Table
    lakescore.sql("select * from lineage order by started_at desc limit 5").df()
"""

from __future__ import annotations

from typing import Any

__all__ = ["read_lineage", "read_scores", "sql"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import lakescore.config` at DAG-parse time stays cheap.
    if name in __all__:
        from lakescore import api

        return getattr(api, name)
    raise AttributeError(name)
