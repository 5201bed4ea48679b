"""Generate marketpipe's Grafana dashboards from code (Grafana's grafana-foundation-sdk).

    .venv/bin/python deploy/grafana/generate.py          # writes deploy/grafana/dashboards/*.json

The JSON is committed so users provision it without running this; tests/deploy checks that the
files equal this script's output, that they parse back through the SDK's types, and that every
panel's query returns data against the real Prometheus and PostgreSQL of the compose stacks.

Datasources are referenced by the uids that deploy/grafana/provisioning creates. Market data
(prices, candles, alerts) comes from the PostgreSQL warm store of the cluster stack; the
pipeline's own health from Prometheus (both stacks). Embedded mode's market view is the
built-in dashboard at `/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, candlestick, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
)

OUT = Path(__file__).parent / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="marketpipe-prometheus")
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="marketpipe-postgres")

# Template variables of the SQL panels, with the values a fresh dashboard opens on.
VARIABLE_DEFAULTS = {"exchange": "binance", "symbol": "BTC-USDT", "interval": "1m"}


class SqlQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (the SDK has no builder for it)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id, self.raw_sql, self.fmt = ref_id, raw_sql, fmt

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, raw_sql: str, fmt: str = "time_series", ref_id: str = "A") -> None:
        self._query = SqlQuery(ref_id, " ".join(raw_sql.split()), fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def promql(expr: str, legend: str = "__auto", ref_id: str = "A") -> prom.Dataquery:
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROMETHEUS)


def ts(title: str, unit: str, *targets: Any, desc: str = "", ds: DataSourceRef = PROMETHEUS,
       w: int = 12, h: int = 8) -> timeseries.Panel:  # fmt: skip
    panel = timeseries.Panel().title(title).unit(unit).datasource(ds).span(w).height(h)
    if desc:
        panel = panel.description(desc)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def sql_table(title: str, raw_sql: str, desc: str, w: int = 12, h: int = 8) -> table.Panel:
    return (
        table.Panel().title(title).description(desc).datasource(POSTGRES).span(w).height(h)
        .with_target(Sql(raw_sql, "table"))
    )  # fmt: skip


def sql_variable(name: str, label: str, raw_sql: str) -> dash.QueryVariable:
    default = VARIABLE_DEFAULTS[name]
    return (
        dash.QueryVariable(name).label(label).datasource(POSTGRES).query(raw_sql)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .current(VariableOption(selected=True, text=default, value=default))
    )  # fmt: skip


def base(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (
        dash.Dashboard(title).uid(uid).description(description).tags(["marketpipe", *tags])
        .timezone("utc").refresh("30s").time("now-6h", "now").editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )  # fmt: skip


# ---- the four dashboards ---------------------------------------------------------------------

LATEST_1M = """
WITH latest AS (
  SELECT exchange, symbol, max(open_time) AS t FROM candles WHERE interval = '1m'
  GROUP BY exchange, symbol)
