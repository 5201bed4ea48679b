"""Prometheus metrics, one registry for the process. Names are part of our interface."""

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Sources (producers): frames turned into records and handed to the bus.
PRODUCER_MESSAGES = Counter(
    "producer_messages_produced_total",
    "Records handed to the bus by sources",
    ["exchange", "kind"],
    registry=REGISTRY,
)
PRODUCER_ERRORS = Counter(
    "producer_errors_total",
    "Source errors: bad frames, failed connections, REST failures",
    ["exchange", "reason"],
    registry=REGISTRY,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "producer_websocket_connections",
    "Open exchange WebSocket connections",
    ["exchange"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "producer_reconnects_total",
    "WebSocket reconnects, by reason",
    ["exchange", "reason"],
    registry=REGISTRY,
)
REST_REQUESTS = Counter(
    "producer_rest_requests_total",
    "Exchange REST requests, by endpoint and status",
    ["exchange", "endpoint", "status"],
    registry=REGISTRY,
)
GAPS_FOUND = Counter(
    "gaps_found_total",
    "Trade-id gaps detected",
    ["exchange", "symbol"],
    registry=REGISTRY,
)
GAPS_FILLED = Counter(
    "gaps_filled_total",
    "Trade-id gaps back-filled over REST",
    ["exchange", "symbol"],
    registry=REGISTRY,
)
BACKFILLED_TRADES = Counter(
    "backfilled_trades_total",
    "Trades fetched over REST to fill gaps",
    ["exchange"],
    registry=REGISTRY,
)

# Processing and storage (consumers).
CONSUMED = Counter(
    "consumer_messages_consumed_total",
    "Records taken off the bus by the engine",
    ["kind"],
    registry=REGISTRY,
)
INSERTED = Counter(
    "consumer_messages_inserted_total",
    "Rows committed to the warm store",
    ["table"],
    registry=REGISTRY,
)
TRADES_IN = Counter(
    "trades_in_total", "Trades reaching the engine", ["exchange"], registry=REGISTRY
)
DUPLICATES = Counter(
    "duplicate_trades_total",
    "Trades dropped as already seen, by stage (source or engine)",
    ["stage"],
    registry=REGISTRY,
)
LATE_TRADES = Counter(
    "late_trades_total",
    "Trades later than allowed lateness (kept raw, not in candles)",
    ["exchange"],
    registry=REGISTRY,
)
REVISIONS = Counter(
    "candle_revisions_total",
    "Final candles re-published after a late trade",
    ["interval"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "dead_letters_total",
    "Inputs that could not be processed",
    ["source"],
    registry=REGISTRY,
)
ALERTS = Counter("alerts_total", "Alerts fired", ["kind"], registry=REGISTRY)
COMMITS_FENCED = Counter(
    "warehouse_commits_fenced_total",
    "Commits a warehouse refused because another consumer owns the partitions now",
    ["warehouse", "consumer_group"],
    registry=REGISTRY,
)
BATCH_COMMIT_SECONDS = Histogram(
    "batch_commit_seconds",
    "Time to commit one micro-batch",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_TRADES = Histogram(
    "batch_trades",
    "Trades per micro-batch",
    buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
    registry=REGISTRY,
)
EVENT_TO_COMMIT_SECONDS = Histogram(
    "event_to_commit_seconds",
    "Exchange event time to commit, newest trade of each batch",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECV_TO_COMMIT_SECONDS = Histogram(
    "recv_to_commit_seconds",
    "Local receipt to commit, newest trade of each batch",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WATERMARK_LAG_SECONDS = Gauge(
    "watermark_lag_seconds",
    "Wall clock minus the exchange watermark",
    ["exchange"],
    registry=REGISTRY,
)
LAST_COMMIT_TIMESTAMP = Gauge(
    "last_commit_timestamp_seconds",
    "Unix time of the last committed batch",
    registry=REGISTRY,
)
# What an operator alerts on (deploy/prometheus/rules): a symbol gone quiet, the API failing.
LAST_TRADE_TIMESTAMP = Gauge(
    "last_trade_timestamp_seconds",
    "Event time of the newest committed trade, per symbol",
    ["exchange", "symbol"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "api_requests_total",
    "API requests answered, by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "api_request_duration_seconds",
    "Time to answer an API request, by route template",
    ["route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


def note_last_trades(last: Iterable[tuple[str, str, int]]) -> None:
    """After a commit: the newest committed trade's event time (µs) per (exchange, symbol)."""
    for exchange, symbol, ts_us in last:
        LAST_TRADE_TIMESTAMP.labels(exchange, symbol).set(ts_us / 1e6)
