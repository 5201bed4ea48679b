select
    cast(exchange as varchar(32)) as exchange,
    cast(symbol as varchar(32)) as symbol,
    cast(bid as {{ type_double() }}) as bid_price,
    cast(bid_qty as {{ type_double() }}) as bid_quantity,
    cast(ask as {{ type_double() }}) as ask_price,
    cast(ask_qty as {{ type_double() }}) as ask_quantity,
    cast(ts_event as timestamp with time zone) as quoted_at,
    cast(ts_recv as timestamp with time zone) as received_at
from {{ source('marketpipe', 'quotes') }}
