"""Spark profiles combined with overlays (``standalone+spot``), as shipped in conf/ and as
validated by the config model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakescore.config import SparkProfile, SparkSettings, load_job, load_platform
from lakescore.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# What a preemptible-executor run depends on; the spot overlay must set every one of them.
SPOT_KEYS = {
    "spark.decommission.enabled": "true",
    "spark.storage.decommission.enabled": "true",
    "spark.storage.decommission.shuffleBlocks.enabled": "true",
    "spark.storage.decommission.rddBlocks.enabled": "true",
    "spark.stage.ignoreDecommissionFetchFailure": "true",
    "spark.task.maxFailures": "8",
    "spark.excludeOnFailure.enabled": "true",
    "spark.speculation": "true",
}


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    return conf


def test_shipped_profiles_combine_with_the_spot_overlay(conf_dir: Path) -> None:
    spark = load_platform(conf_dir).spark

    standalone = spark.resolved_profile("standalone")
    spot = spark.resolved_profile("standalone+spot")
    assert spot.master == standalone.master
    assert spot.master.startswith("spark://")
    assert {k: spot.conf.get(k) for k in SPOT_KEYS} == SPOT_KEYS
    assert "spark.speculation" not in standalone.conf
    # the overlay adds settings and keeps the base's
    assert spot.conf["spark.executor.memory"] == standalone.conf["spark.executor.memory"]
    assert spark.resolved_profile("kubernetes+spot").master.startswith("k8s://")


def test_cluster_is_standalone_plus_spot_on_the_compose_master(conf_dir: Path) -> None:
    spark = load_platform(conf_dir).spark

    cluster = spark.resolved_profile("cluster")

    assert cluster.master == "spark://spark-master:7077"
    assert {k: cluster.conf.get(k) for k in SPOT_KEYS} == SPOT_KEYS
    assert cluster.conf["spark.cores.max"] == "2"


def test_profile_combination_from_env_and_job(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKESCORE_SPARK_PROFILE", "standalone+spot")
    assert load_job("churn", conf_dir=conf_dir).spark_profile == "standalone+spot"

    monkeypatch.delenv("LAKESCORE_SPARK_PROFILE")
    job_file = conf_dir / "jobs" / "churn.yaml"
    job_file.write_text(job_file.read_text() + "spark_profile: local+spot\n")
    assert load_job("churn", conf_dir=conf_dir).spark_profile == "local+spot"


@pytest.mark.parametrize(
    ("profile", "fragment"),
    [
        ("standalone+spott", "spark profile 'spott' is not defined"),
        ("spot", "is an overlay: combine it with a base profile"),
        ("spot+standalone", "'spot' is an overlay; put the base profile first"),
        ("local+standalone", "'standalone' is not an overlay"),
        ("local+", "empty name around '+'"),
    ],
)
def test_bad_combination_in_a_job_names_the_key(
    conf_dir: Path, profile: str, fragment: str
) -> None:
    job_file = conf_dir / "jobs" / "churn.yaml"
    job_file.write_text(job_file.read_text() + f"spark_profile: {profile}\n")

    with pytest.raises(ConfigError) as info:
        load_job("churn", conf_dir=conf_dir)

    assert info.value.key == "spark_profile"
    assert info.value.file == str(job_file)
    assert fragment in str(info.value)


def test_bad_default_combination_from_env(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKESCORE_SPARK_PROFILE", "standalone+preemptible")

    with pytest.raises(ConfigError) as info:
        load_platform(conf_dir)

    assert info.value.key == "spark"
    assert "default_profile 'standalone+preemptible'" in str(info.value)
    assert "'preemptible' is not defined" in str(info.value)


def test_overlay_may_not_carry_a_master() -> None:
    with pytest.raises(ValueError, match="overlay profile only adds conf"):
        SparkProfile(master="local", overlay=True)


def test_later_overlay_wins() -> None:
    settings = SparkSettings(
        default_profile="base",
        profiles={
            "base": SparkProfile(master="local[1]", conf={"a": "1", "b": "1"}),
            "x": SparkProfile(overlay=True, conf={"b": "2", "c": "2"}),
            "y": SparkProfile(overlay=True, conf={"c": "3"}),
        },
    )

    assert settings.resolved_profile("base+x+y").conf == {"a": "1", "b": "2", "c": "3"}
    assert settings.resolved_profile("base+y+x").conf == {"a": "1", "b": "2", "c": "2"}


@pytest.fixture
def conf_with_jars(conf_dir: Path, tmp_path: Path) -> Path:
    """The shipped conf with (empty) delta-spark and openlineage-spark jars in its jars_dir."""
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    (jars / "openlineage-spark_2.13-1.53.0.jar").write_bytes(b"")
    text = (conf_dir / "platform.yaml").read_text()
    (conf_dir / "platform.yaml").write_text(text.replace("jars_dir: var/jars", f"jars_dir: {jars}"))
    return conf_dir


def test_the_class_archive_is_used_only_when_built_and_keeps_other_driver_options(
    conf_with_jars: Path,
) -> None:
    from lakescore.spark import class_archive, spark_conf

    platform = load_platform(conf_with_jars)
    jars = Path(platform.spark.jars_dir)

    before = spark_conf(platform).get("spark.driver.extraJavaOptions", "")
    assert "SharedArchiveFile" not in before

    class_archive(platform).write_bytes(b"archive")
    options = spark_conf(platform)["spark.driver.extraJavaOptions"].split()
    assert f"-XX:SharedArchiveFile={jars / 'classes.jsa'}" in options
    assert set(before.split()) <= set(options)  # e.g. the openlineage --add-opens stays


def test_every_shipped_profile_keeps_the_driver_jit_setting_with_the_other_driver_options(
    conf_with_jars: Path,
) -> None:
    from lakescore.spark import class_archive, spark_conf

    platform = load_platform(conf_with_jars)
    jars = Path(platform.spark.jars_dir)
    class_archive(platform).write_bytes(b"archive")

    bases = [name for name, p in platform.spark.profiles.items() if not p.overlay]
    assert {"local", "standalone", "kubernetes", "cluster"} <= set(bases)
    for profile in [*bases, "local+spot", "standalone+spot", "kubernetes+spot"]:
        options = spark_conf(platform, profile)["spark.driver.extraJavaOptions"].split()
        assert "-XX:CompileThresholdScaling=5" in options, profile
        assert "--add-opens=java.base/java.security=ALL-UNNAMED" in options, profile
        assert f"-XX:SharedArchiveFile={jars / 'classes.jsa'}" in options, profile
