"""Settings of the streaming roles: the Kafka bus and the Spark engine.

They belong in the `[cluster]` section (as `[cluster.kafka]` and `[cluster.spark]`); until
the cluster settings model carries them, the role commands read them from options and
`MARKETPIPE_CLUSTER__KAFKA__*` / `MARKETPIPE_CLUSTER__SPARK__*` environment variables.
"""

from pydantic import BaseModel, Field


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "marketpipe"
    partitions: int = Field(8, ge=1)
    replication: int = Field(1, ge=1)
    group: str = "marketpipe-native"
    batch_max_messages: int = Field(50_000, ge=1)


class SparkSettings(BaseModel):
    master: str = "local[*]"
    checkpoint_dir: str = "data/spark-checkpoint"
    query_name: str = "marketpipe-candles"
    max_offsets_per_trigger: int = Field(200_000, ge=1)
