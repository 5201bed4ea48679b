"""Kraken spot: WebSocket v2 (and v1 recordings), REST trade history, as a venue spec."""
