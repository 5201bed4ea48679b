"""Coinbase Exchange: the ws-feed (`matches`, `ticker`, `heartbeat`) and REST trade history."""
