{{
    config(
        materialized='incremental',
        unique_key=['exchange', 'symbol', 'opened_at'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set max_gap = var('max_return_gap_minutes') %}

with minutes as (
    select exchange, symbol, opened_at, open_price, close_price, is_final
    from {{ ref('stg_marketpipe__candles') }}
    where candle_interval = '1m'
    {% if is_incremental() %}
    -- the returns' previous closes reach back at most max_gap minutes before the cutoff
      and opened_at >= {{ incremental_cutoff('opened_at', var('lookback_hours'), 'hours') }}
                       - {{ interval_of(max_gap, 'minutes') }}
    {% endif %}
),

with_previous as (
    select
        *,
        lag(close_price) over (partition by exchange, symbol order by opened_at) as previous_close_price,
        lag(opened_at) over (partition by exchange, symbol order by opened_at) as previous_opened_at
    from minutes
)

select
    exchange,
    symbol,
    opened_at,
    open_price,
    close_price,
    previous_close_price,
    is_final,
    case
        when previous_opened_at >= opened_at - {{ interval_of(max_gap, 'minutes') }}
         and previous_close_price > 0 and close_price > 0
        then ln(close_price / previous_close_price)
    end as log_return
from with_previous
{% if is_incremental() %}
where opened_at >= {{ incremental_cutoff('opened_at', var('lookback_hours'), 'hours') }}
{% endif %}
