-- Each hour of volume_share_of_market_cap_hourly reads the newest dollar snapshot of the coin
-- taken in that very hour ([hour_start, hour_end)). A row returned here is a failure.
with newest as (
    select
        data_source,
        asset,
        {{ utc_trunc('hour', 'snapshot_at') }} as hour_start,
        max(snapshot_at) as newest_at
    from {{ ref('stg_marketpipe__market_snapshots') }}
    where vs_currency = 'USD'
    group by data_source, asset, {{ utc_trunc('hour', 'snapshot_at') }}
)

select m.data_source, m.asset, m.hour_start
from {{ ref('volume_share_of_market_cap_hourly') }} as m
left join newest as n
    on n.data_source = m.data_source and n.asset = m.asset and n.hour_start = m.hour_start
where n.asset is null
   or m.snapshot_at <> n.newest_at
   or m.snapshot_at < m.hour_start
   or m.snapshot_at >= m.hour_end
