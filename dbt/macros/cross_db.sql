{#
  The few places where DuckDB and PostgreSQL SQL differ. Models call these; each has a
  default (PostgreSQL-compatible) and a duckdb__ implementation.
#}

{# The value of `expr` on the first row ordered by `order_by` (open: first trade by
   (ts_event, trade_id)); `last_by` is the same for the last row. #}
{% macro first_by(expr, order_by) -%}
    {{ return(adapter.dispatch('first_by', 'marketpipe')(expr, order_by)) }}
{%- endmacro %}
{% macro default__first_by(expr, order_by) -%}
    (array_agg({{ expr }} order by {{ order_by }}))[1]
{%- endmacro %}
{% macro duckdb__first_by(expr, order_by) -%}
    first({{ expr }} order by {{ order_by }})
{%- endmacro %}

{% macro last_by(expr, order_by) -%}
    {{ return(adapter.dispatch('last_by', 'marketpipe')(expr, order_by)) }}
{%- endmacro %}
{% macro default__last_by(expr, order_by) -%}
    {#- the last element: `desc` would only reverse the last column of a multi-column order #}
    (array_agg({{ expr }} order by {{ order_by }}))[count(*)]
{%- endmacro %}
{% macro duckdb__last_by(expr, order_by) -%}
    last({{ expr }} order by {{ order_by }})
{%- endmacro %}

{# Truncate a timestamptz to 'hour' or 'day' in UTC, whatever the session time zone. #}
{% macro utc_trunc(part, ts) -%}
    {{ return(adapter.dispatch('utc_trunc', 'marketpipe')(part, ts)) }}
{%- endmacro %}
{% macro default__utc_trunc(part, ts) -%}
    date_trunc('{{ part }}', {{ ts }}, 'UTC')
{%- endmacro %}
{% macro duckdb__utc_trunc(part, ts) -%}
    timezone('UTC', date_trunc('{{ part }}', timezone('UTC', {{ ts }})))
{%- endmacro %}

{# The UTC calendar date of a timestamptz. #}
{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'marketpipe')(ts)) }}
{%- endmacro %}
{% macro default__utc_date(ts) -%}
    ({{ ts }} at time zone 'UTC')::date
{%- endmacro %}
{% macro duckdb__utc_date(ts) -%}
    cast(timezone('UTC', {{ ts }}) as date)
{%- endmacro %}

{# Seconds between two timestamptz values, as a double. #}
{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('seconds_between', 'marketpipe')(start_ts, end_ts)) }}
{%- endmacro %}
{% macro default__seconds_between(start_ts, end_ts) -%}
    extract(epoch from ({{ end_ts }} - {{ start_ts }}))::double precision
{%- endmacro %}
{% macro duckdb__seconds_between(start_ts, end_ts) -%}
    ((epoch_us({{ end_ts }}) - epoch_us({{ start_ts }})) / 1e6)::double
{%- endmacro %}

{# A fixed interval of `n` `unit`s (hours, days, minutes). #}
{% macro interval_of(n, unit) -%}
    {{ return(adapter.dispatch('interval_of', 'marketpipe')(n, unit)) }}
{%- endmacro %}
{% macro default__interval_of(n, unit) -%}
    interval '{{ n }} {{ unit }}'
{%- endmacro %}

{# The build's clock, as timestamptz. #}
{% macro build_time() -%}
    {{ return(adapter.dispatch('build_time', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__build_time() -%}
    now()
{%- endmacro %}
{% macro duckdb__build_time() -%}
    get_current_timestamp()
{%- endmacro %}

{# float64 in both databases. #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__type_double() -%}double precision{%- endmacro %}
{% macro duckdb__type_double() -%}double{%- endmacro %}
