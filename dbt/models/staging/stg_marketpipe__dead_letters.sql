select
    cast(ts as {{ type_timestamptz() }}) as dead_lettered_at,
    cast(source as {{ dbt.type_string() }}) as source_name,
    cast(error as {{ dbt.type_string() }}) as error_message,
    cast(context as {{ dbt.type_string() }}) as context
from {{ source('marketpipe', 'dead_letters') }}
