-- The warm store of cluster mode: the same tables and columns as the DuckDB warm store
-- (storage/duckdb_schema.py), plus Kafka offsets and Spark batch fences.

-- Records carry timestamps as integer microseconds since the epoch; these convert exactly
-- (no float seconds on the way).
CREATE FUNCTION mp_ts(us bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + us * interval '1 microsecond' $$;
CREATE FUNCTION mp_us(ts timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM ts) * 1000000)::bigint $$;

-- Raw trades, one partition per UTC day (created on demand, dropped by retention).
-- The key includes ts_event because a partitioned table's keys must include the partition
-- column; a trade id has one event time, so this is still one row per trade.
CREATE TABLE trades_recent (
    exchange text NOT NULL, symbol text NOT NULL, trade_id bigint NOT NULL,
    price double precision NOT NULL, qty double precision NOT NULL, side text NOT NULL,
    ts_event timestamptz NOT NULL, ts_recv timestamptz NOT NULL, batch_seq bigint NOT NULL,
    PRIMARY KEY (exchange, symbol, trade_id, ts_event)
) PARTITION BY RANGE (ts_event);

CREATE TABLE late_trades (
    exchange text NOT NULL, symbol text NOT NULL, trade_id bigint NOT NULL,
    price double precision NOT NULL, qty double precision NOT NULL, side text NOT NULL,
    ts_event timestamptz NOT NULL, ts_recv timestamptz NOT NULL, batch_seq bigint NOT NULL,
    PRIMARY KEY (exchange, symbol, trade_id)
);
CREATE INDEX late_trades_ts_event ON late_trades (ts_event);

CREATE TABLE candles (
    exchange text NOT NULL, symbol text NOT NULL, interval text NOT NULL,
    open_time timestamptz NOT NULL, close_time timestamptz NOT NULL,
    open double precision, high double precision, low double precision,
    close double precision, volume double precision, quote_volume double precision,
    trade_count bigint, taker_buy_volume double precision,
    taker_buy_quote_volume double precision, vwap double precision, first_trade_id bigint,
    last_trade_id bigint, is_final boolean, revision bigint,
    PRIMARY KEY (exchange, symbol, interval, open_time)
);
CREATE INDEX candles_interval_open_time ON candles (interval, open_time);

CREATE TABLE alerts (
    alert_id text PRIMARY KEY, kind text NOT NULL, severity text NOT NULL,
    exchange text NOT NULL, symbol text NOT NULL, ts timestamptz NOT NULL,
    value double precision, threshold double precision, details text
);
CREATE INDEX alerts_ts ON alerts (ts);

CREATE TABLE quotes (
    exchange text NOT NULL, symbol text NOT NULL, bid double precision,
    bid_qty double precision, ask double precision, ask_qty double precision,
    ts_event timestamptz, ts_recv timestamptz,
    PRIMARY KEY (exchange, symbol)
);

CREATE TABLE positions (
    exchange text NOT NULL, symbol text NOT NULL, last_trade_id bigint,
    max_ts_event bigint, id_ranges text, gaps_found bigint, gaps_filled bigint,
    trades_seen bigint, duplicates bigint, updated_at timestamptz,
    PRIMARY KEY (exchange, symbol)
);

CREATE TABLE dead_letters (
    ts timestamptz, source text, error text, raw bytea, context text
);
-- Re-committing a batch must not duplicate its dead letters.
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (ts, source, context, md5(raw));

CREATE SEQUENCE batch_seq;
CREATE TABLE batches (
    seq bigint PRIMARY KEY, committed_at timestamptz, trades bigint, candles bigint
);

-- Kafka consumers store their positions in the transaction that stores their output.
CREATE TABLE consumer_offsets (
    consumer_group text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
    next_offset bigint NOT NULL, updated_at timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Spark foreachBatch: the last batch_id applied per streaming query.
CREATE TABLE batch_fences (
    query_name text PRIMARY KEY, batch_id bigint NOT NULL, applied_at timestamptz NOT NULL
);
