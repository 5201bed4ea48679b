select
    cast(exchange as {{ type_varchar(32) }}) as exchange,
    cast(symbol as {{ type_varchar(32) }}) as symbol,
    cast(trade_id as {{ dbt.type_bigint() }}) as trade_id,
    cast(price as {{ type_double() }}) as price,
    cast(qty as {{ type_double() }}) as quantity,
    cast(side as {{ type_varchar(4) }}) as taker_side,
    cast(ts_event as {{ type_timestamptz() }}) as traded_at,
    cast(ts_recv as {{ type_timestamptz() }}) as received_at
from {{ source('marketpipe', 'late_trades') }}
