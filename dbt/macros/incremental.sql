{# The earliest `column` an incremental run re-derives: the newest already built minus the
   lookback. Late trades revise recent periods; everything from here on is rebuilt and
   replaces the old rows by key (delete+insert; merge on BigQuery), so a rerun never
   double-counts. #}
{% macro incremental_cutoff(column, lookback_n, unit) -%}
    (select coalesce(max({{ column }}), cast('1970-01-01 00:00:00+00' as {{ type_timestamptz() }}))
            - {{ interval_of(lookback_n, unit) }}
     from {{ this }})
{%- endmacro %}
