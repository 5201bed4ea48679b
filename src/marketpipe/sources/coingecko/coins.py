"""CoinGecko coin ids for the tickers we trade, and how a configured asset becomes one.

CoinGecko names coins by id (`bitcoin`), not by ticker: tickers are not unique there (many
tokens call themselves `ETH`). So the tickers we use are mapped by a small declared table,
and anything else is taken as a CoinGecko id as written (`MARKETPIPE_COINGECKO__ASSETS=
BTC,ETH,render-token`). The snapshot's `asset` is the row's own `symbol`, upper-cased.
"""

from typing import Final

# Ticker -> CoinGecko id, for every base of the default Binance universe (model.symbols).
COIN_IDS: Final[dict[str, str]] = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "SOL": "solana",
    "XRP": "ripple",
    "BNB": "binancecoin",
    "ADA": "cardano",
    "DOGE": "dogecoin",
    "DOT": "polkadot",
    "AVAX": "avalanche-2",
    "LINK": "chainlink",
    "POL": "polygon-ecosystem-token",
    "SHIB": "shiba-inu",
    "LTC": "litecoin",
    "ATOM": "cosmos",
    "NEAR": "near",
    "APT": "aptos",
    "ARB": "arbitrum",
    "OP": "optimism",
    "INJ": "injective-protocol",
    "SUI": "sui",
    "USDT": "tether",
    "USDC": "usd-coin",
}


def coin_id(asset: str) -> str:
    """`BTC` -> `bitcoin`; an id (`avalanche-2`) or an unmapped name is kept, lower-cased.

    ValueError for an empty name or one with characters no CoinGecko id has."""
    name = asset.strip()
    mapped = COIN_IDS.get(name.upper())
    if mapped is not None:
        return mapped
    cid = name.lower()
    if not cid or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in cid):
        raise ValueError(
            f"coingecko: {asset!r} is neither a known ticker ({', '.join(COIN_IDS)}) "
            "nor a CoinGecko coin id like 'bitcoin'"
        )
    return cid