"""


def market_overview() -> dash.Dashboard:
    return (
        base("marketpipe-market-overview", "marketpipe / Market Overview",
             "Prices, 24 h change and volume of every symbol and venue.", ["market"])
        .with_panel(sql_table(
            "Last price and 24 h change",
            LATEST_1M + """
            SELECT c.exchange, c.symbol, c.close AS last_price,
                   100 * (c.close / NULLIF(d.open, 0) - 1) AS change_24h_pct,
                   (SELECT sum(quote_volume) FROM candles v WHERE v.interval = '1m'
                      AND v.exchange = c.exchange AND v.symbol = c.symbol
                      AND v.open_time > l.t - interval '24 hours') AS quote_volume_24h
            FROM latest l
            JOIN candles c ON c.interval = '1m' AND c.exchange = l.exchange
                 AND c.symbol = l.symbol AND c.open_time = l.t
            LEFT JOIN LATERAL (
              SELECT open FROM candles o WHERE o.interval = '1m' AND o.exchange = l.exchange
                AND o.symbol = l.symbol AND o.open_time > l.t - interval '24 hours'
              ORDER BY o.open_time LIMIT 1) d ON true
            ORDER BY quote_volume_24h DESC""",
            "24 h relative to each symbol's newest candle (as the API's ticker/24hr).", w=24))
        .with_panel(ts(
            "Price (1m close)", "currencyUSD",
            Sql("""SELECT open_time AS time, exchange || ' ' || symbol AS metric, close
                   FROM candles WHERE interval = '1m' AND $__timeFilter(open_time)
                   ORDER BY 1"""),
            ds=POSTGRES))
        .with_panel(
            barchart.Panel().title("Quote volume by symbol and venue").datasource(POSTGRES)
            .description("Sum of 1m quote volume over the dashboard's time range.")
            .span(12).height(8).x_field("market").unit("currencyUSD")
            .with_target(Sql("""SELECT exchange || ' ' || symbol AS market,
                                  sum(quote_volume) AS quote_volume
                                FROM candles WHERE interval = '1m' AND $__timeFilter(open_time)
                                GROUP BY 1 ORDER BY 2 DESC""", "table")))
        .with_panel(ts(
            "Trades per second by venue", "ops",
            promql("sum by (exchange) (rate(trades_in_total[5m]))", "{{exchange}}"),
            desc="Trades reaching the engine (Prometheus).", w=24))
    )  # fmt: skip


def symbol_deep_dive() -> dash.Dashboard:
    where = ("exchange = '$exchange' AND symbol = '$symbol' AND interval = '$interval' "
             "AND $__timeFilter(open_time)")  # fmt: skip
    return (
        base("marketpipe-symbol-deep-dive", "marketpipe / Symbol Deep Dive",
             "One symbol: candles, VWAP, trade count, taker buy/sell; its alerts as annotations.",
             ["market"])
        .with_variable(sql_variable("exchange", "Exchange",
                                    "SELECT DISTINCT exchange FROM candles ORDER BY 1"))
        .with_variable(sql_variable(
            "symbol", "Symbol",
            "SELECT DISTINCT symbol FROM candles WHERE exchange = '$exchange' ORDER BY 1"))
        .with_variable(
            dash.CustomVariable("interval").label("Interval").values("1m,5m,15m,1h,4h,1d")
            .current(VariableOption(selected=True, text="1m", value="1m")))
        .annotation(
            dash.AnnotationQuery().name("marketpipe alerts").datasource(POSTGRES).enable(True)
            .icon_color("orange"))
        .with_panel(
            candlestick.Panel().title("$symbol $interval candles").datasource(POSTGRES)
            .span(24).height(10)
            .with_target(Sql(f"""SELECT open_time AS time, open, high, low, close, volume
                                 FROM candles WHERE {where} ORDER BY 1""", "table")))
        .with_panel(ts("VWAP and close", "currencyUSD",
                       Sql(f"SELECT open_time AS time, vwap, close FROM candles WHERE {where} "
                           "ORDER BY 1"), ds=POSTGRES))
        .with_panel(ts("Trade count", "short",
                       Sql(f"SELECT open_time AS time, trade_count FROM candles WHERE {where} "
                           "ORDER BY 1"), ds=POSTGRES))
        .with_panel(ts("Taker buy / sell volume", "short",
                       Sql(f"""SELECT open_time AS time, taker_buy_volume AS taker_buy,
                                      volume - taker_buy_volume AS taker_sell
                               FROM candles WHERE {where} ORDER BY 1"""),
                       desc="Base-asset volume by the taker's side.", ds=POSTGRES, w=24))
    )  # fmt: skip


# The alert annotation's SQL (the SDK's AnnotationTarget has no rawSql; added to the JSON).
ALERT_ANNOTATION_SQL = (
    "SELECT ts AS time, kind || ' ' || severity || ': value ' || round(value::numeric, 2) "
    "|| ' (threshold ' || round(threshold::numeric, 2) || ')' AS text, kind AS tags "
    "FROM alerts WHERE exchange = '$exchange' AND symbol = '$symbol' AND $__timeFilter(ts) "
    "ORDER BY ts"
)


def trading_analytics() -> dash.Dashboard:
    return (
        base("marketpipe-trading-analytics", "marketpipe / Trading Analytics",
             "Alerts over time, volume spikes and whale trades.", ["market", "alerts"])
        .with_panel(ts(
            "Alerts per hour by kind", "short",
            Sql("""SELECT date_trunc('hour', ts) AS time, kind AS metric, count(*) AS alerts
                   FROM alerts WHERE $__timeFilter(ts) GROUP BY 1, 2 ORDER BY 1"""),
            ds=POSTGRES, w=24))
        .with_panel(sql_table(
            "Volume spikes: 1m quote volume against its trailing hour",
            """SELECT * FROM (
                 SELECT open_time AS time, exchange, symbol, quote_volume,
                        quote_volume / NULLIF(avg(quote_volume) OVER (
                          PARTITION BY exchange, symbol ORDER BY open_time
                          ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING), 0) AS x_trailing_mean
                 FROM candles WHERE interval = '1m' AND $__timeFilter(open_time)) s
               WHERE x_trailing_mean IS NOT NULL ORDER BY x_trailing_mean DESC LIMIT 20""",
            "The largest ratios first; the volume_spike alert fires at 5x or $1M."))
        .with_panel(sql_table(
            "Whale trades: the largest trades",
            """SELECT ts_event AS time, exchange, symbol, side, price, qty,
                      price * qty AS notional
               FROM trades_recent WHERE $__timeFilter(ts_event)
               ORDER BY notional DESC LIMIT 20""",
            "Largest notional first; the whale_trade alert fires at $100,000."))
        .with_panel(sql_table(
            "Latest alerts",
            """SELECT ts AS time, kind, severity, exchange, symbol, value, threshold
               FROM alerts WHERE $__timeFilter(ts) ORDER BY ts DESC LIMIT 50""",
            "Every alert kind (whale_trade, volume_spike, price_spike).", w=24))
    )  # fmt: skip


def system_health() -> dash.Dashboard:
    return (
        base("marketpipe-system-health", "marketpipe / System Health",
             "Throughput, lag, completeness, gaps, dead letters, commit and API latency.",
             ["operations"])
        .with_panel(stat.Panel().title("Processes up").datasource(PROMETHEUS).span(6).height(4)
                    .with_target(promql('sum(up{job=~"marketpipe.*"})')))
        .with_panel(stat.Panel().title("Last commit age").unit("s").datasource(PROMETHEUS)
                    .span(6).height(4)
                    .with_target(promql("time() - max(last_commit_timestamp_seconds)")))
        .with_panel(stat.Panel().title("Exchange WebSocket connections").datasource(PROMETHEUS)
                    .span(6).height(4)
                    .with_target(promql("sum by (exchange) (producer_websocket_connections)",
                                        "{{exchange}}")))
        .with_panel(stat.Panel().title("Dead letters (1 h)").datasource(PROMETHEUS)
                    .description("0 until the first dead letter creates the series.")
                    .span(6).height(4)
                    .with_target(promql("sum(increase(dead_letters_total[1h])) or vector(0)")))
        .with_panel(ts("Throughput: records consumed per second", "ops",
                       promql("sum by (kind) (rate(consumer_messages_consumed_total[5m]))",
                              "{{kind}}"),
                       promql("sum by (table) (rate(consumer_messages_inserted_total[5m]))",
                              "inserted {{table}}", "B")))
        .with_panel(ts("Processing lag (wall clock - watermark)", "s",
                       promql("max by (exchange) (watermark_lag_seconds)", "{{exchange}}"),
                       desc="Grows when processing or its Kafka consumer falls behind."))
        .with_panel(ts("Commit latency", "s",
                       promql("histogram_quantile(0.5, sum by (le) "
                              "(rate(batch_commit_seconds_bucket[5m])))", "p50"),
                       promql("histogram_quantile(0.99, sum by (le) "
                              "(rate(batch_commit_seconds_bucket[5m])))", "p99", "B")))
        .with_panel(ts("Event to commit latency p99", "s",
                       promql("histogram_quantile(0.99, sum by (le) "
                              "(rate(event_to_commit_seconds_bucket[5m])))", "event"),
                       promql("histogram_quantile(0.99, sum by (le) "
                              "(rate(recv_to_commit_seconds_bucket[5m])))", "receipt", "B")))
        .with_panel(ts("Trade-id gaps open", "short",
                       promql("(sum by (exchange, symbol) (gaps_found_total) - sum by "
                              "(exchange, symbol) (gaps_filled_total or gaps_found_total * 0))"
                              " or vector(0)", "{{exchange}} {{symbol}}"),
                       desc="Found minus back-filled; 0 until the first gap."))
        .with_panel(ts("Symbol last trade age", "s",
                       promql("time() - max by (exchange, symbol) "
                              "(last_trade_timestamp_seconds)", "{{exchange}} {{symbol}}"),
                       desc="SymbolNoTrades fires at 90 s while the venue trades."))
        .with_panel(ts("API request latency p99 by route", "s",
                       promql("histogram_quantile(0.99, sum by (le, route) "
                              "(rate(api_request_duration_seconds_bucket[5m])))", "{{route}}"),
                       promql('(sum(rate(api_requests_total{status=~"5.."}[5m])) or vector(0)) / '
                              "sum(rate(api_requests_total[5m]))", "5xx share", "B")))
        .with_panel(ts("Scheduled jobs failing", "short",
                       promql("max by (exported_job) (scheduler_job_failing)",
                              "{{exported_job}}")))
        .with_panel(sql_table(
            "Completeness per symbol (warm store positions)",
            """SELECT exchange, symbol, last_trade_id, trades_seen, gaps_found,
                      gaps_found - gaps_filled AS gaps_open, duplicates, updated_at
               FROM positions ORDER BY exchange, symbol""",
            "Cluster stack: from PostgreSQL."))
        .with_panel(sql_table(
            "Kafka consumer offsets (cluster)",
            """SELECT consumer_group, topic, partition, next_offset, updated_at,
                      extract(epoch FROM now() - updated_at) AS seconds_since_commit
               FROM consumer_offsets ORDER BY consumer_group, topic, partition""",
            "The offsets each consumer group committed with its output."))
    )  # fmt: skip


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "market-overview": market_overview,
    "symbol-deep-dive": symbol_deep_dive,
    "trading-analytics": trading_analytics,
    "system-health": system_health,
}


def render(name: str) -> dict[str, Any]:
    model = DASHBOARDS[name]().build()
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    if name == "symbol-deep-dive":
        for annotation in data["annotations"]["list"]:
            if annotation["name"] == "marketpipe alerts":
                annotation["target"] = {"refId": "Anno", "rawSql": ALERT_ANNOTATION_SQL,
                                        "format": "table", "rawQuery": True}  # fmt: skip
    return data


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        text = json.dumps(render(name), indent=2, sort_keys=True) + "\n"
        (OUT / f"{name}.json").write_text(text)
        print(f"wrote {OUT / name}.json")


if __name__ == "__main__":
    main()
