select
    cast(exchange as varchar(32)) as exchange,
    cast(symbol as varchar(32)) as symbol,
    cast(last_trade_id as bigint) as last_trade_id,
    cast(gaps_found as bigint) as gaps_found,
    cast(gaps_filled as bigint) as gaps_filled,
    cast(trades_seen as bigint) as trades_seen,
    cast(duplicates as bigint) as duplicates_dropped,
    cast(updated_at as timestamp with time zone) as updated_at
from {{ source('marketpipe', 'positions') }}
