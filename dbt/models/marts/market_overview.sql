-- Per symbol, at its own latest trade: the price, the change and volume over the 1440 one-minute
-- candles ending with the latest (24 h of the symbol's data, not wall-clock time), and its rank
-- by 24 h quote volume. Timestamps stay timestamptz throughout: no epoch unit conversions.
with latest as (
    select * from {{ ref('int_prices_latest') }}
),

last_day as (
    select
        c.exchange,
        c.symbol,
        {{ first_by('c.open_price', 'c.opened_at') }} as open_price_24h,
        min(c.opened_at) as window_start,
        sum(c.base_volume) as base_volume_24h,
        sum(c.quote_volume) as quote_volume_24h,
        cast(sum(c.trade_count) as {{ dbt.type_bigint() }}) as trade_count_24h,
        max(c.high_price) as high_price_24h,
        min(c.low_price) as low_price_24h
    from {{ ref('stg_marketpipe__candles') }} as c
    inner join latest as l
        on l.exchange = c.exchange and l.symbol = c.symbol
    where c.candle_interval = '1m'
      and c.opened_at > {{ utc_trunc('minute', 'l.last_traded_at') }} - {{ interval_of(24, 'hours') }}
      and c.opened_at <= l.last_traded_at
    group by c.exchange, c.symbol
)

select
    l.exchange,
    l.symbol,
    l.last_price,
    l.last_trade_id,
    l.last_traded_at,
    l.bid_price,
    l.ask_price,
    d.open_price_24h,
    l.last_price - d.open_price_24h as price_change_24h,
    100.0 * (l.last_price / nullif(d.open_price_24h, 0) - 1) as price_change_24h_pct,
    d.high_price_24h,
    d.low_price_24h,
    d.base_volume_24h,
    d.quote_volume_24h,
    d.trade_count_24h,
    d.window_start <= {{ utc_trunc('minute', 'l.last_traded_at') }} - {{ interval_of(1439, 'minutes') }} as covers_full_24h,
    rank() over (order by d.quote_volume_24h desc nulls last) as volume_rank
from latest as l
left join last_day as d
    on d.exchange = l.exchange and d.symbol = l.symbol
