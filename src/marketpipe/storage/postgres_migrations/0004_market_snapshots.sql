-- Market data (issue 13: CoinGecko /coins/markets) as a time series, with the columns of
-- MarketSnapshot (model/records.py) and DuckDB's market_snapshots (storage/duckdb_schema.py).
-- Insert-or-ignore by the primary key: a re-polled or replayed snapshot is stored once.
-- Figures the source leaves unknown stay NULL, never 0.
CREATE TABLE market_snapshots (
    source text NOT NULL, asset text NOT NULL, vs_currency text NOT NULL,
    price double precision NOT NULL, market_cap double precision,
    fully_diluted_valuation double precision, volume_24h double precision,
    circulating_supply double precision, market_cap_rank bigint,
    ts_source timestamptz NOT NULL, ts_recv timestamptz NOT NULL,
    PRIMARY KEY (source, asset, vs_currency, ts_source)
);
CREATE INDEX market_snapshots_ts_source ON market_snapshots (ts_source);

-- Lifecycle: UTC days of snapshots written to the lake, with how many rows; a day whose
-- count grew since (a late snapshot) is written again.
CREATE TABLE market_archive (
    day timestamptz PRIMARY KEY, snapshots bigint NOT NULL, archived_at timestamptz NOT NULL
);
