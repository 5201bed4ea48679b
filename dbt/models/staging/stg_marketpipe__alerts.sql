select
    cast(alert_id as {{ type_varchar(64) }}) as alert_id,
    cast(kind as {{ type_varchar(32) }}) as alert_kind,
    cast(severity as {{ type_varchar(16) }}) as severity,
    cast(exchange as {{ type_varchar(32) }}) as exchange,
    cast(symbol as {{ type_varchar(32) }}) as symbol,
    cast(ts as {{ type_timestamptz() }}) as fired_at,
    cast(value as {{ type_double() }}) as observed_value,
    cast(threshold as {{ type_double() }}) as threshold_value,
    cast(details as {{ dbt.type_string() }}) as details_json
from {{ source('marketpipe', 'alerts') }}
