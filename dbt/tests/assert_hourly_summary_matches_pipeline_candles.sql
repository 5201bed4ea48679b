-- The hourly mart is computed from raw trades; the pipeline's 1h candles are merges of its 1m
-- candles (a monoid). Both must agree on every hour the raw trades cover: same OHLC, volumes,
-- trade count, trade ids and VWAP (relative tolerance for float sums). Any row returned is a
-- disagreement: an hour missing on one side, or a value that differs.
{% set tolerance = 1e-9 %}

with mart as (
    select * from {{ ref('trading_summary_hourly') }}
),

candles as (
    select *
    from {{ ref('stg_marketpipe__candles') }}
    where candle_interval = '1h'
      and opened_at >= (select min(hour_start) from mart)
),

compared as (
    select
        coalesce(m.exchange, c.exchange) as exchange,
        coalesce(m.symbol, c.symbol) as symbol,
        coalesce(m.hour_start, c.opened_at) as hour_start,
        m.hour_start is null as missing_in_mart,
        c.opened_at is null as missing_in_candles,
        m.open_price, c.open_price as candle_open,
        m.close_price, c.close_price as candle_close,
        m.vwap, c.vwap as candle_vwap,
        m.trade_count, c.trade_count as candle_trade_count,
        m.high_price, c.high_price as candle_high,
        m.low_price, c.low_price as candle_low,
        m.base_volume, c.base_volume as candle_volume,
        m.quote_volume, c.quote_volume as candle_quote_volume,
        m.first_trade_id, c.first_trade_id as candle_first_trade_id,
        m.last_trade_id, c.last_trade_id as candle_last_trade_id
    from mart as m
    full outer join candles as c
        on c.exchange = m.exchange and c.symbol = m.symbol and c.opened_at = m.hour_start
)

select *
from compared
where missing_in_mart
   or missing_in_candles
   or open_price <> candle_open
   or close_price <> candle_close
   or high_price <> candle_high
   or low_price <> candle_low
   or trade_count <> candle_trade_count
   or first_trade_id <> candle_first_trade_id
   or last_trade_id <> candle_last_trade_id
   or abs(base_volume - candle_volume) > {{ tolerance }} * abs(candle_volume)
   or abs(quote_volume - candle_quote_volume) > {{ tolerance }} * abs(candle_quote_volume)
   or abs(vwap - candle_vwap) > {{ tolerance }} * abs(candle_vwap)
