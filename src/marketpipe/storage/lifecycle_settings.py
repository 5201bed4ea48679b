"""`[lifecycle]` settings (their own module: config imports them, and must stay light)."""

from pydantic import BaseModel, ConfigDict, Field


class LifecycleSettings(BaseModel):
    """`[lifecycle]`: retention, archival and compaction (hot retention is
    `storage.hot_retention_minutes`)."""

    model_config = ConfigDict(extra="forbid")

    warm_retention_days: float = Field(90.0, gt=0)
    archive_candles: bool = True
    archive_market: bool = True  # market snapshots (CoinGecko) warm -> lake, per final day
    compact: bool = True
