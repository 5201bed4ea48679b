"""The coins the simulated CoinGecko knows: its ids, tickers, names and fixed supplies.

This is the simulated server's own coin list (the real one has some 15,000 coins), written
independently of the client's ticker map so the two can disagree in a test. Supplies are
round mid-2024 figures; they stay fixed, so a coin's market cap is its price times its
circulating supply, exactly. `max_supply` is None where the coin has no cap (ETH, DOGE).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimulatedCoin:
    id: str
    symbol: str  # lower case, as CoinGecko prints it
    name: str
    circulating_supply: float
    total_supply: float
    max_supply: float | None
    turnover: float  # 24 h volume as a share of market cap

    @property
    def asset(self) -> str:
        """The fair value it is priced at (`BTC`, in USD)."""
        return self.symbol.upper()


def _coin(
    id: str, symbol: str, name: str, circ: float, total: float, cap: float | None
) -> SimulatedCoin:
    turnover = 0.01 + 0.08 * (zlib.crc32(id.encode()) / 0xFFFFFFFF)  # 1-9 % a day
    return SimulatedCoin(id, symbol, name, circ, total, cap, turnover)


COINS: tuple[SimulatedCoin, ...] = (
    _coin("bitcoin", "btc", "Bitcoin", 19_700_000, 19_700_000, 21_000_000),
    _coin("ethereum", "eth", "Ethereum", 120_200_000, 120_200_000, None),
    _coin("tether", "usdt", "Tether", 112e9, 112e9, None),
    _coin("binancecoin", "bnb", "BNB", 147_600_000, 147_600_000, 200_000_000),
    _coin("solana", "sol", "Solana", 465_000_000, 580_000_000, None),
    _coin("usd-coin", "usdc", "USDC", 33e9, 33e9, None),
    _coin("ripple", "xrp", "XRP", 55.6e9, 99.99e9, 100e9),
    _coin("dogecoin", "doge", "Dogecoin", 145e9, 145e9, None),
    _coin("cardano", "ada", "Cardano", 35.7e9, 45e9, 45e9),
    _coin("avalanche-2", "avax", "Avalanche", 395_000_000, 446_000_000, 720_000_000),
    _coin("shiba-inu", "shib", "Shiba Inu", 589e12, 589e12, None),
    _coin("polkadot", "dot", "Polkadot", 1.44e9, 1.5e9, None),
    _coin("chainlink", "link", "Chainlink", 608_000_000, 1e9, 1e9),
    _coin("litecoin", "ltc", "Litecoin", 75_000_000, 84_000_000, 84_000_000),
    _coin("near", "near", "NEAR Protocol", 1.08e9, 1.19e9, None),
    _coin("polygon-ecosystem-token", "pol", "POL (ex-MATIC)", 7.5e9, 10.2e9, None),
    _coin("cosmos", "atom", "Cosmos Hub", 390_000_000, 390_000_000, None),
    _coin("aptos", "apt", "Aptos", 470_000_000, 1.11e9, None),
    _coin("arbitrum", "arb", "Arbitrum", 3.3e9, 10e9, 10e9),
    _coin("optimism", "op", "Optimism", 1.2e9, 4.29e9, 4.29e9),
    _coin("injective-protocol", "inj", "Injective", 97_000_000, 100_000_000, 100_000_000),
    _coin("sui", "sui", "Sui", 2.5e9, 10e9, 10e9),
)
BY_ID: dict[str, SimulatedCoin] = {coin.id: coin for coin in COINS}
