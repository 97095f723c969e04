"""One redaction helper for everything lakescore prints, raises or records.

Credentials reach lakescore only through URIs assembled from the environment (for example
``MLFLOW_TRACKING_URI=http://user:${PW}@mlflow:5000`` or a PostgreSQL URL). Error messages,
log and progress lines, lineage rows and the report must never show them, so every such text
goes through :func:`redact` before it leaves the process:

* ``scheme://user:password@host`` -> ``scheme://user:***@host``
* ``scheme://token@host`` -> ``scheme://***@host``
* ``?password=...``, ``&token=...``, ``access_key=...`` style parameters -> ``...=***``

Example::

    >>> redact("API request to http://alice:s3cr3t@mlflow:5000/api failed")
    'API request to http://alice:***@mlflow:5000/api failed'
"""

from __future__ import annotations

import re
from typing import Any

# userinfo of a URI: everything between "scheme://" and the last "@" before the host part.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<name>\b[\w.-]*(?:password|passwd|pwd|secret|token|access[_-]?key|api[_-]?key|"
    r"credential|signature|sig)[\w.-]*)=(?P<value>[^&\s'\"<>;,]+)",
    re.IGNORECASE,
)
MASK = "***"


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if sep else MASK
    return f"{match.group('scheme')}{masked}@"


def redact(text: Any) -> Any:
    """``text`` with credentials in URIs and secret-named parameters masked (non-strings
    are returned unchanged)."""
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('name')}={MASK}", text)


def redact_deep(value: Any) -> Any:
    """:func:`redact` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_deep(v) for v in value)
    return value
