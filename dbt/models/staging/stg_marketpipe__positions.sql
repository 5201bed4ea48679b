select
    cast(exchange as {{ type_varchar(32) }}) as exchange,
    cast(symbol as {{ type_varchar(32) }}) as symbol,
    cast(last_trade_id as {{ dbt.type_bigint() }}) as last_trade_id,
    cast(gaps_found as {{ dbt.type_bigint() }}) as gaps_found,
    cast(gaps_filled as {{ dbt.type_bigint() }}) as gaps_filled,
    cast(trades_seen as {{ dbt.type_bigint() }}) as trades_seen,
    cast(duplicates as {{ dbt.type_bigint() }}) as duplicates_dropped,
    {{ positions_updated_at() }} as updated_at
from {{ source('marketpipe', 'positions') }}
