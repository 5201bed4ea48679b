select
    {{ utc_date('fired_at') }} as alert_date,
    exchange,
    symbol,
    alert_kind,
    severity,
    count(*) as alert_count,
    max(observed_value) as max_observed_value,
    min(fired_at) as first_fired_at,
    max(fired_at) as last_fired_at
from {{ ref('stg_marketpipe__alerts') }}
group by {{ utc_date('fired_at') }}, exchange, symbol, alert_kind, severity
