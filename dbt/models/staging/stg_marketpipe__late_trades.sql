select
    cast(exchange as varchar(32)) as exchange,
    cast(symbol as varchar(32)) as symbol,
    cast(trade_id as bigint) as trade_id,
    cast(price as {{ type_double() }}) as price,
    cast(qty as {{ type_double() }}) as quantity,
    cast(side as varchar(4)) as taker_side,
    cast(ts_event as timestamp with time zone) as traded_at,
    cast(ts_recv as timestamp with time zone) as received_at
from {{ source('marketpipe', 'late_trades') }}
