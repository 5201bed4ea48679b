"""`[cluster]` settings: where cluster mode's servers are (PostgreSQL, Redis, S3, Kafka).

```toml
[cluster]
postgres_dsn = "postgresql://marketpipe@db:5432/marketpipe"
redis_url = "redis://cache:6379/0"
s3_endpoint = "http://minio:9000"   # omit for AWS S3
s3_bucket = "marketpipe"
s3_access_key = "..."               # or MARKETPIPE_CLUSTER__S3_ACCESS_KEY
s3_secret_key = "..."               # or MARKETPIPE_CLUSTER__S3_SECRET_KEY
kafka_bootstrap_servers = "kafka-1:9092,kafka-2:9092"
topic_partitions = 6
consumer_group = "marketpipe-process"
warehouse = "postgres"              # or "bigquery" ([gcp] below)
lake = "s3"                         # or "gcs" ([gcp] below)
```

`[gcp]` settings: where the Google Cloud path is (BigQuery warehouse, GCS lake).

```toml
[gcp]
project = "my-project"
bigquery_dataset = "marketpipe"
gcs_bucket = "my-marketpipe-lake"
# bigquery_endpoint / gcs_endpoint: an emulator's URL; omit for Google Cloud itself.
# Credentials: credentials_file, else Google's usual environment (GOOGLE_APPLICATION_CREDENTIALS,
# gcloud's application-default login, the metadata server). Never logged.
```
"""

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

if TYPE_CHECKING:  # pyarrow loads only when S3 is used: settings stay cheap to import
    from marketpipe.storage.s3 import S3Location

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # PostgreSQL warm store: a libpq URL or key=value string.
    postgres_dsn: str = "postgresql://marketpipe@127.0.0.1:5432/marketpipe"
    postgres_pool_size: int = Field(4, ge=1, le=100)
    # Redis hot tier and live pub/sub.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field("marketpipe", min_length=1)
    hot_candles_per_series: int = Field(1000, ge=1)
    hot_max_alerts: int = Field(1000, ge=1)
    # S3-compatible lake. No endpoint means AWS S3 itself.
    s3_endpoint: str | None = "http://127.0.0.1:9000"
    s3_region: str = "us-east-1"
    s3_bucket: str = "marketpipe"
    s3_prefix: str = "lake"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    # Request checksums: "when_required" works with every S3-compatible server.
    s3_checksums: Literal["when_required", "when_supported"] = "when_required"
    # Kafka (read by the bus and the ingest/process/archive roles).
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_partitions: int = Field(6, ge=1, le=10_000)
    topic_replication: int = Field(1, ge=1, le=10)
    consumer_group: str = Field("marketpipe-process", min_length=1)
    archive_consumer_group: str = Field("marketpipe-archive", min_length=1)
    # Which warm store and lake the roles use: the self-hosted pair or Google Cloud's.
    warehouse: Literal["postgres", "bigquery"] = "postgres"
    lake: Literal["s3", "gcs"] = "s3"

    @field_validator("postgres_dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        if not (value.startswith(("postgresql://", "postgres://")) or "=" in value):
            raise ValueError(
                "must be a PostgreSQL URL (postgresql://user@host:5432/db) or key=value conninfo"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL, e.g. redis://127.0.0.1:6379/0")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:9000")
        return value.rstrip("/")

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError("must be a valid bucket name: 3-63 of a-z, 0-9, '.', '-'")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or not all(re.match(r"^[^:\s]+:\d+$", s) for s in servers):
            raise ValueError("must be host:port[,host:port...], e.g. 127.0.0.1:9092")
        return ",".join(servers)

    def s3_location(self) -> "S3Location":
        from marketpipe.storage.s3 import S3Location

        return S3Location(
            bucket=self.s3_bucket,
            prefix=self.s3_prefix,
            endpoint=self.s3_endpoint,
            region=self.s3_region,
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key.get_secret_value() if self.s3_secret_key else None,
            checksums=self.s3_checksums,
        )


_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def _emulator_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    assert value is not None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:9050")
    return value.rstrip("/")


class GcpSettings(BaseModel):
    """The Google Cloud path: BigQuery as the warm store, GCS as the lake."""

    model_config = ConfigDict(extra="forbid")

    project: str = "marketpipe"
    bigquery_dataset: str = "marketpipe"
    bigquery_location: str = "US"
    bigquery_endpoint: str | None = None  # an emulator, e.g. http://127.0.0.1:9050
    # Every BigQuery call's deadline: the client otherwise retries a 5xx for 10 minutes.
    bigquery_timeout_s: float = Field(60.0, gt=0, le=3600)
    gcs_bucket: str = "marketpipe"
    gcs_prefix: str = "lake"
    gcs_endpoint: str | None = None  # an emulator, e.g. http://127.0.0.1:4443
    credentials_file: str | None = None  # a service-account JSON; else Google's environment

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT.match(value):
            raise ValueError("must be a Google Cloud project id: 6-30 of a-z, 0-9, '-'")
        return value

    @field_validator("bigquery_dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET.match(value):
            raise ValueError("must be a BigQuery dataset id: letters, digits and '_'")
        return value

    @field_validator("gcs_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _GCS_BUCKET.match(value):
            raise ValueError("must be a valid bucket name: 3-63 of a-z, 0-9, '.', '-', '_'")
        return value

    @field_validator("bigquery_endpoint", "gcs_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _emulator_url(value)


# Tuning defaults of the streaming roles (batch sizes, Spark master and checkpoint): the
# role commands' option defaults. Where the servers are comes from ClusterSettings above.
class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    topic_prefix: str = "marketpipe"
    batch_max_messages: int = Field(50_000, ge=1)


class SparkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key fails at start

    master: str = "local[*]"
    checkpoint_dir: str = "data/spark-checkpoint"
    query_name: str = "marketpipe-candles"
    max_offsets_per_trigger: int = Field(200_000, ge=1)
