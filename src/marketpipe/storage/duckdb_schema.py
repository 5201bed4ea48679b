"""DDL of the embedded warm store (DuckDB). Column order follows the record schemas."""

# Raw trades, plus the batch that committed them (lake export works in batch ranges).
_TRADE_COLUMNS = """
    exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, trade_id BIGINT NOT NULL,
    price DOUBLE NOT NULL, qty DOUBLE NOT NULL, side VARCHAR NOT NULL,
    ts_event TIMESTAMPTZ NOT NULL, ts_recv TIMESTAMPTZ NOT NULL, batch_seq BIGINT NOT NULL
"""

TABLES = {
    "trades_recent": f"CREATE TABLE IF NOT EXISTS trades_recent ({_TRADE_COLUMNS})",
    "late_trades": f"CREATE TABLE IF NOT EXISTS late_trades ({_TRADE_COLUMNS})",
    "candles": """
        CREATE TABLE IF NOT EXISTS candles (
            exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, interval VARCHAR NOT NULL,
            open_time TIMESTAMPTZ NOT NULL, close_time TIMESTAMPTZ NOT NULL,
            open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
            quote_volume DOUBLE, trade_count BIGINT, taker_buy_volume DOUBLE,
            taker_buy_quote_volume DOUBLE, vwap DOUBLE, first_trade_id BIGINT,
            last_trade_id BIGINT, is_final BOOLEAN, revision BIGINT,
            PRIMARY KEY (exchange, symbol, interval, open_time)
        )""",
    "alerts": """
        CREATE TABLE IF NOT EXISTS alerts (
            alert_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, severity VARCHAR NOT NULL,
            exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
            value DOUBLE, threshold DOUBLE, details VARCHAR
        )""",
    "quotes": """
        CREATE TABLE IF NOT EXISTS quotes (
            exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, bid DOUBLE, bid_qty DOUBLE,
            ask DOUBLE, ask_qty DOUBLE, ts_event TIMESTAMPTZ, ts_recv TIMESTAMPTZ,
            PRIMARY KEY (exchange, symbol)
        )""",
    "positions": """
        CREATE TABLE IF NOT EXISTS positions (
            exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, last_trade_id BIGINT,
            max_ts_event BIGINT, id_ranges VARCHAR, gaps_found BIGINT, gaps_filled BIGINT,
            trades_seen BIGINT, duplicates BIGINT, updated_at TIMESTAMPTZ,
            PRIMARY KEY (exchange, symbol)
        )""",
    "dead_letters": """
        CREATE TABLE IF NOT EXISTS dead_letters (
            ts TIMESTAMPTZ, source VARCHAR, error VARCHAR, raw BLOB, context VARCHAR
        )""",
    # Market data (CoinGecko) as a time series: insert-or-ignore by the primary key, so a
    # re-polled or replayed snapshot is stored once. Unknown figures stay NULL.
    "market_snapshots": """
        CREATE TABLE IF NOT EXISTS market_snapshots (
            source VARCHAR NOT NULL, asset VARCHAR NOT NULL, vs_currency VARCHAR NOT NULL,
            price DOUBLE NOT NULL, market_cap DOUBLE, fully_diluted_valuation DOUBLE,
            volume_24h DOUBLE, circulating_supply DOUBLE, market_cap_rank BIGINT,
            ts_source TIMESTAMPTZ NOT NULL, ts_recv TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, asset, vs_currency, ts_source)
        )""",
    # One row per committed micro-batch; batch_seq orders raw trades for lake export.
    "batches": """
        CREATE TABLE IF NOT EXISTS batches (
            seq BIGINT PRIMARY KEY, committed_at TIMESTAMPTZ, trades BIGINT, candles BIGINT
        )""",
    # Warm -> lake exports: a range of batch_seq is planned first, then written, then marked
    # done, so a crash in between redoes exactly the same files.
    "lake_exports": """
        CREATE TABLE IF NOT EXISTS lake_exports (
            from_seq BIGINT PRIMARY KEY, to_seq BIGINT NOT NULL, done BOOLEAN NOT NULL,
            files BIGINT, trades BIGINT
        )""",
    # Lifecycle: UTC days whose candles were archived to the lake (same as PostgreSQL's).
    "lake_archive": """
        CREATE TABLE IF NOT EXISTS lake_archive (
            day TIMESTAMPTZ PRIMARY KEY, candles BIGINT NOT NULL, archived_at TIMESTAMPTZ NOT NULL
        )""",
    # Lifecycle: UTC days of market snapshots written to the lake, with how many rows; a day
    # whose count grew since (a late snapshot) is written again.
    "market_archive": """
        CREATE TABLE IF NOT EXISTS market_archive (
            day TIMESTAMPTZ PRIMARY KEY, snapshots BIGINT NOT NULL,
            archived_at TIMESTAMPTZ NOT NULL
        )""",
}
