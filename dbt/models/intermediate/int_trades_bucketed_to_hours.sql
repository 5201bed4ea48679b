{{
    config(
        materialized='incremental',
        unique_key=['exchange', 'symbol', 'hour_start'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set trade_order = 'traded_at, trade_id' %}

with trades as (
    select
        *,
        {{ utc_trunc('hour', 'traded_at') }} as hour_start
    from {{ ref('stg_marketpipe__trades') }}
    {% if is_incremental() %}
    where traded_at >= {{ incremental_cutoff('hour_start', var('lookback_hours'), 'hours') }}
    {% endif %}
)

select
    exchange,
    symbol,
    hour_start,
    {{ first_by('price', trade_order) }} as open_price,
    max(price) as high_price,
    min(price) as low_price,
    {{ last_by('price', trade_order) }} as close_price,
    sum(quantity) as base_volume,
    sum(price * quantity) as quote_volume,
    -- true VWAP: sum(price * quantity) / sum(quantity), never an average of prices
    sum(price * quantity) / nullif(sum(quantity), 0) as vwap,
    coalesce(sum(case when taker_side = 'buy' then quantity end), 0) as taker_buy_base_volume,
    coalesce(sum(case when taker_side = 'sell' then quantity end), 0) as taker_sell_base_volume,
    coalesce(sum(case when taker_side = 'buy' then price * quantity end), 0) as taker_buy_quote_volume,
    count(*) as trade_count,
    {{ first_by('trade_id', trade_order) }} as first_trade_id,
    {{ last_by('trade_id', trade_order) }} as last_trade_id,
    min(trade_id) as min_trade_id,
    max(trade_id) as max_trade_id,
    min(traded_at) as first_traded_at,
    max(traded_at) as last_traded_at
from trades
group by exchange, symbol, hour_start
