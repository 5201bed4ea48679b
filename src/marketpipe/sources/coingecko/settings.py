"""CoinGecko market-data settings: the endpoint, the coins, the poll and the free tier's limits.

From CoinGecko's documentation:
- The public (Demo) API's root is `https://api.coingecko.com/api/v3`; the coins' market data
  is `GET /coins/markets?vs_currency=usd&ids=bitcoin,ethereum`, one call for every coin.
- A Demo API key goes in the `x-cg-demo-api-key` header (the header is the documented,
  recommended way: a query parameter would put the key in logs). Without a key, requests are
  limited per IP and shared with everyone behind it.
- Every call counts against a per-minute rate limit; beyond it the answer is HTTP 429. The
  Demo plan's limit has been documented as 30 and later 100 calls a minute, keyless use gets
  less: we default to 30, far above one poll a minute, and honour 429's `Retry-After`.
- CoinGecko refreshes `/coins/markets` about once a minute, hence the 60 s poll.

The key is a `SecretStr` (`MARKETPIPE_COINGECKO__API_KEY`): masked in reprs and logs.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.sources.coingecko.coins import coin_id

API_KEY_HEADER = "x-cg-demo-api-key"
# The bases of the default universe, BTC and ETH first: every demo venue's assets are covered.
DEFAULT_ASSETS: tuple[str, ...] = tuple(dict.fromkeys(s.split("-")[0] for s in DEFAULT_SYMBOLS))


class CoinGeckoSettings(BaseModel):
    """CoinGecko `/coins/markets` polling; `MARKETPIPE_COINGECKO__REST_URL` and friends."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    rest_url: str = "https://api.coingecko.com/api/v3"
    # Tickers (`BTC`) or CoinGecko ids (`bitcoin`); a comma list from the environment.
    assets: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_ASSETS))
    vs_currency: str = Field("usd", min_length=1, max_length=16)
    poll_interval_s: float = Field(60.0, gt=0)
    api_key: SecretStr | None = None
    requests_per_minute: int = Field(30, ge=1, le=10_000)
    rest_timeout_s: float = Field(10.0, gt=0)
    # A failing server is retried with capped exponential backoff and jitter.
    backoff_initial_s: float = Field(2.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    # A 429 without Retry-After waits this long; a Retry-After beyond the cap is capped.
    rate_limit_pause_s: float = Field(60.0, gt=0)
    max_retry_after_s: float = Field(900.0, gt=0)

    @field_validator("assets", mode="before")
    @classmethod
    def _split_assets(cls, value: object) -> object:
        if isinstance(value, str):  # `MARKETPIPE_COINGECKO__ASSETS=BTC,ETH`
            return [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("assets")
    @classmethod
    def _known_assets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one asset is needed, e.g. BTC or bitcoin")
        for asset in value:
            coin_id(asset)  # a name no CoinGecko id can be fails here, naming it
        return list(dict.fromkeys(a.strip() for a in value))

    @field_validator("vs_currency")
    @classmethod
    def _lower_currency(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def coin_ids(self) -> list[str]:
        """The configured assets as CoinGecko ids, in order, each once."""
        return list(dict.fromkeys(coin_id(a) for a in self.assets))

    def headers(self) -> dict[str, str]:
        """Request headers; the key only when one is set (keyless works, at lower limits)."""
        headers = {"accept": "application/json", "user-agent": "marketpipe"}
        if self.api_key is not None and self.api_key.get_secret_value():
            headers[API_KEY_HEADER] = self.api_key.get_secret_value()
        return headers
