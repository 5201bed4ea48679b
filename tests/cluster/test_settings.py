"""The [cluster] and [lifecycle] settings: defaults, TOML and environment, clear errors."""

from pathlib import Path

import pytest

from marketpipe.config import load_settings
from marketpipe.model.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_point_at_local_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cluster = load_settings().cluster
    assert cluster.postgres_dsn.startswith("postgresql://")
    assert cluster.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert cluster.topic_partitions == 6 and cluster.consumer_group == "marketpipe-process"
    assert load_settings().lifecycle.warm_retention_days == 90


def test_toml_and_environment_set_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "marketpipe.toml").write_text(
        '[cluster]\ns3_endpoint = "http://minio:9000/"\ns3_bucket = "market-lake"\n'
        's3_access_key = "AK"\ns3_secret_key = "very-secret"\n'
        'kafka_bootstrap_servers = "k1:9092, k2:9092"\n'
    )
    monkeypatch.setenv("MARKETPIPE_CLUSTER__TOPIC_PARTITIONS", "12")
    cluster = load_settings().cluster
    assert cluster.topic_partitions == 12
    assert cluster.kafka_bootstrap_servers == "k1:9092,k2:9092"
    location = cluster.s3_location()
    assert (location.endpoint, location.bucket, location.root) == (
        "http://minio:9000",
        "market-lake",
        "market-lake/lake",
    )
    assert location.secret_key == "very-secret"
    assert "very-secret" not in repr(cluster)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("redis_url", "localhost:6379", "redis://"),
        ("postgres_dsn", "mysql://x", "PostgreSQL URL"),
        ("s3_endpoint", "minio:9000", "http://"),
        ("s3_bucket", "Bad_Bucket", "bucket name"),
        ("kafka_bootstrap_servers", "kafka", "host:port"),
        ("topic_partitions", 0, "greater than or equal to 1"),
        ("s3_bukcet", "x", "unknown key 's3_bukcet' in section [cluster]"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: object, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_settings(cluster={field: value})
    assert f"cluster.{field}" in str(error.value) and message in str(error.value)
    assert f"MARKETPIPE_CLUSTER__{field.upper()}" in str(error.value)
