-- The latest traded price per symbol (close of its newest hour bucket, which is the last trade
-- by (traded_at, trade_id)), with the latest quote beside it.
with ranked as (
    select
        *,
        row_number() over (partition by exchange, symbol order by hour_start desc) as recency
    from {{ ref('int_trades_bucketed_to_hours') }}
)

select
    r.exchange,
    r.symbol,
    r.close_price as last_price,
    r.last_trade_id,
    r.last_traded_at,
    q.bid_price,
    q.ask_price,
    q.quoted_at
from ranked as r
left join {{ ref('stg_marketpipe__quotes') }} as q
    on q.exchange = r.exchange and q.symbol = r.symbol
where r.recency = 1
