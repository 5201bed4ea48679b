{{
    config(
        materialized='incremental',
        unique_key=['asset', 'hour_start', 'exchange'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- One row per (asset, UTC hour, venue): the venue's volume, VWAP and share of the asset's
-- hour across venues. Dollar quotes are one asset (macros/assets.sql), so a venue listing an
-- asset under two of them (Binance's BTC-USDT and BTC-USDC) counts once, with both summed.
-- Every hour from the cutoff on is rebuilt whole, all venues at once, so the shares of an
-- hour always come from one consistent set of rows.

with buckets as (
    select
        {{ comparable_asset('symbol') }} as asset,
        exchange,
        hour_start,
        trade_count,
        base_volume,
        quote_volume
    from {{ ref('int_trades_bucketed_to_hours') }}
    -- a VWAP needs volume: a bucket of zero-size trades has no price to compare
    where base_volume > 0
    {% if is_incremental() %}
      and hour_start >= {{ incremental_cutoff('hour_start', var('lookback_hours'), 'hours') }}
    {% endif %}
),

-- Both levels straight from the buckets (no aggregate over an aggregate, which the BigQuery
-- emulator refuses: 'Aggregations of aggregations are not allowed').
venues as (
    select
        asset,
        hour_start,
        exchange,
        count(*) as symbol_count,
        cast(sum(trade_count) as {{ dbt.type_bigint() }}) as trade_count,
        sum(base_volume) as base_volume,
        sum(quote_volume) as quote_volume
    from buckets
    where asset is not null
    group by asset, hour_start, exchange
),

assets as (
    select
        asset,
        hour_start,
        count(distinct exchange) as venue_count,
        sum(quote_volume) as asset_quote_volume,
        sum(quote_volume) / sum(base_volume) as cross_venue_vwap
    from buckets
    where asset is not null
    group by asset, hour_start
)

select
    v.asset,
    v.hour_start,
    v.exchange,
    v.symbol_count,
    a.venue_count,
    v.trade_count,
    v.base_volume,
    v.quote_volume,
    v.quote_volume / v.base_volume as vwap,
    a.cross_venue_vwap,
    v.quote_volume / a.asset_quote_volume as volume_share,
    10000 * (v.quote_volume / v.base_volume / a.cross_venue_vwap - 1) as vwap_vs_cross_venue_bps,
    -- ties go to the alphabetically first venue, so a rebuild never reorders them
    row_number() over (
        partition by v.asset, v.hour_start order by v.quote_volume desc, v.exchange
    ) as volume_rank
from venues as v
inner join assets as a
    on a.asset = v.asset and a.hour_start = v.hour_start
