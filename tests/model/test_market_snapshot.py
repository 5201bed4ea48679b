"""MarketSnapshot through its Arrow schema: unknown figures stay unknown (None, never 0)."""

import msgspec
import pyarrow as pa

from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.records import MarketSnapshot
from marketpipe.model.schemas import MARKET_SNAPSHOT_SCHEMA, from_table, to_table

BTC = MarketSnapshot(
    source="coingecko",
    asset="BTC",
    vs_currency="USD",
    price=61_234.5,
    market_cap=1.2e12,
    fully_diluted_valuation=1.29e12,
    volume_24h=3.1e10,
    circulating_supply=19_700_000.0,
    market_cap_rank=1,
    ts_source=1_723_161_600_000_000,
    ts_recv=1_723_161_601_250_000,
)
UNRANKED = MarketSnapshot(
    source="coingecko",
    asset="NEW",
    vs_currency="USD",
    price=0.5,
    market_cap=None,
    fully_diluted_valuation=None,
    volume_24h=None,
    circulating_supply=None,
    market_cap_rank=None,
    ts_source=1_723_161_600_000_000,
    ts_recv=1_723_161_600_000_001,
)


def test_snapshots_survive_a_round_trip_through_arrow_with_unknowns_kept_as_nulls() -> None:
    table = to_table([BTC, UNRANKED], MARKET_SNAPSHOT_SCHEMA)

    assert table.schema == MARKET_SNAPSHOT_SCHEMA
    assert table.column("market_cap").null_count == 1
    assert table.column("market_cap_rank").to_pylist() == [1, None]
    assert table.column("ts_source").type == pa.timestamp("us", tz="UTC")
    assert from_table(table, MarketSnapshot) == [BTC, UNRANKED]


def test_merged_batches_keep_each_snapshot_once_and_the_first_of_a_repeated_key() -> None:
    later = msgspec.structs.replace(BTC, ts_source=BTC.ts_source + 60_000_000, price=61_300.0)
    resent = msgspec.structs.replace(BTC, ts_recv=BTC.ts_recv + 5, price=1.0)

    merged = merge_batches(
        [CommitBatch(snapshots=[BTC]), CommitBatch(snapshots=[resent, later, UNRANKED])]
    )

    assert merged.snapshots == [BTC, later, UNRANKED]
    assert not merged.is_empty
    assert CommitBatch().is_empty
    assert not CommitBatch(snapshots=[UNRANKED]).is_empty
