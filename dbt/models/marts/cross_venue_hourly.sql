{{
    config(
        materialized='incremental',
        unique_key=['asset', 'hour_start'],
        incremental_strategy=incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- One row per (asset, UTC hour): how many venues traded it, the VWAP across all of them, the
-- highest and lowest venue VWAP with their venues, the spread between them in basis points of
-- the cross-venue VWAP, and the total and leading venue's volume. Aggregates the per-venue
-- mart (cross_venue_volume_share_hourly), which rebuilds whole hours from the same cutoff.
-- Ties between venues go to the alphabetically first.

with venues as (
    select * from {{ ref('cross_venue_volume_share_hourly') }}
    {% if is_incremental() %}
    where hour_start >= {{ incremental_cutoff('hour_start', var('lookback_hours'), 'hours') }}
    {% endif %}
)

select
    asset,
    hour_start,
    hour_start + {{ interval_of(1, 'hour') }} as hour_end,
    count(*) as venue_count,
    cast(sum(trade_count) as {{ dbt.type_bigint() }}) as trade_count,
    sum(base_volume) as base_volume,
    sum(quote_volume) as quote_volume,
    sum(quote_volume) / sum(base_volume) as vwap,
    max(vwap) as highest_vwap,
    {{ first_by('exchange', 'vwap desc, exchange') }} as highest_vwap_exchange,
    min(vwap) as lowest_vwap,
    {{ first_by('exchange', 'vwap, exchange') }} as lowest_vwap_exchange,
    max(vwap) - min(vwap) as vwap_spread,
    10000 * (max(vwap) - min(vwap)) / (sum(quote_volume) / sum(base_volume)) as spread_bps,
    {{ first_by('exchange', 'quote_volume desc, exchange') }} as leading_exchange,
    max(volume_share) as leading_volume_share
from venues
group by asset, hour_start
