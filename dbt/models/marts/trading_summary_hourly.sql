{{
    config(
        materialized='incremental',
        unique_key=['exchange', 'symbol', 'hour_start'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- if is_incremental() %}
{%- set since = incremental_cutoff('hour_start', var('lookback_hours'), 'hours') %}
{%- else %}
{%- set since = "cast('1970-01-01 00:00:00+00' as " ~ type_timestamptz() ~ ")" %}
{%- endif %}

with buckets as (
    select * from {{ ref('int_trades_bucketed_to_hours') }}
    where hour_start >= {{ since }}
),

minute_stats as (
    {{ minute_statistics('hour', 'period_start >= ' ~ since) }}
)

select
    b.exchange,
    b.symbol,
    b.hour_start,
    b.hour_start + {{ interval_of(1, 'hour') }} as hour_end,
    b.open_price,
    b.high_price,
    b.low_price,
    b.close_price,
    b.vwap,
    b.base_volume,
    b.quote_volume,
    b.trade_count,
    b.taker_buy_base_volume,
    b.taker_sell_base_volume,
    b.taker_buy_base_volume / nullif(b.taker_sell_base_volume, 0) as buy_sell_ratio,
    m.realized_volatility,
    m.return_count,
    coalesce(m.max_drawdown, 0) as max_drawdown,
    b.high_price - b.low_price as price_range,
    (b.high_price - b.low_price) / nullif(b.open_price, 0) as price_range_pct,
    b.first_trade_id,
    b.last_trade_id,
    b.max_trade_id - b.min_trade_id + 1 as expected_trade_count,
    100.0 * cast(b.trade_count as {{ type_double() }}) / (b.max_trade_id - b.min_trade_id + 1) as completeness_pct
from buckets as b
left join minute_stats as m
    on m.exchange = b.exchange and m.symbol = b.symbol and m.period_start = b.hour_start
