"""The one storage config and its translation into every engine's settings
(lakescore.storage), plus where the s3a jars go on Spark's classpath."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakescore import storage
from lakescore.config import load_platform
from lakescore.errors import ConfigError
from lakescore.storage import S3Settings, StorageSettings

MINIO = StorageSettings(s3=S3Settings(endpoint="http://minio:9000/", path_style=True))
AWS = StorageSettings(s3=S3Settings(region="eu-west-1"))


def test_s3_and_s3a_name_the_same_object():
    assert storage.normalise("s3a://lake/wh/t") == "s3://lake/wh/t"
    assert storage.normalise("s3://lake/wh/t") == "s3://lake/wh/t"
    assert storage.normalise("/tmp/x") == "/tmp/x"
    assert storage.spark_path("s3://lake/wh/t") == "s3a://lake/wh/t"
    assert storage.spark_path("/tmp/x") == "/tmp/x"
    assert storage.bucket_and_key("s3a://lake/wh/t/") == ("lake", "wh/t")
    assert storage.is_object_store("S3://lake/x") and not storage.is_object_store("file:///x")


def test_delta_options_use_conditional_put_commits_never_a_lock_or_unsafe_rename():
    options = storage.delta_options("s3://lake/t", MINIO)
    assert options["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false"
    assert options["AWS_S3_ALLOW_UNSAFE_RENAME"] == "false"
    assert "AWS_S3_LOCKING_PROVIDER" not in options
    assert not any("SECRET" in k or "ACCESS_KEY" in k for k in options)  # env only
    aws = storage.delta_options("s3://lake/t", AWS)
    assert "AWS_ENDPOINT_URL" not in aws and aws["AWS_REGION"] == "eu-west-1"
    assert storage.delta_options("/local/table", MINIO) is None


def test_spark_s3a_settings_follow_the_same_config():
    conf = storage.spark_s3a_conf(MINIO)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert not any("secret" in k or "access.key" in k for k in conf)
    assert "spark.hadoop.fs.s3a.endpoint" not in storage.spark_s3a_conf(AWS)
    assert storage.mlflow_env(MINIO)["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def _platform(tmp_path: Path, storage_yaml: str, warehouse: str = "var/wh"):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "platform.yaml").write_text(
        f"warehouse: {warehouse}\n{storage_yaml}"
        "mlflow: {tracking_uri: 'sqlite:///var/m.db'}\n"
        f"spark: {{default_profile: local, jars_dir: {tmp_path / 'jars'}, "
        "profiles: {local: {master: 'local[1]'}}}\n"
    )
    return load_platform(conf)


def test_bad_endpoint_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _platform(tmp_path, "storage: {s3: {endpoint: 'minio:9000'}}\n")
    assert caught.value.key == "storage.s3.endpoint"


def test_s3a_warehouse_is_normalised_and_activated(tmp_path):
    platform = _platform(
        tmp_path, "storage: {s3: {endpoint: 'http://127.0.0.1:9000'}}\n", "s3a://lake/wh"
    )
    try:
        assert platform.warehouse == "s3://lake/wh"
        assert platform.lineage_table == "s3://lake/wh/lakescore/lineage"
        # plain files (staging, reports) stay on the local disk
        assert not storage.is_object_store(platform.staging_root)
        assert storage.active().s3.endpoint == "http://127.0.0.1:9000"
    finally:
        storage.activate(StorageSettings())


def test_s3a_jars_are_on_the_classpath_only_with_object_storage(tmp_path):
    from lakescore.spark import delta_jars

    jars = tmp_path / "jars"
    jars.mkdir()
    for name in ("delta-spark_4.2_2.13-4.4.0.jar", "hadoop-aws-3.5.0.jar", "bundle-2.35.4.jar"):
        (jars / name).touch()
    try:
        local = _platform(tmp_path, "")
        assert [Path(j).name for j in delta_jars(local)] == ["delta-spark_4.2_2.13-4.4.0.jar"]
        (tmp_path / "conf" / "platform.yaml").unlink()
        (tmp_path / "conf").rmdir()
        on_s3 = _platform(tmp_path, "", "s3://lake/wh")
        names = {Path(j).name for j in delta_jars(on_s3)}
        assert {"hadoop-aws-3.5.0.jar", "bundle-2.35.4.jar"} <= names
    finally:
        storage.activate(StorageSettings())
