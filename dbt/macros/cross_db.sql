{#
  The few places where DuckDB, PostgreSQL and BigQuery SQL differ. Models call these; each has
  a default (PostgreSQL-compatible) and duckdb__ / bigquery__ implementations where needed.
  BigQuery (GoogleSQL): no `timestamp with time zone` or `varchar(n)` (its TIMESTAMP is an
  instant, its STRING has no length to truncate to), double quotes make strings not names,
  and date parts are keywords, not strings.
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
{% macro bigquery__first_by(expr, order_by) -%}
    array_agg({{ expr }} order by {{ order_by }} limit 1)[offset(0)]
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
{% macro bigquery__last_by(expr, order_by) -%}
    {#- every order column descending, so only one element is kept per group -#}
    array_agg({{ expr }} order by
        {%- for column in order_by.split(',') %} {{ column | trim }} desc{{ ',' if not loop.last }}{% endfor %}
        limit 1)[offset(0)]
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
{% macro bigquery__utc_trunc(part, ts) -%}
    timestamp_trunc({{ ts }}, {{ part }}, 'UTC')
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
{% macro bigquery__utc_date(ts) -%}
    date({{ ts }}, 'UTC')
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
{% macro bigquery__seconds_between(start_ts, end_ts) -%}
    (timestamp_diff({{ end_ts }}, {{ start_ts }}, microsecond) / 1e6)
{%- endmacro %}

{# A fixed interval of `n` `unit`s (hours, days, minutes). #}
{% macro interval_of(n, unit) -%}
    {{ return(adapter.dispatch('interval_of', 'marketpipe')(n, unit)) }}
{%- endmacro %}
{% macro default__interval_of(n, unit) -%}
    interval '{{ n }} {{ unit }}'
{%- endmacro %}
{% macro bigquery__interval_of(n, unit) -%}
    {#- a keyword in the singular: interval 3 hour -#}
    interval {{ n }} {{ unit[:-1] if unit.endswith('s') else unit }}
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
{% macro bigquery__build_time() -%}
    current_timestamp()
{%- endmacro %}

{# float64 in every database. #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__type_double() -%}double precision{%- endmacro %}
{% macro duckdb__type_double() -%}double{%- endmacro %}
{% macro bigquery__type_double() -%}float64{%- endmacro %}

{# An instant (timestamptz): BigQuery's TIMESTAMP is one. #}
{% macro type_timestamptz() -%}
    {{ return(adapter.dispatch('type_timestamptz', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__type_timestamptz() -%}timestamp with time zone{%- endmacro %}
{% macro bigquery__type_timestamptz() -%}timestamp{%- endmacro %}

{# A short label (exchange, symbol, side) of at most `n` characters. BigQuery's STRING(n)
   would fail on a longer value where varchar(n) truncates or ignores it: plain string. #}
{% macro type_varchar(n) -%}
    {{ return(adapter.dispatch('type_varchar', 'marketpipe')(n)) }}
{%- endmacro %}
{% macro default__type_varchar(n) -%}varchar({{ n }}){%- endmacro %}
{% macro bigquery__type_varchar(n) -%}string{%- endmacro %}

{# How incremental models replace their re-derived rows by key. dbt-bigquery has no
   delete+insert; its merge (from a temporary table) has the same effect for unique keys. #}
{% macro incremental_strategy() -%}
    {{ return(adapter.dispatch('incremental_strategy', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__incremental_strategy() -%}{{ return('delete+insert') }}{%- endmacro %}
{% macro bigquery__incremental_strategy() -%}{{ return('merge') }}{%- endmacro %}
