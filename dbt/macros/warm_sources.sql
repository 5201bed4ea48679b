{#
  Where the warm tables come from.

  postgres (cluster): they are real tables of the cluster warm store; nothing to prepare.

  bigquery (cluster on Google Cloud): they are the tables of the BigQuery warm dataset
  (storage/bigquery_warm.py, MARKETPIPE_DBT_WARM_SCHEMA); nothing to prepare either.

  duckdb (embedded): the running pipeline holds warm.duckdb as DuckDB's single writer, so dbt
  never opens it. The scheduler first copies the warm tables to Parquet files in `inputs_dir`
  (one consistent read snapshot), and this hook exposes them as views in schema `warm` of the
  marts database. Raw trades are the lake's files before `warm_trades_since_us` (what the warm
  store no longer holds) plus the warm snapshot from then on: disjoint, so no trade counts twice.
#}
{% macro marketpipe_prepare_sources() -%}
    {{ return(adapter.dispatch('marketpipe_prepare_sources', 'marketpipe')()) }}
{%- endmacro %}

{% macro default__marketpipe_prepare_sources() -%}
    select 1
{%- endmacro %}

{% macro duckdb__marketpipe_prepare_sources() -%}
    {%- set inputs = var('inputs_dir') -%}
    {%- if not inputs -%}
        {{ exceptions.raise_compiler_error("var inputs_dir is required on the duckdb target (run `marketpipe dbt`, which snapshots the warm store)") }}
    {%- endif -%}
    create schema if not exists warm;
    {%- for table in ['candles', 'alerts', 'quotes', 'positions', 'dead_letters', 'late_trades'] %}
    create or replace view warm.{{ table }} as
        select * from read_parquet('{{ inputs }}/{{ table }}.parquet');
    {%- endfor %}
    create or replace view warm.trades_recent as
        select * from read_parquet('{{ inputs }}/trades_recent.parquet')
        {%- if var('lake_trades_glob') %}
        union all
        select exchange, symbol, trade_id, price, qty, side, ts_event, ts_recv, null::bigint as batch_seq
        from read_parquet('{{ var("lake_trades_glob") }}', hive_partitioning = false)
        where ts_event < make_timestamptz({{ var('warm_trades_since_us') | int }}::bigint)
        {%- endif %};
    {#- Market snapshots (CoinGecko): a snapshot written before the warm store held them has
        no such file; an empty view of the same columns keeps every model building. -#}
    {%- set market_file = inputs ~ '/market_snapshots.parquet' -%}
    {%- set found = run_query("select count(*) from glob('" ~ market_file ~ "')") if execute else none %}
    {%- if found is not none and found.columns[0].values()[0] > 0 %}
    create or replace view warm.market_snapshots as
        select * from read_parquet('{{ market_file }}');
    {%- else %}
    create or replace view warm.market_snapshots as
        select
            null::varchar as source, null::varchar as asset, null::varchar as vs_currency,
            null::double as price, null::double as market_cap,
            null::double as fully_diluted_valuation, null::double as volume_24h,
            null::double as circulating_supply, null::bigint as market_cap_rank,
            null::timestamptz as ts_source, null::timestamptz as ts_recv
        where false;
    {%- endif %}
{%- endmacro %}


{# When a position last changed. The BigQuery warm store keeps no such column on positions
   (storage/bigquery_schema.py), so there it is null. #}
{% macro positions_updated_at() -%}
    {{ return(adapter.dispatch('positions_updated_at', 'marketpipe')()) }}
{%- endmacro %}
{% macro default__positions_updated_at() -%}
    cast(updated_at as {{ type_timestamptz() }})
{%- endmacro %}
{% macro bigquery__positions_updated_at() -%}
    cast(null as {{ type_timestamptz() }})
{%- endmacro %}
