"""Binance spot: stream frames, REST client, connector."""
