-- The cross-venue marts regroup the per-symbol hourly summary by asset: for every asset-hour
-- they must hold exactly the trades and volume of that asset's symbols on every venue, count
-- each venue once, and their venue shares must add up to 1. Any row returned is a
-- disagreement (an asset-hour missing on one side, or a sum that differs).
{% set tolerance = 1e-9 %}

with summary as (
    select
        {{ comparable_asset('symbol') }} as asset,
        hour_start,
        count(distinct exchange) as venue_count,
        cast(sum(trade_count) as {{ dbt.type_bigint() }}) as trade_count,
        sum(quote_volume) as quote_volume
    from {{ ref('trading_summary_hourly') }}
    where {{ comparable_asset('symbol') }} is not null and base_volume > 0
    group by 1, 2
),

shares as (
    select asset, hour_start, sum(volume_share) as share_total, count(*) as venue_rows
    from {{ ref('cross_venue_volume_share_hourly') }}
    group by asset, hour_start
),

compared as (
    select
        coalesce(s.asset, h.asset) as asset,
        coalesce(s.hour_start, h.hour_start) as hour_start,
        s.asset is null as missing_in_summary,
        h.asset is null as missing_in_mart,
        s.venue_count, h.venue_count as mart_venue_count, v.venue_rows,
        s.trade_count, h.trade_count as mart_trade_count,
        s.quote_volume, h.quote_volume as mart_quote_volume,
        v.share_total
    from summary as s
    full outer join {{ ref('cross_venue_hourly') }} as h
        on h.asset = s.asset and h.hour_start = s.hour_start
    left join shares as v
        on v.asset = coalesce(s.asset, h.asset) and v.hour_start = coalesce(s.hour_start, h.hour_start)
)

select *
from compared
where missing_in_summary
   or missing_in_mart
   or venue_count <> mart_venue_count
   or venue_rows <> mart_venue_count
   or trade_count <> mart_trade_count
   or abs(quote_volume - mart_quote_volume) > {{ tolerance }} * abs(quote_volume)
   or abs(share_total - 1) > {{ tolerance }}
