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
    {% if is_incremental() %}
    where hour_start >= {{ incremental_cutoff('hour_start', var('lookback_hours'), 'hours') }}
    {% endif %}
),

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
    -- a VWAP needs volume; a venue-hour of zero-size trades has no price to compare
    having sum(base_volume) > 0
),

hours as (
    select
        *,
        quote_volume / base_volume as vwap,
        count(*) over (partition by asset, hour_start) as venue_count,
        sum(quote_volume) over (partition by asset, hour_start) as asset_quote_volume,
        sum(base_volume) over (partition by asset, hour_start) as asset_base_volume
    from venues
)

select
    asset,
    hour_start,
    exchange,
    symbol_count,
    venue_count,
    trade_count,
    base_volume,
    quote_volume,
    vwap,
    asset_quote_volume / asset_base_volume as cross_venue_vwap,
    quote_volume / asset_quote_volume as volume_share,
    10000 * (vwap / (asset_quote_volume / asset_base_volume) - 1) as vwap_vs_cross_venue_bps,
    -- ties go to the alphabetically first venue, so a rebuild never reorders them
    row_number() over (
        partition by asset, hour_start order by quote_volume desc, exchange
    ) as volume_rank
from hours
