"""Tuning defaults of the streaming roles (batch sizes, Spark master and checkpoint).

Where the servers are (Kafka, PostgreSQL, Redis, S3), partitions and consumer groups come
from the `[cluster]` settings (marketpipe.cluster_settings); these are the role commands'
option defaults.
"""

from pydantic import BaseModel, ConfigDict, Field


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
