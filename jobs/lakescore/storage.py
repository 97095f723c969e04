"""Object storage: one storage config becomes every engine's settings, here and only here.

``conf/platform.yaml``'s ``storage.s3`` section (endpoint, region, path-style addressing) is
turned into

* Spark's ``s3a`` settings (:func:`spark_s3a_conf`; the ``hadoop-aws`` jars come from
  ``make jars``),
* delta-rs ``storage_options`` (:func:`delta_options`),
* a pyarrow ``S3FileSystem`` for the Python-side readers and writers (:func:`filesystem`),
* the environment MLflow's boto3 client reads for ``s3://`` artifacts (:func:`mlflow_env`).

Credentials never pass through lakescore: every engine takes them from the standard AWS
environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, or an
instance role), so no secret is in a config file, a Spark conf, a log line or an error.

URIs: ``s3://`` and ``s3a://`` name the same object; lakescore keeps ``s3://`` (what delta-rs,
pyarrow, DuckDB and MLflow write) and hands Spark ``s3a://`` (:func:`normalise`,
:func:`spark_path`).

Commits on object storage: S3 has no atomic rename, so every commit to a table lakescore
writes on S3 is made by delta-rs, whose S3 log store writes ``_delta_log/N.json`` with a
conditional PUT (``If-None-Match: *``): of two writers racing for version N exactly one wins,
the other gets ``CommitFailedError`` and retries on the new snapshot. Spark only writes data
files there and reads; delta-spark's own S3 log store (``S3SingleDriverLogStore``: safe only
inside one JVM) never commits to a lakescore table on S3 (see docs/object-storage.md).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator

if TYPE_CHECKING:
    import pyarrow.fs as pafs

OBJECT_STORE_SCHEMES = ("s3", "s3a")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class S3Settings(BaseModel):
    """How to reach an S3-compatible store. Credentials are not here: the AWS environment."""

    model_config = ConfigDict(extra="forbid")

    # None: AWS itself (the region's endpoint); else e.g. http://minio:9000
    endpoint: str | None = None
    region: str = "us-east-1"
    # Path-style addressing (http://host/bucket/key): MinIO, moto and most self-hosted stores.
    path_style: bool = False

    @field_validator("endpoint", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value is None or str(value).strip() == "" else str(value).strip()

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"endpoint {value!r} is not an http(s)://host[:port] URL")
        return value.rstrip("/") if value else value

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint and self.endpoint.startswith("http://"))


class StorageSettings(BaseModel):
    """``platform.yaml`` ``storage:``; S3 is what is tested (GCS / Azure: docs/object-storage.md)."""

    model_config = ConfigDict(extra="forbid")

    s3: S3Settings = S3Settings()


_active = StorageSettings()


def activate(settings: StorageSettings) -> None:
    """Make ``settings`` the process's storage config (``load_platform`` calls this, so every
    JVM-free reader and writer of this process uses the platform's endpoint)."""
    global _active
    _active = settings


def active() -> StorageSettings:
    return _active


def scheme(uri: str) -> str | None:
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def is_object_store(uri: str) -> bool:
    return scheme(uri) in OBJECT_STORE_SCHEMES


def normalise(uri: str) -> str:
    """``s3a://b/k`` -> ``s3://b/k``; every other URI unchanged."""
    return "s3://" + uri[len("s3a://") :] if scheme(uri) == "s3a" else uri


def spark_path(uri: str) -> str:
    """The URI Spark's Hadoop filesystem layer reads: ``s3://`` -> ``s3a://``."""
    return "s3a://" + uri[len("s3://") :] if scheme(uri) == "s3" else uri


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = normalise(uri)[len("s3://") :]
    bucket, _, key = rest.partition("/")
    return bucket, key.rstrip("/")


def spark_s3a_conf(settings: StorageSettings | None = None) -> dict[str, str]:
    """Spark (Hadoop s3a) settings. Credentials: s3a's default provider chain reads the AWS
    environment variables of the driver and executors (or an instance role)."""
    s3 = (settings or _active).s3
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style).lower(),
        # Fail within seconds when the store is unreachable (defaults retry for minutes).
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "15s",  # s3a's minimum
        # A missing bucket is a clear error at first use, not a silent probe.
        "spark.hadoop.fs.s3a.bucket.probe": "0",
    }
    if s3.endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(not s3.allow_http).lower()
    return conf


def delta_options(uri: str, settings: StorageSettings | None = None) -> dict[str, str] | None:
    """delta-rs ``storage_options`` for a table at ``uri`` (None for local tables)."""
    if not is_object_store(uri):
        return None
    s3 = (settings or _active).s3
    options = {
        "AWS_REGION": s3.region,
        # Conditional PUT commits (If-None-Match) are delta-rs's default on S3: never set
        # AWS_S3_LOCKING_PROVIDER (delta-rs 1.x dropped DynamoDB locking; with it set, it falls
        # back to an unsafe rename) nor AWS_S3_ALLOW_UNSAFE_RENAME.
        "AWS_S3_ALLOW_UNSAFE_RENAME": "false",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not s3.path_style).lower(),
    }
    if s3.endpoint:
        options["AWS_ENDPOINT_URL"] = s3.endpoint
        options["AWS_ALLOW_HTTP"] = str(s3.allow_http).lower()
    return options


def filesystem(settings: StorageSettings | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem (paths are ``bucket/key``), credentials from the environment."""
    import pyarrow.fs as pafs

    s3 = (settings or _active).s3
    kwargs: dict[str, Any] = {
        "region": s3.region,
        "force_virtual_addressing": not s3.path_style and s3.endpoint is None,
        "connect_timeout": 5,
        "request_timeout": 60,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if s3.endpoint:
        kwargs["endpoint_override"] = s3.endpoint
        kwargs["scheme"] = "http" if s3.allow_http else "https"
    return pafs.S3FileSystem(**kwargs)


def filesystem_and_path(uri: str, settings: StorageSettings | None = None) -> tuple[Any, str]:
    """A pyarrow filesystem and the path in it for ``uri`` (local paths: the local fs)."""
    import pyarrow.fs as pafs

    if is_object_store(uri):
        bucket, key = bucket_and_key(uri)
        return filesystem(settings), f"{bucket}/{key}" if key else bucket
    path = uri.removeprefix("file://")
    return pafs.LocalFileSystem(), path


def mlflow_env(settings: StorageSettings | None = None) -> dict[str, str]:
    """What MLflow's boto3 client needs for ``s3://`` artifacts (endpoint and region)."""
    s3 = (settings or _active).s3
    env = {"AWS_DEFAULT_REGION": s3.region}
    if s3.endpoint:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3.endpoint
    return env


def apply_mlflow_env(settings: StorageSettings | None = None) -> None:
    """Set :func:`mlflow_env` in this process, keeping values the user set explicitly."""
    for key, value in mlflow_env(settings).items():
        os.environ.setdefault(key, value)
