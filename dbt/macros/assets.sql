{#
  What a symbol is priced as across venues, as model.symbols.comparable_asset says: a dollar
  quote (USD_LIKE there) is one asset, so Binance's BTC-USDT and Coinbase's BTC-USD are both
  BTC-USD; any other quote is its own asset (BTC-EUR). Null for a symbol that is not
  BASE-QUOTE. The quote is everything after the first '-', as Python's str.partition.
  tests/dbt/test_cross_venue_asset_macro.py holds this list equal to USD_LIKE.
#}
{% macro usd_like_quotes() -%}
    {{ return(['USD', 'USDT', 'USDC', 'FDUSD', 'TUSD', 'BUSD', 'DAI']) }}
{%- endmacro %}

{% macro comparable_asset(symbol) -%}
    {#- strpos is the same function in DuckDB, PostgreSQL and BigQuery -#}
    {%- set dash = "strpos(" ~ symbol ~ ", '-')" -%}
    case
        when {{ dash }} <= 1 or {{ dash }} = length({{ symbol }}) then null
        when substr({{ symbol }}, {{ dash }} + 1) in (
            {%- for quote in usd_like_quotes() %}'{{ quote }}'{{ ', ' if not loop.last }}{% endfor -%}
        )
        then substr({{ symbol }}, 1, {{ dash }} - 1) || '-USD'
        else {{ symbol }}
    end
{%- endmacro %}
