select
    cast(exchange as {{ type_varchar(32) }}) as exchange,
    cast(symbol as {{ type_varchar(32) }}) as symbol,
    cast(bid as {{ type_double() }}) as bid_price,
    cast(bid_qty as {{ type_double() }}) as bid_quantity,
    cast(ask as {{ type_double() }}) as ask_price,
    cast(ask_qty as {{ type_double() }}) as ask_quantity,
    cast(ts_event as {{ type_timestamptz() }}) as quoted_at,
    cast(ts_recv as {{ type_timestamptz() }}) as received_at
from {{ source('marketpipe', 'quotes') }}
