"""The venue layer's own helpers: credentials never leave a URL."""

from marketpipe.sources.venue import redact_url


def test_credential_parameters_are_redacted_and_the_rest_kept() -> None:
    assert redact_url("wss://ws.finnhub.io?token=abc123") == "wss://ws.finnhub.io?token=***"
    assert (
        redact_url("wss://x.io/v2?apiKey=k&symbols=a,b&Secret=s")
        == "wss://x.io/v2?apiKey=***&symbols=a,b&Secret=***"
    )
    binance = "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@bookTicker"
    assert redact_url(binance) == binance  # nothing secret: unchanged, byte for byte
    assert redact_url("ws://127.0.0.1:9443") == "ws://127.0.0.1:9443"


def test_display_names_spell_coingecko_as_its_makers_do() -> None:
    from marketpipe.sources.venues import display_name

    assert [display_name(n) for n in ("coinbase", "coingecko", "kraken")] == [
        "Coinbase",
        "CoinGecko",
        "Kraken",
    ]
