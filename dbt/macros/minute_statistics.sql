{#
  Per (exchange, symbol, period) from 1m candles, `period` being 'hour' or 'day':
  - realized_volatility: sqrt(sum of squared 1m log returns), not annualized;
  - return_count: how many 1m returns went into it;
  - max_drawdown: the largest fall from a running peak, as a fraction, over the period's
    opening price and its 1m closes: max over t of 1 - close_t / max(open, close_1..close_t).
  `where` restricts the minutes (incremental runs).
#}
{% macro minute_statistics(period, where='true') -%}
    select
        exchange,
        symbol,
        period_start,
        sqrt(sum(log_return * log_return)) as realized_volatility,
        count(log_return) as return_count,
        max(1 - close_price / nullif(greatest(running_max_close, period_open_price), 0)) as max_drawdown
    from (
        select
            exchange,
            symbol,
            period_start,
            close_price,
            log_return,
            max(close_price) over (
                partition by exchange, symbol, period_start order by opened_at
                rows between unbounded preceding and current row
            ) as running_max_close,
            first_value(open_price) over (
                partition by exchange, symbol, period_start order by opened_at
                rows between unbounded preceding and current row
            ) as period_open_price
        from (
            select *, {{ utc_trunc(period, 'opened_at') }} as period_start
            from {{ ref('int_candles_returns') }}
        ) as minutes
        where {{ where }}
    ) as peaks
    group by exchange, symbol, period_start
{%- endmacro %}
