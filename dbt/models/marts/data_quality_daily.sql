-- Per symbol and UTC day: trade ids expected vs stored (Binance ids are consecutive per symbol,
-- so the expected count runs from the previous day's last id to this day's last id), late
-- trades, dead letters, gap counters and freshness.
with days as (
    select
        exchange,
        symbol,
        {{ utc_date('hour_start') }} as trade_date,
        cast(sum(trade_count) as {{ dbt.type_bigint() }}) as stored_trades,
        min(min_trade_id) as min_trade_id,
        max(max_trade_id) as max_trade_id,
        min(first_traded_at) as first_trade_at,
        max(last_traded_at) as last_trade_at
    from {{ ref('int_trades_bucketed_to_hours') }}
    group by exchange, symbol, {{ utc_date('hour_start') }}
),

expected as (
    select
        *,
        max_trade_id - coalesce(
            lag(max_trade_id) over (partition by exchange, symbol order by trade_date),
            min_trade_id - 1
        ) as expected_trades
    from days
),

late as (
    select exchange, symbol, {{ utc_date('traded_at') }} as trade_date, count(*) as late_trades
    from {{ ref('stg_marketpipe__late_trades') }}
    group by exchange, symbol, {{ utc_date('traded_at') }}
),

dead as (
    select {{ utc_date('dead_lettered_at') }} as trade_date, count(*) as dead_letters
    from {{ ref('stg_marketpipe__dead_letters') }}
    group by {{ utc_date('dead_lettered_at') }}
)

select
    e.exchange,
    e.symbol,
    e.trade_date,
    e.expected_trades,
    e.stored_trades,
    e.expected_trades - e.stored_trades as missing_trades,
    100.0 * cast(e.stored_trades as {{ type_double() }}) / nullif(e.expected_trades, 0) as completeness_pct,
    coalesce(l.late_trades, 0) as late_trades,
    coalesce(d.dead_letters, 0) as dead_letters_all_symbols,
    p.gaps_found as gaps_found_to_date,
    p.gaps_filled as gaps_filled_to_date,
    e.first_trade_at,
    e.last_trade_at,
    {{ seconds_between('e.last_trade_at', build_time()) }} as seconds_since_last_trade
from expected as e
left join late as l
    on l.exchange = e.exchange and l.symbol = e.symbol and l.trade_date = e.trade_date
left join dead as d
    on d.trade_date = e.trade_date
left join {{ ref('stg_marketpipe__positions') }} as p
    on p.exchange = e.exchange and p.symbol = e.symbol
