"""Finnhub stock trades: WebSocket trade batches with no trade ids, as a venue spec."""
