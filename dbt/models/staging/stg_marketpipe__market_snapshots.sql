-- Aggregator market data (CoinGecko), renamed and cast. A coin, not a pair: `asset` is the
-- ticker (BTC), `vs_currency` the quote it is priced in (USD). Unknown figures stay null.
select
    cast(source as {{ type_varchar(32) }}) as data_source,
    cast(upper(asset) as {{ type_varchar(32) }}) as asset,
    cast(upper(vs_currency) as {{ type_varchar(16) }}) as vs_currency,
    cast(price as {{ type_double() }}) as price,
    cast(market_cap as {{ type_double() }}) as market_cap,
    cast(fully_diluted_valuation as {{ type_double() }}) as fully_diluted_valuation,
    cast(volume_24h as {{ type_double() }}) as reported_volume_24h,
    cast(circulating_supply as {{ type_double() }}) as circulating_supply,
    cast(market_cap_rank as {{ dbt.type_bigint() }}) as market_cap_rank,
    cast(ts_source as {{ type_timestamptz() }}) as snapshot_at,
    cast(ts_recv as {{ type_timestamptz() }}) as received_at
from {{ source('marketpipe', 'market_snapshots') }}
