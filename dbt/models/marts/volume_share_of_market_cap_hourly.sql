-- One row per (data source, coin, UTC hour): our own dollar volume of the coin, summed over
-- every venue and dollar quote (macros/assets.sql: BTC-USDT and BTC-USD are one asset), as a
-- share of the coin's market cap, and our base volume as a share of its circulating supply.
-- The market figures are the hour's last dollar snapshot (by the source's time, then receipt);
-- our volume is the pipeline's own 1h candles. An hour needs both: no snapshot that hour, or
-- no trades, no row. Unknown market figures stay null, and so do the ratios built on them.

with snapshots as (
    select
        data_source,
        asset,
        {{ utc_trunc('hour', 'snapshot_at') }} as hour_start,
        snapshot_at,
        price,
        market_cap,
        fully_diluted_valuation,
        reported_volume_24h,
        circulating_supply,
        market_cap_rank,
        -- a window, not last_by: BigQuery's array_agg refuses the null figures
        row_number() over (
            partition by data_source, asset, {{ utc_trunc('hour', 'snapshot_at') }}
            order by snapshot_at desc, received_at desc
        ) as newest_first
    from {{ ref('stg_marketpipe__market_snapshots') }}
    where vs_currency = 'USD'
),

hour_snapshots as (
    select * from snapshots where newest_first = 1
),

candles as (
    select
        exchange,
        {{ comparable_asset('symbol') }} as pair,
        opened_at as hour_start,
        trade_count,
        base_volume,
        quote_volume
    from {{ ref('stg_marketpipe__candles') }}
    where candle_interval = '1h' and trade_count > 0
),

volumes as (
    select
        substr(pair, 1, strpos(pair, '-') - 1) as asset,
        hour_start,
        count(distinct exchange) as venue_count,
        cast(sum(trade_count) as {{ dbt.type_bigint() }}) as trade_count,
        sum(base_volume) as base_volume,
        sum(quote_volume) as quote_volume
    from candles
    -- dollars only: a market cap in USD against BTC-EUR's euros would be a made-up ratio
    where pair like '%-USD'
    group by substr(pair, 1, strpos(pair, '-') - 1), hour_start
)

select
    s.data_source,
    s.asset,
    s.hour_start,
    s.hour_start + {{ interval_of(1, 'hour') }} as hour_end,
    s.snapshot_at,
    s.price,
    s.market_cap,
    s.fully_diluted_valuation,
    s.circulating_supply,
    s.market_cap_rank,
    s.reported_volume_24h,
    v.venue_count,
    v.trade_count,
    v.base_volume,
    v.quote_volume,
    case when s.market_cap > 0 then v.quote_volume / s.market_cap end
        as volume_share_of_market_cap,
    case when s.circulating_supply > 0 then v.base_volume / s.circulating_supply end
        as circulating_supply_turnover
from hour_snapshots as s
inner join volumes as v
    on v.asset = s.asset and v.hour_start = s.hour_start
