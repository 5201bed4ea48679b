{{
    config(
        materialized='incremental',
        unique_key=['exchange', 'symbol', 'trade_date'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- if is_incremental() %}
{%- set since = "(select " ~ "max(day_start) - " ~ interval_of(var('lookback_days'), 'days') ~ " from " ~ this ~ ")" %}
{%- else %}
{%- set since = "cast('1970-01-01 00:00:00+00' as " ~ type_timestamptz() ~ ")" %}
{%- endif %}

with hours as (
    select *, {{ utc_trunc('day', 'hour_start') }} as day_start
    from {{ ref('int_trades_bucketed_to_hours') }}
),

days as (
    select
        exchange,
        symbol,
        day_start,
        {{ first_by('open_price', 'hour_start') }} as open_price,
        max(high_price) as high_price,
        min(low_price) as low_price,
        {{ last_by('close_price', 'hour_start') }} as close_price,
        sum(quote_volume) / nullif(sum(base_volume), 0) as vwap,
        sum(base_volume) as base_volume,
        sum(quote_volume) as quote_volume,
        cast(sum(trade_count) as {{ dbt.type_bigint() }}) as trade_count,
        sum(taker_buy_base_volume) as taker_buy_base_volume,
        sum(taker_sell_base_volume) as taker_sell_base_volume,
        min(min_trade_id) as min_trade_id,
        max(max_trade_id) as max_trade_id
    from hours
    where day_start >= {{ since }}
    group by exchange, symbol, day_start
),

minute_stats as (
    {{ minute_statistics('day', 'period_start >= ' ~ since) }}
)

select
    d.exchange,
    d.symbol,
    {{ utc_date('d.day_start') }} as trade_date,
    d.day_start,
    d.open_price,
    d.high_price,
    d.low_price,
    d.close_price,
    d.vwap,
    d.base_volume,
    d.quote_volume,
    d.trade_count,
    d.taker_buy_base_volume,
    d.taker_sell_base_volume,
    d.taker_buy_base_volume / nullif(d.taker_sell_base_volume, 0) as buy_sell_ratio,
    m.realized_volatility,
    m.return_count,
    coalesce(m.max_drawdown, 0) as max_drawdown,
    d.high_price - d.low_price as price_range,
    (d.high_price - d.low_price) / nullif(d.open_price, 0) as price_range_pct,
    100.0 * cast(d.trade_count as {{ type_double() }}) / (d.max_trade_id - d.min_trade_id + 1) as completeness_pct
from days as d
left join minute_stats as m
    on m.exchange = d.exchange and m.symbol = d.symbol and m.period_start = d.day_start
